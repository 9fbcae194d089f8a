"""Training throughput end to end against the bare step, measured in the same run: the full
``training_epochs`` loop (boxes in memory as the loop holds them, shuffled batches, augmentation
off and on, with and without a validation split) and the bare step (``training_step``: forward,
the loss terms, backward and Adam on one preloaded batch, repeated). Bundled architecture,
32^3 boxes, batches of 64. Each figure is the best of a few epochs, taken in turn so that a slow
spell on a shared machine falls on all of them alike; the loop's samples/s count the training
boxes over the epoch's whole time, validation included.

Target: the loop without augmentation >= 90 % of the bare step.

Usage: python benchmarks/training.py [EPOCHS]   (pin with ``taskset -c 1`` for one core)
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from napari_affinity_vae.model.bundled import ARCHITECTURE
from napari_affinity_vae.model.inference import device
from napari_affinity_vae.model.network import AffinityVAE
from napari_affinity_vae.model.train import (
    TrainingConfig,
    TrainingData,
    split,
    training_epochs,
    training_step,
)
from napari_affinity_vae.volumes import normalise

BATCH, BOXES, CLASSES = 64, 1280, 9
LOOPS = {  # name: (augment, validation fraction)
    "loop": (False, 0.0),
    "loop, augmented": (True, 0.0),
    "loop, 10 % validation": (False, 0.1),
}


def training_set() -> TrainingData:
    """Noise boxes of nine classes with a random symmetric affinity matrix."""
    rng = np.random.default_rng(0)
    boxes = normalise(rng.normal(size=(BOXES, *(ARCHITECTURE.box,) * 3)).astype(np.float32))
    affinity = rng.uniform(-1, 1, (CLASSES, CLASSES))
    affinity = (affinity + affinity.T) / 2
    np.fill_diagonal(affinity, 1)
    labels = np.arange(BOXES) % CLASSES
    return TrainingData(boxes, labels, [f"c{i}" for i in range(CLASSES)], affinity, 10.0)


def loop_epoch(data: TrainingData, augment: bool, validation: float, epochs: int) -> Callable:
    """A function running the next epoch of a training run; it returns the boxes trained on."""
    config = TrainingConfig(
        epochs=epochs + 1, batch_size=BATCH, augment=augment, validation_fraction=validation
    )
    torch.manual_seed(0)
    epochs_left = training_epochs(data, AffinityVAE(ARCHITECTURE), config)
    trained = len(split(data.labels, validation, config.seed)[0])

    def run() -> int:
        next(epochs_left)
        return trained

    return run


def bare_steps(data: TrainingData, steps: int) -> Callable:
    """A function running ``steps`` bare training steps on one batch; it returns the boxes."""
    target = device()
    torch.manual_seed(0)
    model = AffinityVAE(ARCHITECTURE).to(target).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.from_numpy(data.boxes[:BATCH]).unsqueeze(1).to(target)
    labels = torch.from_numpy(data.labels[:BATCH]).to(target)
    affinity = torch.tensor(data.affinity, dtype=torch.float32, device=target)
    scale = torch.tensor([1.0, 1e-3, 1.0, 0.0], device=target)  # 1, beta, gamma, tc

    def run() -> int:
        for _ in range(steps):
            training_step(model, optimiser, x, labels, affinity, scale, BOXES)
        if target.type == "cuda":
            torch.cuda.synchronize()
        return steps * BATCH

    return run


def main() -> None:
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    data = training_set()
    runs = {"bare step": bare_steps(data, BOXES // BATCH)}
    runs |= {name: loop_epoch(data, *setting, epochs) for name, setting in LOOPS.items()}
    for run in runs.values():  # warm up: the first epoch, the first steps
        run()
    best = dict.fromkeys(runs, 0.0)
    for _ in range(epochs):
        for name, run in runs.items():
            start = time.perf_counter()
            boxes = run()
            best[name] = max(best[name], boxes / (time.perf_counter() - start))
    cpus = len(os.sched_getaffinity(0))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores ({cpus} usable), {device()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"model: bundled architecture, {ARCHITECTURE.box}^3 boxes, batches of {BATCH}")
    for name, rate in best.items():
        print(f"{name}: {rate:,.0f} samples/s")
    for name in LOOPS:
        print(f"{name} / bare step: {best[name] / best['bare step']:.0%}")


if __name__ == "__main__":
    main()
