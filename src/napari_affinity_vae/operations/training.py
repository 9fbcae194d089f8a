"""Training as the explorer runs it (epoch by epoch, with a picture of the latent space of a
held-out sample after each epoch and the best weights so far), and the bundled model's training
set, built anew: simulated boxes of every built-in class, centred on the particles and where the
picker finds them, as the bundled model was trained."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from napari_affinity_vae.io.subtomograms import write_subtomograms
from napari_affinity_vae.model import bundled
from napari_affinity_vae.model.checkpoint import ModelCard
from napari_affinity_vae.model.datasets import load_training_set
from napari_affinity_vae.model.inference import encode
from napari_affinity_vae.model.network import AffinityVAE
from napari_affinity_vae.model.train import (
    TrainingConfig,
    TrainingData,
    split,
    training_epochs,
    weights_copy,
)
from napari_affinity_vae.particles.matching import picked_centres
from napari_affinity_vae.progress import Progress
from napari_affinity_vae.simulate.affinity import library_affinity
from napari_affinity_vae.simulate.molecules import extent
from napari_affinity_vae.simulate.subtomograms import simulate_subtomograms
from napari_affinity_vae.simulate.tomogram import Simulation

VOXEL_SIZE = 10.0


def bundled_training_set(progress: Progress | None = None) -> TrainingData:
    """The training set of ``avae train --preset bundled`` (seeded: the same every time)."""
    boxes, table = simulate_subtomograms(
        Simulation(seed=bundled.TRAINING_SEED),
        bundled.PER_CLASS,
        bundled.ARCHITECTURE.box,
        progress,
        locate=functools.partial(picked_centres, voxel_size=VOXEL_SIZE, diameter=extent),
    )
    with tempfile.TemporaryDirectory() as folder:
        write_subtomograms(folder, boxes, table, VOXEL_SIZE)
        data = load_training_set(folder, fallback_affinity=library_affinity)
    data.description = bundled.DESCRIPTION
    return data


@dataclass
class TrainedRun:
    """A finished or cancelled run the Train dock keeps, ready to save and use: the model at
    its best epoch, its card, every epoch's metrics, what the dock said of it, and the file it
    was saved to (None until saved). The session holds it while the dock is closed."""

    model: AffinityVAE
    card: ModelCard
    history: list[dict]
    status: str
    saved: Path | None = None


@dataclass(frozen=True)
class TrainingUpdate:
    """What the explorer shows after an epoch: its metrics and every epoch's so far, where the
    preview sample now lies (PCA of its latent means), its classes and whether it was held out
    of training, and a CPU copy of the weights when this epoch is the best yet (None
    otherwise)."""

    row: dict
    history: list[dict]
    preview: np.ndarray
    preview_labels: np.ndarray
    preview_held_out: bool
    best_weights: dict[str, torch.Tensor] | None


def training_steps(
    data: TrainingData,
    model: AffinityVAE,
    config: TrainingConfig,
    stop: Callable[[], bool] | None = None,
) -> Generator[tuple[int, TrainingUpdate], None, None]:
    """Train ``model`` (changed in place), yielding (epochs done, :class:`TrainingUpdate`) after
    each epoch; stop iterating to cancel, or have ``stop`` return True to end within an
    epoch."""
    _, validation = split(data.labels, config.validation_fraction, config.seed)
    sample, held_out = preview_sample(data.labels, validation)
    for epoch in training_epochs(data, model, config, stop=stop):
        weights = None
        if epoch.improved:
            weights = weights_copy(epoch.model)
        preview = latent_map(epoch.model, data.boxes[sample])
        update = TrainingUpdate(
            epoch.row, list(epoch.history), preview, data.labels[sample], held_out, weights
        )
        yield len(epoch.history), update


def preview_sample(
    labels: np.ndarray, validation: np.ndarray, limit: int = 500
) -> tuple[np.ndarray, bool]:
    """Rows the preview shows, at most ``limit``, evenly spread, and whether they are held out:
    the held-out ones, or all when fewer than three are held out or some class has none."""
    labels = np.asarray(labels)
    held_out = len(validation) >= 3 and set(labels[validation]) == set(labels)
    rows = validation if held_out else np.arange(len(labels))
    return rows[np.linspace(0, len(rows) - 1, min(limit, len(rows))).astype(int)], held_out


def latent_map(model: AffinityVAE, boxes: np.ndarray) -> np.ndarray:
    """(n, 2): the first two principal components of the boxes' latent means, each signed so
    that its largest loading is positive (so that the picture does not flip between epochs)."""
    mu = encode(model, boxes, error=False)["mu"].astype(np.float64)
    centred = mu - mu.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    axes = axes[:2]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    xy = centred @ (axes * signs[:, None]).T
    return np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
