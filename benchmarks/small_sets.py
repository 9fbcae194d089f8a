"""Small training sets: four classes of 7 distinct clean particles each, with copies up to 7-28 per
class, simulated at 64^3 (5 A/voxel), as a set of four real proteins was. A model trained on
them at 32^3 (resampled) or at 64^3 is scored by a kNN classifier on its own latent means
(macro-F1, 5-fold cross-validation), under variations of what may hurt a tiny set: the validation
split, BatchNorm, the batch size and the resampling. With ``--snr``, the distinct particles are
cut from simulated tomograms instead (CTF, missing wedge, neighbours and noise at that
signal-to-noise ratio per tilt image; copies share their noise, as copies of a real particle do).
With ``--rotated-copies``, each copy is turned by a random rotation, so that a particle's nearest
neighbour is no longer its identical copy. ``--voxel-size`` simulates at another voxel size (10 A:
the same molecules in half as many voxels, a box twice as wide), and the variant "32, cropped"
cuts the middle 32^3 of each box instead of resampling it. ``--globules D`` replaces the
built-in classes with four made-up proteins of one mass, about D Angstrom across, that differ
only in shape (atomic models read as a user's molecule; their affinity from their maps, or 0
between them with ``--unrelated``).

Usage: python benchmarks/small_sets.py [--epochs 100] [--seeds 0 1 2] [--variants NAME ...]
    [--snr SNR] [--rotated-copies] [--voxel-size 5] [--globules D [--unrelated]]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from napari_affinity_vae.model.inference import encode
from napari_affinity_vae.model.losses import Schedule
from napari_affinity_vae.model.network import Architecture
from napari_affinity_vae.model.train import TrainingConfig, TrainingData, train
from napari_affinity_vae.simulate.affinity import affinity_matrix, library_affinity
from napari_affinity_vae.simulate.geometry import random_angles, relion_matrix, rotate_map
from napari_affinity_vae.simulate.molecules import (
    VOLUME_PER_ATOM,
    molecule_map,
    user_molecule_map,
)
from napari_affinity_vae.simulate.tomogram import Simulation, simulate_tomogram
from napari_affinity_vae.volumes import fit_box, normalise, resample

CLASSES = ("ribosome", "proteasome", "single_ring", "atp_synthase")
COUNTS = (7, 14, 21, 28)  # particles per class, copies of 7 distinct ones
DISTINCT = 7
VOXEL_SIZE = 5.0
BASE = TrainingConfig(
    epochs=100,
    batch_size=64,
    beta=Schedule("cyclical_linear", high=1e-3),
    gamma=Schedule("flat", high=1.0),
    validation_fraction=0.1,
)
VARIANTS = {  # name: (box, architecture changes, config changes)
    "32, as before": (32, {}, {}),
    "32, cropped": (-32, {}, {}),  # negative: the middle of the box, not resampled
    "32, no validation split": (32, {}, {"validation_fraction": 0.0}),
    "32, no BatchNorm": (32, {"batch_norm": False}, {}),
    "32, batches of 8": (32, {}, {"batch_size": 8}),
    "32, all three": (32, {"batch_norm": False}, {"validation_fraction": 0.0, "batch_size": 8}),
    "64, as before": (64, {}, {}),
}


def globules(diameter: float, folder: Path, seed: int = 0) -> dict[str, Path]:
    """Four atomic models of made-up globular proteins about ``diameter`` Angstrom across, of
    one mass and four shapes: each the union of four ellipsoids of random axes placed at random
    about its centre, filled with carbon atoms at protein density (a jittered grid of 17 A^3 a
    site), written as PDB files in ``folder``."""
    rng = np.random.default_rng(seed)
    spacing = VOLUME_PER_ATOM ** (1 / 3)
    axis = np.arange(-diameter / 2, diameter / 2 + spacing, spacing)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    target = int(len(grid) * 0.3)  # every globule has as many atoms
    models = {}
    for k in range(4):
        inside = np.zeros(len(grid), dtype=bool)
        while inside.sum() < target:
            centre = rng.normal(0, diameter / 8, 3)
            radii = rng.uniform(diameter / 8, diameter / 4, 3)
            turn = Rotation.random(random_state=rng).as_matrix()
            inside |= np.sum((((grid - centre) @ turn) / radii) ** 2, axis=1) <= 1
        atoms = grid[inside]
        atoms = atoms[np.argsort(np.linalg.norm(atoms - atoms.mean(0), axis=1))[:target]]
        atoms = atoms + rng.uniform(-spacing / 4, spacing / 4, atoms.shape)
        models[f"globule_{k + 1}"] = path = folder / f"globule_{k + 1}.pdb"
        path.write_text(
            "".join(
                f"ATOM  {i + 1:5d}  CA  ALA A{i % 9999 + 1:4d}    "
                f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C\n"
                for i, (x, y, z) in enumerate(atoms)
            )
            + "END\n"
        )
    return models


def references(
    classes: tuple[str, ...], voxel_size: float, models: dict[str, Path] | None = None
) -> dict[str, np.ndarray]:
    """Each class's map in a 64^3 box: built-in molecules, or the atomic ``models``."""
    if models:
        return {n: fit_box(user_molecule_map(p, voxel_size), 64) for n, p in models.items()}
    return {name: molecule_map(name, voxel_size, 64) for name in classes}


