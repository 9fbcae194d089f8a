"""Labels taken away, and results of a model or a run no longer current, as a person meets them:
unlabelling the last labels, a decode or a cancel arriving after the model or the run changed,
latents of another model of the same sizes, a project with a tomogram not embedded."""

from __future__ import annotations

import html
import re
import time

import numpy as np
import pandas as pd
import pytest

from napari_affinity_vae.analysis.explain import Dimension, Explanation, Formula, Scale, Term
from napari_affinity_vae.io.particles import read_particles, write_particles
from napari_affinity_vae.model.bundled import load_bundled
from napari_affinity_vae.model.checkpoint import save_checkpoint
from napari_affinity_vae.session import NOT_EMBEDDED_BY_MODEL
from napari_affinity_vae.widgets import decode as decode_module
from napari_affinity_vae.widgets import train as train_module
from napari_affinity_vae.widgets.embed import BUNDLED, CHECKPOINT
from napari_affinity_vae.widgets.export import ALL
from test_clicks import (
    _embed_by_clicks,
    click,
    messages,
    open_and_import,
    three_picks,
    type_into,
)
from test_project_explorer import _embed_by_clicks as _embed_project
from test_project_explorer import open_with_ts_02_broken, project_folder  # noqa: F401
from test_train_explorer import clustered, label_cluster, train_two_classes  # noqa: F401

WAIT_MS = 120_000
NO_LABELS = "No particles labelled yet: label a selection in the Latent scatter"


def slowly(function, seconds: float = 1.0):
    """``function`` taking at least ``seconds`` (a job the user can act during)."""

    def slow(*args, **kwargs):
        time.sleep(seconds)
        return function(*args, **kwargs)

    return slow


def test_taking_the_last_labels_away_colours_and_lists_no_class(
    explorer,
    qtbot,
    tmp_path,
    small_tomogram,
    notifications,
):
    _, widgets, session = explorer
    picks = open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "picks"))
    scatter, train = widgets["Latent scatter"], widgets["Train"]
    picks.selected_data = {0, 1}
    click(qtbot, scatter.label_button)  # an empty name before anything was labelled
    assert messages(notifications)[-1] == (
        "None of the 2 selected particles has a label to remove: type a class name in Label to "
        "label them"
    )
    type_into(qtbot, scatter.label_name, "alpha")
    click(qtbot, scatter.label_button)
    assert train.classes.value == "1 class: alpha (2)" and scatter.colour_by.value == "label"
    type_into(qtbot, scatter.label_name, "")
    click(qtbot, scatter.label_button)
    assert train.classes.value == NO_LABELS and scatter.colour_by.value != "label"

    noise = pd.DataFrame({"z": [20.0, 20.0], "y": [20.0, 40.0], "x": [20.0, 40.0]})
    noise["cluster"] = -1  # HDBSCAN's unclustered particles only
    type_into(qtbot, widgets["Particles"].file, str(write_particles(noise, tmp_path / "n.csv")))
    click(qtbot, widgets["Particles"].import_button)
    click(qtbot, scatter.clusters_button)
    assert session.particles["label"].isna().all() and train.classes.value == NO_LABELS


def test_a_point_added_by_hand_takes_no_other_particle_s_label_score_or_tag(
    explorer,
    qtbot,
    tmp_path,
    small_tomogram,
):
    _, widgets, session = explorer
    table = pd.DataFrame({"z": [20.0, 20.0], "y": [20.0, 40.0], "x": [20.0, 40.0]})
    table["score"], table["tomo_name"] = [0.9, 0.7], "1"
    picks_file = write_particles(table, tmp_path / "scored.tbl")  # a Dynamo table: tags 1, 2
    picks = open_and_import(qtbot, widgets, small_tomogram, picks_file)
    scatter, train, export = widgets["Latent scatter"], widgets["Train"], widgets["Export"]
    picks.selected_data = {0, 1}
    type_into(qtbot, scatter.label_name, "alpha")
    click(qtbot, scatter.label_button)
    picks.selected_data = {0}  # one particle selected in the viewer: napari would copy it
    picks.mode = "add"
    picks.add(np.array([[30.0, 30.0, 30.0]]))  # what a click on the tomogram in add mode does
    added = session.particles.iloc[-1]
    assert len(session.particles) == 3 and pd.isna(added["label"]) and pd.isna(added["tag"])
    assert added["tomo_name"] == session.particles["tomo_name"].iloc[0]  # shared: it stays
    assert train.classes.value == "1 class: alpha (2)"
    export.what.value = "All particles"
    type_into(qtbot, export.file, str(tmp_path / "out.tbl"))
    click(qtbot, export.export_button)
    assert np.loadtxt(tmp_path / "out.tbl")[:, 0].tolist() == [1, 2, 3]  # a tag of its own


