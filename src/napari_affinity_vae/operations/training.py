"""The bundled model's training set, built anew: simulated boxes of every built-in class, centred
on the particles and where the picker finds them, as the bundled model was trained."""

from __future__ import annotations

import functools
import tempfile

from napari_affinity_vae.io.subtomograms import write_subtomograms
from napari_affinity_vae.model import bundled
from napari_affinity_vae.model.datasets import load_training_set
from napari_affinity_vae.model.train import TrainingData
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
