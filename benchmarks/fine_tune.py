"""Fine-tuning the bundled model on a molecule it never saw: the new class's kNN F1 (and the
macro-F1 over all ten classes) on particles from another seed, before and after fine-tuning on
50 labelled particles of it, and the minutes the fine-tuning takes. Target: F1 >= 0.9 after, in
under 3 minutes.

The new molecule (``--shape``) is a three-bladed propeller with a shaft on one side (about 240 A
across, unlike any built-in class), or a dumbbell much like the built-in elongated dimer (the
hard case), written as an MRC map at 5 A/voxel in arbitrary units and simulated with
``Simulation.molecules`` beside the nine built-in classes. From the training seed: the labelled
particles (``--labelled`` of the new class and ``--per-builtin`` of each built-in class, as a user
labels clusters in the explorer: fine-tuning on the new class alone says nothing about where the
others lie, and the model forgets them) and, from other particles of the same seed, a labelled
reference set of ``REFERENCE`` per class that the kNN is fit on. From the test seed: ``TEST``
particles per class, scored. Boxes are 32^3 at 10 A/voxel, centred on the particles, SNR 0.1 per
tilt, as in the bundled model's evaluation. The affinity of the ten classes comes from their maps
(the new class's pairs searched, the built-in pairs shipped), or with ``--affinity unrelated`` it
is the Train dock's default (the bundled model's own among the built-in classes, 0 between the new
class and each of them).

Fine-tuning starts from a copy of the bundled model and runs the Train dock's recipe (flat beta
1e-3 and gamma 1, random 90-degree turns, 20 % of the labelled particles held out, the epoch with
the best held-out loss kept); only the training loop is timed. Torch runs on as many threads as
the process has cores (``taskset -c 1`` for one).

Usage: python benchmarks/fine_tune.py [--shape propeller|dumbbell] [--epochs 10]
       [--learning-rate 1e-3] [--labelled 50] [--per-builtin 50] [--affinity maps|unrelated]
       [--apart CLASS] [--freeze-encoder]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from scipy.spatial.transform import Rotation
from sklearn.metrics import f1_score, silhouette_samples

from napari_affinity_vae.analysis.metrics import knn_predictions
from napari_affinity_vae.io.tomogram import write_tomogram
from napari_affinity_vae.model.bundled import load_bundled
from napari_affinity_vae.model.inference import encode, use_threads
from napari_affinity_vae.model.losses import Schedule
from napari_affinity_vae.model.network import AffinityVAE
from napari_affinity_vae.model.train import TrainingConfig, TrainingData, training_epochs
from napari_affinity_vae.operations.labelled import default_affinity
from napari_affinity_vae.schema import CLASS_NAME
from napari_affinity_vae.simulate.affinity import class_affinity
from napari_affinity_vae.simulate.molecules import MOLECULES
from napari_affinity_vae.simulate.subtomograms import simulate_subtomograms
from napari_affinity_vae.simulate.tomogram import Simulation, class_maps
from napari_affinity_vae.volumes import normalise

NEW = len(MOLECULES)  # the new class's label: after the nine built-in ones
TRAINING_SEED, TEST_SEED = 101, 202  # the bundled model was trained on seed 11
REFERENCE = 50  # labelled particles per class that the kNN is fit on
TEST = 100  # particles per class scored
BOX, VOXEL_SIZE = 32, 10.0
Part = tuple[tuple | np.ndarray, tuple, np.ndarray | None]  # centre, radii (A, x y z), turn


def propeller() -> list[Part]:
    """A molecule unlike the built-in ones (best correlation with any of them 0.71): a hub, three
    blades 100 A long pitched by 35 degrees, and a shaft on one side; about 240 A across."""
    blades = []
    for angle in (0, 120, 240):
        turn = Rotation.from_euler("ZX", [angle, 35], degrees=True).as_matrix()
        blades.append((turn @ np.array([70.0, 0, 0]), (50, 24, 10), turn))
    return [((0, 0, 0), (32, 32, 26), None), ((0, 0, 45), (12, 12, 30), None), *blades]


def dumbbell() -> list[Part]:
    """A molecule like the built-in elongated dimer (best correlation 0.86): two unequal balls
    105 A apart on a rod."""
    return [
        ((0, 0, -50), (40, 40, 40), None),
        ((0, 0, 55), (34, 30, 30), None),
        ((0, 0, 0), (12, 12, 40), None),
    ]


SHAPES = {"propeller": propeller, "dumbbell": dumbbell}


def shape_map(parts: list[Part], voxel_size: float = 5.0, box: int = 56) -> np.ndarray:
    """A (z, y, x) map of the union of ellipsoids as a user's map might be: blurred, in arbitrary
    units (x 120 on a solvent level of 30)."""
    xyz = (np.indices((box,) * 3).reshape(3, -1).T[:, ::-1] - box // 2) * voxel_size
    inside = np.zeros(len(xyz), dtype=bool)
    for centre, radii, turn in parts:
        local = (xyz - np.asarray(centre, dtype=float)) @ (np.eye(3) if turn is None else turn)
        inside |= np.sum((local / np.asarray(radii, dtype=float)) ** 2, axis=1) <= 1.0
    volume = ndimage.gaussian_filter(inside.reshape((box,) * 3).astype(np.float32), 1.0)
    return 120 * volume + 30


Particles = tuple[np.ndarray, np.ndarray]  # normalised boxes and labels


def particles(settings: Simulation, per_class: int) -> Particles:
    """Normalised boxes of ``per_class`` particles of each class and their labels (indices
    into ``settings.classes``), in the simulator's order."""
    boxes, table = simulate_subtomograms(settings, per_class, BOX)
    return normalise(boxes), table[CLASS_NAME].map(list(settings.classes).index).to_numpy()