def legend_links(legend) -> list[tuple[str, str]]:
    """The legend's categories as a person reads them, and the link a click on each sends."""
    found = re.findall(r'<a href="([^"]*)"[^>]*>&#9679;&nbsp;(.*?)</a>', legend.text())
    return [(html.unescape(re.sub("</?i>", "", name)), link) for link, name in found]


def test_label_names_show_as_typed_and_each_legend_entry_selects_its_own(
    explorer,
    qtbot,
    tmp_path,
    small_tomogram,
):
    _, widgets, session = explorer
    picks = open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "p", n=3))
    picks.add(np.array([[30.0, 30.0, 30.0], [30.0, 20.0, 45.0]]))
    _embed_by_clicks(qtbot, widgets, "k-means", k=2)
    scatter = widgets["Latent scatter"]
    names = {0: '<mito> ATP "synthase"', 1: "x<y & z", 2: "-1", 3: "unlabelled"}  # row 4: none
    for row, name in names.items():
        session.select([row])
        type_into(qtbot, scatter.label_name, name)
        click(qtbot, scatter.label_button)
    assert scatter.colour_by.value == "label"
    links = legend_links(scatter.legend)
    shown = [name for name, _ in links]
    assert shown == [*names.values(), "unlabelled"]  # as named; the last: no label at all
    assert "<mito>" not in scatter.legend.text()  # shown as text, not taken for markup
    rows = {name: row for row, name in names.items()}
    for (name, link), row in zip(links, [*(rows[n] for n in shown[:-1]), 4], strict=True):
        scatter.legend.linkActivated.emit(link)
        assert session.selection.tolist() == [row], name


@pytest.mark.parametrize("suffix", [".csv", ".star"])
def test_labels_typed_as_numbers_come_back_as_the_same_classes(
    explorer, qtbot, tmp_path, small_tomogram, suffix
):
    """Labels 1 and 007, exported and imported, came back as the numbers 1.0 and 7.0: coloured
    as a measurement, no legend to select a class by."""
    _, widgets, session = explorer
    open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "p", n=3))
    _embed_by_clicks(qtbot, widgets, "k-means", k=2)
    scatter, export = widgets["Latent scatter"], widgets["Export"]
    for row, name in ((0, "1"), (1, "007")):
        session.select([row])
        type_into(qtbot, scatter.label_name, name)
        click(qtbot, scatter.label_button)
    export.what.value, export.latents.value = ALL, True  # the 2D map too: a legend to click
    type_into(qtbot, export.file, str(tmp_path / f"labelled{suffix}"))
    click(qtbot, export.export_button)
    type_into(qtbot, widgets["Particles"].file, str(tmp_path / f"labelled{suffix}"))
    click(qtbot, widgets["Particles"].import_button)
    assert session.particles["label"].tolist()[:2] == ["1", "007"]
    scatter.colour_by.value = "label"
    assert [name for name, _ in legend_links(scatter.legend)] == ["1", "007", "unlabelled"]


def test_a_class_keeps_its_colour_as_others_are_named(explorer, qtbot, tmp_path, small_tomogram):
    """Classes were coloured in sorted order: zeta, blue, turned orange once alpha was named,
    in the scatter and in the viewer alike."""
    _, widgets, session = explorer
    picks = open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "p", n=3))
    _embed_by_clicks(qtbot, widgets, "k-means", k=2)
    scatter = widgets["Latent scatter"]

    def name(row: int, label: str) -> None:
        session.select([row])
        type_into(qtbot, scatter.label_name, label)
        click(qtbot, scatter.label_button)

    name(2, "zeta")
    zeta = (scatter._colours[2].copy(), picks.border_color[2].copy())
    name(0, "alpha")
    name(1, "beta")
    np.testing.assert_allclose(scatter._colours[2], zeta[0])
    np.testing.assert_allclose(picks.border_color[2], zeta[1])
    assert len({tuple(c) for c in scatter._colours}) == 3  # each its own
    assert [n for n, _ in legend_links(scatter.legend)] == ["zeta", "alpha", "beta"]


