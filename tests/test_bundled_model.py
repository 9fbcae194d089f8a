"""The bundled model loads from the installed package and meets the quality bar on freshly
simulated particles (seeds it never saw)."""

from __future__ import annotations

import numpy as np

from napari_affinity_vae.analysis.metrics import classification_scores
from napari_affinity_vae.model.bundled import BUNDLED, load_bundled
from napari_affinity_vae.model.inference import encode, normalise
from napari_affinity_vae.simulate.subtomograms import simulate_subtomograms
from napari_affinity_vae.simulate.tomogram import Simulation


def test_bundled_model_is_small_and_described():
    model, card = load_bundled()
    assert BUNDLED.stat().st_size < 10e6
    assert card.architecture.box == 32 and card.voxel_size == 10.0
    assert len(card.classes) == 9
    assert card.training["command"] == "avae train --preset bundled"
    assert not model.training


def test_bundled_model_separates_fresh_particles():
    model, card = load_bundled()
    sets = {}
    for name, seed, per_class in (("fit", 21, 40), ("held_out", 22, 30)):
        boxes, table = simulate_subtomograms(Simulation(seed=seed), per_class)
        labels = np.array([card.classes.index(c) for c in table["class_name"]])
        sets[name] = (encode(model, normalise(boxes))["mu"], labels)
    scores = classification_scores(*sets["fit"], *sets["held_out"])
    assert scores["knn_macro_f1"] >= 0.9
