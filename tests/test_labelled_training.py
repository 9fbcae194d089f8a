"""Training sets from the explorer's labels: boxes of a project's labelled particles as the model
sees them, the classes' affinity, the session's label column, and the epoch-by-epoch run the
Train dock shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_affinity_vae.errors import AffinityVAEError
from napari_affinity_vae.io.particles import read_particles, write_particles
from napari_affinity_vae.io.projects import open_project
from napari_affinity_vae.model.bundled import load_bundled
from napari_affinity_vae.model.embedding import embed
from napari_affinity_vae.model.network import AffinityVAE, Architecture
from napari_affinity_vae.model.train import TrainingConfig, TrainingData
from napari_affinity_vae.operations.labelled import (
    centre_affinity,
    check_labels,
    default_affinity,
    labelled_boxes,
)
from napari_affinity_vae.operations.training import latent_map, training_steps
from napari_affinity_vae.particles.extract import extract_boxes
from napari_affinity_vae.progress import run_steps
from napari_affinity_vae.schema import AXES, CLASS_NAME, CLUSTER, LABEL, TOMO_NAME
from napari_affinity_vae.session import Session
from napari_affinity_vae.simulate.project import write_project
from napari_affinity_vae.simulate.tomogram import Simulation
from napari_affinity_vae.volumes import normalise

SMALL = Simulation(shape=(40, 96, 96), particles=7, snr=0.5, seed=11)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("project")
    write_project(folder, SMALL, 2)
    return open_project([folder / "optimisation_set.star"])


@pytest.fixture(scope="module")
def bundled():
    return load_bundled()


def test_the_boxes_of_a_projects_labelled_particles_are_those_the_model_embeds(project, bundled):
    particles = project.particles.copy()
    particles[LABEL] = None
    labelled = [0, 3, 8, 12, 13]  # rows of both tomograms, out of order across them
    particles.loc[labelled, LABEL] = ["a", "b", "a", "b", "a"]
    data = run_steps(
        labelled_boxes(particles, LABEL, project.open, bundled[1]), len(labelled), "", None
    )
    assert data.classes == ["a", "b"] and data.labels.tolist() == [0, 1, 0, 1, 0]
    assert data.boxes.shape == (5, 32, 32, 32) and data.voxel_size == bundled[1].voxel_size
    assert "5 particles labelled" in data.description and "a 3, b 2" in data.description
    for i, row in enumerate(labelled):  # each box is its own particle's, from its own tomogram
        name = particles.loc[row, TOMO_NAME]
        tomogram = project.open(name)
        own, _ = extract_boxes(tomogram.data, particles.loc[[row], list(AXES)].to_numpy(), 32)
        np.testing.assert_allclose(data.boxes[i], normalise(own)[0], atol=1e-5)


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ([None] * 4, "found none"),
        (["a", "a", None, " "], "found only 'a'"),
        (["a", "a", "b", None], "b has fewer"),
    ],
)
def test_labels_that_cannot_train_say_why(labels, problem):
    with pytest.raises(AffinityVAEError, match=problem):
        check_labels(pd.Series(labels, dtype=object))


def test_the_default_affinity_is_the_models_for_classes_it_knows(bundled):
    card = bundled[1]
    known = card.classes[:2]
    matrix = default_affinity([*known, "mine"], card)
    theirs = np.asarray(card.affinity)[:2, :2]
    np.testing.assert_allclose(matrix.loc[known, known].to_numpy(), theirs)
    assert matrix.loc["mine", "mine"] == 1 and (matrix.loc["mine", known] == 0).all()


def test_class_centres_give_a_symmetric_affinity_with_alike_classes_closer(
    sample_simulation, bundled
):
    from napari_affinity_vae.io.tomogram import Tomogram

    truth = sample_simulation.particles
    tomogram = Tomogram(Path("sample.mrc"), sample_simulation.tomogram, 10.0, True)
    table = embed(tomogram, truth[list(AXES)], *bundled)
    names = ["proteasome", "chaperonin", "globular"]  # barrels alike (maps' NCC 0.80), a sphere
    table[LABEL] = truth[CLASS_NAME].where(truth[CLASS_NAME].isin(names), None).to_numpy()
    matrix = run_steps(centre_affinity(table, LABEL, bundled[0]), 3, "", None)
    np.testing.assert_allclose(matrix.to_numpy(), matrix.to_numpy().T)
    assert np.allclose(np.diag(matrix), 1) and (np.abs(matrix.to_numpy()) <= 1).all()
    assert matrix.loc["proteasome", "chaperonin"] > matrix.loc["proteasome", "globular"]


def test_the_session_keeps_labels_through_new_results_and_exports_them(tmp_path):
    session = Session()
    session.set_particles(pd.DataFrame({"z": [1.0, 2, 3], "y": [1.0, 2, 3], "x": [1.0, 2, 3]}))
    heard = []
    session.labels_changed.connect(lambda: heard.append(1))
    version = session.version
    session.set_labels([0, 2], "ring")
    session.set_labels([2], "")  # an empty name unlabels
    assert session.particles[LABEL].fillna("").tolist() == ["ring", "", ""] and len(heard) == 2
    assert session.version == version  # a running embedding's result still fits the table
    columns = pd.DataFrame({CLUSTER: [1, -1, 0]})
    assert session.add_columns(version, columns)
    assert session.particles[LABEL].fillna("").tolist() == ["ring", "", ""]
    session.labels_from(CLUSTER)  # HDBSCAN's noise stays unlabelled
    assert session.particles[LABEL].fillna("").tolist() == ["cluster1", "", "cluster0"]
    out = write_particles(session.particles, tmp_path / "labelled.star")
    back = read_particles(out)
    assert back[LABEL].fillna("").tolist() == ["cluster1", "", "cluster0"]


def test_each_epoch_reports_its_losses_a_preview_and_the_best_weights():
    rng = np.random.default_rng(0)
    boxes = rng.normal(0, 1, (24, 16, 16, 16)).astype(np.float32)
    boxes[12:, 4:12, 4:12, 4:12] -= 3  # a second class with a dark cube
    data = TrainingData(normalise(boxes), np.repeat([0, 1], 12), ["noise", "cube"], np.eye(2), 10.0)
    model = AffinityVAE(Architecture(box=16, depth=2, capacity=4, latent_dims=3))
    config = TrainingConfig(epochs=3, batch_size=8, validation_fraction=0.25)
    updates = [u for _, u in training_steps(data, model, config)]
    assert [u.row["epoch"] for u in updates] == [1, 2, 3]
    assert len(updates[-1].history) == 3 and "val_affinity" in updates[-1].row
    assert updates[0].best_weights is not None  # the first epoch is the best so far
    assert all(u.preview.shape == (6, 2) for u in updates)  # the 6 held-out boxes
    best = [u for u in updates if u.best_weights is not None][-1]
    assert set(best.best_weights) == set(model.state_dict())
    assert all(v.device.type == "cpu" for v in best.best_weights.values())


def test_the_latent_map_does_not_flip_between_calls():
    model = AffinityVAE(Architecture(box=16, depth=2, capacity=4, latent_dims=3))
    boxes = normalise(np.random.default_rng(1).normal(0, 1, (10, 16, 16, 16)))
    first, again = latent_map(model, boxes), latent_map(model, boxes[::-1].copy())
    np.testing.assert_allclose(first, again[::-1], atol=1e-4)
    assert latent_map(model, boxes[:1]).shape == (1, 2)


def test_boxes_keep_the_tables_order_when_tomograms_interleave(project, bundled):
    particles = project.particles.copy()
    particles[LABEL] = None
    labelled = [9, 1, 10, 2]  # TS_02, TS_01, TS_02, TS_01 once sorted: 1, 2, 9, 10
    particles.loc[labelled, LABEL] = ["b", "a", "b", "a"]
    shuffled = particles.iloc[[9, 1, 10, 2, *range(11, 14), 0, *range(3, 9)]]
    data = run_steps(labelled_boxes(shuffled, LABEL, project.open, bundled[1]), 4, "", None)
    assert data.labels.tolist() == [1, 0, 1, 0]  # b, a, b, a: the shuffled table's order
    for i, row in enumerate(labelled):
        tomogram = project.open(particles.loc[row, TOMO_NAME])
        own, _ = extract_boxes(tomogram.data, particles.loc[[row], list(AXES)].to_numpy(), 32)
        np.testing.assert_allclose(data.boxes[i], normalise(own)[0], atol=1e-5)