def test_labels_a_file_came_with_keep_their_colours_as_a_class_is_named(
    explorer, qtbot, tmp_path, small_tomogram
):
    """Labels read with the particles sorted after those named since, so naming one moved
    them all."""
    _, widgets, session = explorer
    table = read_particles(three_picks(tmp_path / "p", n=3)).assign(label=["beta", "alpha", None])
    picks = write_particles(table, tmp_path / "labelled.csv")
    open_and_import(qtbot, widgets, small_tomogram, picks)
    _embed_by_clicks(qtbot, widgets, "k-means", k=2)
    scatter = widgets["Latent scatter"]
    scatter.colour_by.value = "label"
    before = scatter._colours[:2].copy()
    session.select([2])
    type_into(qtbot, scatter.label_name, "aardvark")  # sorts before both
    click(qtbot, scatter.label_button)
    np.testing.assert_allclose(scatter._colours[:2], before)
    assert [n for n, _ in legend_links(scatter.legend)] == ["alpha", "beta", "aardvark"]


def test_a_decode_of_a_model_unloaded_meanwhile_and_another_models_latents(
    explorer,
    qtbot,
    tmp_path,
    small_tomogram,
    notifications,
    monkeypatch,
):
    viewer, widgets, session = explorer
    picks = open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "picks"))
    _embed_by_clicks(qtbot, widgets, "k-means", k=2)
    picks.selected_data = {0, 1}
    decode, embed = widgets["Decode"], widgets["Embed"]
    monkeypatch.setattr(decode_module, "decode_volumes", slowly(decode_module.decode_volumes))
    click(qtbot, decode.decode_button)
    assert decode.decoding.running
    embed.source.value = CHECKPOINT  # no checkpoint chosen yet: no model
    qtbot.waitUntil(lambda: not decode.decoding.running, timeout=WAIT_MS)
    qtbot.wait(50)
    assert session.model is None and "decoded" not in viewer.layers

    model, card = load_bundled()  # the same sizes, another model (another training)
    card.training = {**card.training, "data": "another run"}
    other, _ = save_checkpoint(model, card, tmp_path / "other.safetensors")
    type_into(qtbot, embed.checkpoint, str(other))
    assert session.card.training["data"] == "another run"
    click(qtbot, decode.decode_button)
    assert messages(notifications)[-1] == NOT_EMBEDDED_BY_MODEL
    # the latents alone: an explanation (of 2 of 3 particles none passes a test: one is given),
    # whose buttons...
    found = Explanation(
        (Dimension(0, 1.0, 0.5, -0.5),),
        Formula(0.0, (Term((0,), 1.0),), (Scale(0, 0.0, 1.0),)),
        None,
    )
    monkeypatch.setattr(decode_module, "explain_selection", lambda *_args: found)
    click(qtbot, decode.explain_button)
    qtbot.waitUntil(lambda: len(decode.explanation) > 0, timeout=WAIT_MS)
    click(qtbot, decode.explanation[0])  # ...traverse with the model: refused the same way
    assert messages(notifications).count(NOT_EMBEDDED_BY_MODEL) == 2
    assert "decoded" not in viewer.layers and "traversal latent 0" not in viewer.layers
    embed.source.value = BUNDLED  # the model that embedded them, loaded again
    click(qtbot, decode.decode_button)
    qtbot.waitUntil(lambda: "decoded" in viewer.layers, timeout=WAIT_MS)


def test_from_class_centres_refuses_another_models_latents(
    clustered,  # noqa: F811
    qtbot,
    tmp_path,
    notifications,
):
    _, widgets, _session, _docks = clustered
    scatter, train, embed = widgets["Latent scatter"], widgets["Train"], widgets["Embed"]
    label_cluster(qtbot, scatter, 0, "alpha")
    label_cluster(qtbot, scatter, 1, "beta")
    model, card = load_bundled()
    card.training = {**card.training, "data": "another run"}
    other, _ = save_checkpoint(model, card, tmp_path / "other.safetensors")
    embed.source.value = CHECKPOINT
    type_into(qtbot, embed.checkpoint, str(other))
    click(qtbot, train.centres_button)
    assert messages(notifications)[-1] == NOT_EMBEDDED_BY_MODEL and not train.task.running


def slow_down(monkeypatch, name: str, seconds: float) -> None:
    """The Train dock's background step ``name`` waits ``seconds`` before its first step, so
    that the user can act while it runs."""
    steps = getattr(train_module, name)

    def slow(*args, **kwargs):
        time.sleep(seconds)
        yield 0
        return (yield from steps(*args, **kwargs))

    monkeypatch.setattr(train_module, name, slow)


