"""How well can any model tell the fine-tuning benchmark's look-alike (the dumbbell) from the
built-in elongated dimer at SNR 0.1 and 32^3? A supervised ceiling for ``fine_tune.py
--shape dumbbell``, whose target is a dumbbell F1 of 0.9 after fine-tuning on 50 labelled
particles.

The bundled model's convolutional encoder, with a linear layer for the two classes, is trained
from scratch with cross-entropy (random 90-degree turns) on ``--per-class`` labelled particles of
each of the two from the training seed, and scored on ``TEST`` of each from the test seed: the
dumbbell's F1 in this two-class problem (where the 10-class kNN confuses it with little else).
With many more labels than fine-tuning gets, this bounds what the model's features could hold.

Usage: python benchmarks/look_alike_ceiling.py [--per-class 50 200 800] [--epochs 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from fine_tune import TEST, TEST_SEED, TRAINING_SEED, VOXEL_SIZE, dumbbell, particles, shape_map
from sklearn.metrics import f1_score

from napari_affinity_vae.io.tomogram import write_tomogram
from napari_affinity_vae.model.bundled import ARCHITECTURE
from napari_affinity_vae.model.inference import use_threads
from napari_affinity_vae.model.network import AffinityVAE
from napari_affinity_vae.simulate.tomogram import Simulation

CLASSES = ("dumbbell", "elongated_dimer")
BATCH = 64


def classifier(seed: int) -> torch.nn.Module:
    """The bundled architecture's encoder and a linear layer to two classes."""
    torch.manual_seed(seed)
    encoder = AffinityVAE(ARCHITECTURE).encoder
    with torch.no_grad():
        width = encoder(torch.zeros(1, 1, *(ARCHITECTURE.box,) * 3)).shape[1]
    return torch.nn.Sequential(encoder, torch.nn.Linear(width, len(CLASSES)))


def trained(boxes: np.ndarray, labels: np.ndarray, epochs: int) -> torch.nn.Module:
    model = classifier(0)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.from_numpy(boxes[:, None]), torch.from_numpy(labels).long()
    order = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=order).split(BATCH):
            turns = int(torch.randint(4, (1,), generator=order))
            logits = model(torch.rot90(x[batch], turns, dims=(3, 4)))
            loss = torch.nn.functional.cross_entropy(logits, y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, nargs="+", default=[50, 200, 800])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    use_threads(len(os.sched_getaffinity(0)))
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads")
    with tempfile.TemporaryDirectory() as folder:
        path = write_tomogram(Path(folder) / "dumbbell.mrc", shape_map(dumbbell()), 5.0)
        settings = Simulation(classes=CLASSES, molecules={"dumbbell": path}, seed=TRAINING_SEED)
        train_boxes, train_labels = particles(settings, max(args.per_class))
        test_settings = Simulation(classes=CLASSES, molecules={"dumbbell": path}, seed=TEST_SEED)
        test_boxes, test_labels = particles(test_settings, TEST)
    rank = np.array([np.sum(train_labels[:i] == c) for i, c in enumerate(train_labels)])
    for count in args.per_class:
        chosen = rank < count
        tic = time.perf_counter()
        model = trained(train_boxes[chosen], train_labels[chosen], args.epochs)
        with torch.inference_mode():
            predicted = model(torch.from_numpy(test_boxes[:, None])).argmax(dim=1).numpy()
        f1 = f1_score(test_labels, predicted, labels=[0], average=None)[0]
        minutes = (time.perf_counter() - tic) / 60
        accuracy = np.mean(predicted == test_labels)
        print(
            f"{count} labelled per class, {args.epochs} epochs ({minutes:.1f} min): "
            f"dumbbell F1 {f1:.3f}, accuracy {accuracy:.3f} "
            f"(seed {TEST_SEED}, {TEST} per class, voxel {VOXEL_SIZE:g} A)"
        )


if __name__ == "__main__":
    main()