def particle_sets(
    settings: Simulation, labelled: int, per_builtin: int
) -> tuple[Particles, Particles, Particles]:
    """From the training seed, the labelled particles (``labelled`` of the new class and
    ``per_builtin`` of each built-in one) and, from the others, the kNN's reference particles
    (``REFERENCE`` per class); from the test seed, ``TEST`` particles per class."""
    most = max(labelled, per_builtin)
    boxes, labels = particles(settings, most + REFERENCE)
    rank = pd.Series(labels).groupby(labels).cumcount().to_numpy()  # place within its class
    chosen = rank < np.where(labels == NEW, labelled, per_builtin)
    test = particles(dataclasses.replace(settings, seed=TEST_SEED), TEST)
    return (boxes[chosen], labels[chosen]), (boxes[rank >= most], labels[rank >= most]), test


def scores(
    model: AffinityVAE,
    reference: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    name: str,
) -> tuple[str, np.ndarray]:
    """The new class's F1 and the macro-F1 of a kNN fit on the reference particles' latent
    means, and the new class's mean silhouette, all on the test particles; and the labels the
    kNN predicts for them."""
    fit = encode(model, reference[0], error=False)["mu"]
    latent = encode(model, test[0], error=False)["mu"]
    predicted = knn_predictions(fit, reference[1], latent)
    f1 = f1_score(test[1], predicted, labels=[NEW], average=None)[0]
    macro = f1_score(test[1], predicted, average="macro")
    silhouette = silhouette_samples(latent, test[1])[test[1] == NEW].mean()
    figures = f"{name} F1 {f1:.3f}, macro-F1 {macro:.3f}, {name} silhouette {silhouette:.3f}"
    return figures, predicted


def fine_tune(
    model: AffinityVAE, data: TrainingData, config: TrainingConfig, freeze: bool = False
) -> tuple[AffinityVAE, float, int]:
    """A copy of ``model`` fine-tuned on ``data``, at its best held-out epoch; the seconds the
    training took and that epoch. With ``freeze``, the convolutional encoder (weights and batch
    statistics) stays as it was and only the latent heads and the decoder learn."""
    tuned = copy.deepcopy(model)
    if freeze:
        tuned.encoder.requires_grad_(False)
        tuned.encoder.train = lambda mode=True: torch.nn.Module.train(tuned.encoder, False)
    best, best_epoch = None, 0
    start = time.perf_counter()
    for epoch in training_epochs(data, tuned, config):
        if epoch.improved:
            best = {k: v.detach().clone() for k, v in tuned.state_dict().items()}
            best_epoch = epoch.row["epoch"]
        print(
            f"epoch {epoch.row['epoch']:3d}: loss {epoch.row['loss']:.4f}, held out "
            f"{epoch.row.get('val_loss', float('nan')):.4f}, affinity {epoch.row['affinity']:.4f}",
            file=sys.stderr,
        )
    seconds = time.perf_counter() - start
    tuned.load_state_dict(best)
    return tuned.cpu().eval(), seconds, best_epoch