def test_labels_that_read_as_one_number_are_distinct_classes(clustered, qtbot):  # noqa: F811
    """The scatter showed "1" and "01" apart, the Train dock merged them, and "007" became 7."""
    _, widgets, _session, _docks = clustered
    scatter, train = widgets["Latent scatter"], widgets["Train"]
    for cluster, name in enumerate(["1", "01", "007"]):
        label_cluster(qtbot, scatter, cluster, name)
    assert train.classes.value.startswith("3 classes: 007 (")
    assert train.affinity.classes == ["007", "01", "1"]


def test_a_class_labelled_while_the_affinity_is_found_keeps_its_row_and_trains(
    clustered,  # noqa: F811
    qtbot,
    monkeypatch,
):
    """The table went back to the classes the search began with, and Train then failed with
    a KeyError, its status stuck at "cutting the labelled particles' boxes"."""
    _, widgets, _session, _docks = clustered
    scatter, train = widgets["Latent scatter"], widgets["Train"]
    label_cluster(qtbot, scatter, 0, "alpha")
    label_cluster(qtbot, scatter, 1, "beta")
    slow_down(monkeypatch, "centre_affinity", 1.0)
    click(qtbot, train.centres_button)
    label_cluster(qtbot, scatter, 2, "gamma")  # while the search runs
    qtbot.waitUntil(lambda: not train.task.running, timeout=WAIT_MS)
    assert train.affinity.classes == ["alpha", "beta", "gamma"]
    assert train.status.value == (
        "affinity from the decoded class centres; gamma, labelled since, has the default affinities"
    )
    found = train.affinity.matrix().loc["alpha", "beta"]
    assert found != 0  # the centres' affinity, not the default's 0
    train.epochs.value = 1
    click(qtbot, train.train_button)
    qtbot.waitUntil(lambda: not train.task.running and train.trained is not None, timeout=WAIT_MS)
    assert train.status.value.startswith("trained 1 epoch")


def test_cancel_while_cutting_boxes_keeps_no_earlier_model(
    clustered,  # noqa: F811
    qtbot,
    monkeypatch,
):
    _, widgets, _session, _docks = clustered
    train = train_two_classes(qtbot, widgets, 2)
    qtbot.waitUntil(lambda: not train.task.running and train.trained is not None, timeout=WAIT_MS)
    assert train.save_button.enabled and train.status.value.startswith("trained 2 epochs")
    trained, table = train.trained, train.affinity.matrix()

    slow_down(monkeypatch, "centre_affinity", 0.5)
    click(qtbot, train.centres_button)
    click(qtbot, train.cancel_button)
    qtbot.waitUntil(lambda: not train.task.running, timeout=WAIT_MS)
    assert train.status.value == "affinity cancelled: the table is as it was"
    assert train.trained is trained and train.affinity.matrix().equals(table)

    slow_down(monkeypatch, "labelled_boxes", 0.5)
    click(qtbot, train.train_button)
    assert train.status.value == "cutting the labelled particles' boxes"
    click(qtbot, train.cancel_button)
    qtbot.waitUntil(lambda: not train.task.running, timeout=WAIT_MS)
    assert train.status.value == "cancelled before training (while cutting boxes)"
    assert train.trained is None and not train.save_button.enabled


@pytest.mark.usefixtures("project_folder")
def test_a_traversal_in_a_project_with_a_tomogram_not_embedded_has_no_nan(
    make_napari_viewer,
    qtbot,
    tmp_path,
    project_folder,  # noqa: F811
):
    viewer = make_napari_viewer()
    widgets, session, _ = open_with_ts_02_broken(viewer, qtbot, tmp_path, project_folder)
    _embed_project(qtbot, widgets, session)
    scatter, decode = widgets["Latent scatter"], widgets["Decode"]
    scatter.colour_by.value = "cluster"
    scatter.legend.linkActivated.emit("0")
    click(qtbot, decode.explain_button)
    qtbot.waitUntil(lambda: len(decode.explanation) > 0, timeout=WAIT_MS)
    click(qtbot, decode.explanation[0])
    qtbot.waitUntil(
        lambda: any(x.name.startswith("traversal latent") for x in viewer.layers), timeout=WAIT_MS
    )
    traversal = next(x for x in viewer.layers if x.name.startswith("traversal latent"))
    assert np.isfinite(traversal.data).all()