def clean_particles(seed: int, maps: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """7 distinct clean 64^3 boxes per class, protein dark (random orientations, up to a voxel
    off centre)."""
    rng = np.random.default_rng(seed)
    distinct = {}
    for name, reference in maps.items():
        distinct[name] = [
            -rotate_map(reference, relion_matrix(angles), rng.uniform(-1, 1, 3))
            for angles in random_angles(DISTINCT, rng)
        ]
    return distinct


def noisy_particles(
    seed: int, classes: tuple[str, ...], snr: float, voxel_size: float = VOXEL_SIZE
) -> dict[str, list[np.ndarray]]:
    """7 distinct 64^3 boxes per class cut from simulated tomograms: CTF, missing wedge,
    neighbours and noise at ``snr`` per tilt image."""
    distinct: dict[str, list[np.ndarray]] = {name: [] for name in classes}
    tomogram = 0
    while min(len(found) for found in distinct.values()) < DISTINCT:
        settings = Simulation(
            shape=(128, 320, 320),
            particles=24,
            classes=classes,
            voxel_size=voxel_size,
            snr=snr,
            seed=1000 * seed + tomogram,
        )
        result = simulate_tomogram(settings, margin=33)
        for _, particle in result.particles.iterrows():
            found = distinct[particle["class_name"]]
            if len(found) < DISTINCT:
                start = np.round(particle[["z", "y", "x"]].to_numpy(float)).astype(int) - 32
                found.append(result.tomogram[tuple(slice(a, a + 64) for a in start)])
        tomogram += 1
    return distinct


def small_set(
    distinct: dict[str, list[np.ndarray]], rotated: bool = False, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The distinct particles of each class copied up to ``COUNTS`` (each copy turned by a
    random rotation if ``rotated``), and their labels."""
    rng = np.random.default_rng(seed + 100)
    counts = dict(zip(distinct, COUNTS, strict=True))
    boxes = []
    for name, found in distinct.items():
        for i in range(counts[name]):
            box = found[i % DISTINCT]
            if rotated and i >= DISTINCT:
                box = rotate_map(box, relion_matrix(random_angles(1, rng)[0]))
            boxes.append(box)
    labels = np.concatenate([np.full(n, label) for label, n in enumerate(counts.values())])
    return np.stack(boxes).astype(np.float32), labels


def score(
    boxes: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    variant: str,
    seed: int,
    epochs: int,
    voxel_size: float = VOXEL_SIZE,
    affinity: np.ndarray | None = None,
) -> float:
    """kNN macro-F1 (5-fold) on the latent means of a model trained on the set (with
    ``affinity``, else the built-in classes')."""
    box, arch_changes, config_changes = VARIANTS[variant]
    voxel = voxel_size
    if box < 0:  # cropped
        box = -box
        boxes = fit_box(boxes, box)
    elif box != boxes.shape[-1]:
        boxes = fit_box(resample(boxes, box / boxes.shape[-1]), box)
        voxel = voxel_size * 64 / box
    data = TrainingData(
        normalise(boxes),
        labels,
        classes,
        library_affinity(classes, 10.0) if affinity is None else affinity,
        voxel,
        "small set",
    )
    architecture = dataclasses.replace(Architecture(box=box), **arch_changes)
    config = dataclasses.replace(BASE, epochs=epochs, seed=seed, **config_changes)
    torch.manual_seed(seed)
    model, _, _ = train(data, architecture, config)
    mu = encode(model, data.boxes, error=False)["mu"]
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(5))
    return float(f1_score(labels, cross_val_predict(knn, mu, labels, cv=folds), average="macro"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--classes", nargs=4, default=list(CLASSES), metavar="CLASS")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--snr", type=float, help="cut from simulated tomograms at this SNR")
    parser.add_argument(
        "--rotated-copies", action="store_true", help="turn each copy by a random rotation"
    )
    parser.add_argument("--voxel-size", type=float, default=VOXEL_SIZE, help="Angstrom (5)")
    parser.add_argument(
        "--globules", type=float, metavar="DIAMETER", help="four made-up proteins this wide (A)"
    )
    parser.add_argument(
        "--unrelated", action="store_true", help="with --globules: affinity 0 between them"
    )
    args = parser.parse_args()
    if args.globules and args.snr is not None:
        parser.error("--globules makes clean particles: leave out --snr")
    threads = torch.get_num_threads()
    print(f"machine: {platform.machine()}, torch {torch.__version__}, {threads} threads")
    print(f"{len(COUNTS)} classes of {', '.join(map(str, COUNTS))} particles ({DISTINCT} distinct)")
    if args.snr is not None:
        print(f"cut from simulated tomograms, SNR {args.snr:g} per tilt image")
    if args.rotated_copies:
        print("each copy turned by a random rotation")
    classes, models, affinity = tuple(args.classes), None, None
    if args.globules:
        models = globules(args.globules, Path(tempfile.mkdtemp()))
        classes = tuple(models)
        print(f"four made-up globular proteins {args.globules:g} A across")
        affinity = np.eye(len(classes))  # unrelated: what affinity alone does not say
        if not args.unrelated:
            table, _ = affinity_matrix(references(classes, 10.0, models))
            affinity = table.to_numpy()
            print(f"affinity from their maps:\n{table}")
    print(f"classes: {', '.join(classes)}; 64^3 boxes at {args.voxel_size:g} A")
    maps = references(classes, args.voxel_size, models)
    sets = {
        seed: small_set(
            clean_particles(seed, maps)
            if args.snr is None
            else noisy_particles(seed, classes, args.snr, args.voxel_size),
            args.rotated_copies,
            seed,
        )
        for seed in args.seeds
    }
    for variant in args.variants:
        tic = time.perf_counter()
        scores = [
            score(*sets[seed], list(classes), variant, seed, args.epochs, args.voxel_size, affinity)
            for seed in args.seeds
        ]
        print(
            f"{variant:<28} kNN macro-F1 {np.mean(scores):.3f} "
            f"(seeds: {', '.join(f'{s:.2f}' for s in scores)}; {time.perf_counter() - tic:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