def confusions(truth: np.ndarray, predicted: np.ndarray, classes: list[str]) -> str:
    """What the new class's test particles were taken for, most often first."""
    taken = pd.Series(predicted[truth == NEW]).map(lambda i: classes[i])
    return ", ".join(f"{name} {n}" for name, n in taken.value_counts().items())


def recipe(epochs: int, learning_rate: float) -> TrainingConfig:
    """The Train dock's fine-tuning settings."""
    return TrainingConfig(
        epochs=epochs,
        learning_rate=learning_rate,
        beta=Schedule("flat", high=1e-3),
        gamma=Schedule("flat", high=1.0),
        validation_fraction=0.2,
        augment=True,
    )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--labelled", type=int, default=50, help="particles of the new class")
    parser.add_argument("--per-builtin", type=int, default=50, help="of each built-in class")
    parser.add_argument("--shape", choices=list(SHAPES), default="propeller")
    parser.add_argument(
        "--affinity",
        choices=["maps", "unrelated"],
        default="maps",
        help="the new class's affinity: from the maps, or 0 to every built-in class (the Train "
        "dock's default)",
    )
    parser.add_argument(
        "--apart",
        metavar="CLASS",
        help="set the new class's affinity to this built-in class to -1, as a user would in the "
        "Train dock's table for the class it is taken for",
    )
    parser.add_argument(
        "--freeze-encoder", action="store_true", help="train the latent heads and decoder only"
    )
    return parser.parse_args()


def main() -> None:
    args = arguments()
    cores = len(os.sched_getaffinity(0))
    use_threads(cores)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {cores} for this run")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    name, classes = args.shape, [*MOLECULES, args.shape]
    with tempfile.TemporaryDirectory() as folder:
        path = write_tomogram(Path(folder) / f"{name}.mrc", shape_map(SHAPES[name]()), 5.0)
        settings = Simulation(classes=tuple(classes), molecules={name: path}, seed=TRAINING_SEED)
        tic = time.perf_counter()
        affinity, raw = class_affinity(class_maps(settings), VOXEL_SIZE)
        print(f"{name} best correlation (searched in {time.perf_counter() - tic:.0f} s): ", end="")
        print(", ".join(f"{c} {raw.loc[name, c]:.2f}" for c in MOLECULES))
        tic = time.perf_counter()
        labelled, reference, test = particle_sets(settings, args.labelled, args.per_builtin)
    print(
        f"simulated in {time.perf_counter() - tic:.0f} s: {len(labelled[0])} labelled and "
        f"{len(reference[0])} reference (seed {TRAINING_SEED}), {len(test[0])} test particles "
        f"(seed {TEST_SEED})"
    )
    bundled, card = load_bundled()
    before, predicted = scores(bundled, reference, test, name)
    print(f"before: {before}")
    print(f"before, {name} test particles taken for: {confusions(test[1], predicted, classes)}")
    if args.affinity == "unrelated":
        affinity = default_affinity(classes, card)
    if args.apart:
        affinity.loc[name, args.apart] = affinity.loc[args.apart, name] = -1.0
    description = f"simulated particles of {name} and the nine built-in classes"
    data = TrainingData(*labelled, classes, affinity.to_numpy(), VOXEL_SIZE, description)
    config = recipe(args.epochs, args.learning_rate)
    tuned, seconds, best_epoch = fine_tune(bundled, data, config, args.freeze_encoder)
    print(
        f"fine-tuning minutes on {cores} core(s): {seconds / 60:.2f} ({len(data.boxes)} particles, "
        f"20 % held out; {args.epochs} epochs at {args.learning_rate:g}, {args.affinity} "
        f"affinity; best epoch {best_epoch})"
    )
    after, predicted = scores(tuned, reference, test, name)
    print(f"after: {after}")
    print(f"after, {name} test particles taken for: {confusions(test[1], predicted, classes)}")


if __name__ == "__main__":
    main()
