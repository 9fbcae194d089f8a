"""The bundled models load from the installed package and meet the quality bar on freshly
simulated particles (seeds they never saw)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_affinity_vae.analysis.metrics import classification_scores
from napari_affinity_vae.model.bundled import checkpoint_path, load_bundled
from napari_affinity_vae.model.inference import encode
from napari_affinity_vae.simulate.subtomograms import simulate_subtomograms
from napari_affinity_vae.simulate.tomogram import Simulation
from napari_affinity_vae.volumes import normalise

PRESETS = ("bundled", "bundled-splat")


@pytest.mark.parametrize("preset", PRESETS)
def test_bundled_models_are_small_and_described(preset):
    model, card = load_bundled(preset)
    assert checkpoint_path(preset).stat().st_size < 10e6
    assert card.architecture.box == 32 and card.voxel_size == 10.0
    assert len(card.classes) == 9
    assert card.training["command"] == f"avae train --preset {preset}"
    assert card.architecture.decoder == ("splat" if preset == "bundled-splat" else "conv")
    assert not model.training


@pytest.mark.parametrize("preset", PRESETS)
def test_bundled_models_separate_fresh_particles(preset):
    model, card = load_bundled(preset)
    sets = {}
    for name, seed, per_class in (("fit", 21, 40), ("held_out", 22, 30)):
        boxes, table = simulate_subtomograms(Simulation(seed=seed), per_class)
        labels = np.array([card.classes.index(c) for c in table["class_name"]])
        sets[name] = (encode(model, normalise(boxes))["mu"], labels)
    scores = classification_scores(*sets["fit"], *sets["held_out"])
    assert scores["knn_macro_f1"] >= 0.9
