"""Training in napari, as a person does it: label clusters in the Latent scatter, train in the Train
dock watching the loss plot and the preview, cancel, save, and embed again with the new model."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
import starfile
from napari.layers import Layer
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFileDialog, QLineEdit, QMessageBox

from conftest import blob_map, write_mrc
from napari_affinity_vae._sample_data import sample_layers
from napari_affinity_vae.demo import add_dock_widgets
from napari_affinity_vae.io.particles import read_particles, write_particles
from napari_affinity_vae.operations.labelled import labelled_boxes
from napari_affinity_vae.progress import run_steps
from napari_affinity_vae.schema import CLUSTER, LABEL, latent_columns
from napari_affinity_vae.widgets.embed import CHECKPOINT
from napari_affinity_vae.widgets.train import SCRATCH
from napari_affinity_vae.widgets.viewer_session import session_for
from test_clicks import (
    _embed_by_clicks,
    answer_next_dialog,
    click,
    messages,
    open_and_import,
    three_picks,
    type_into,
)

WAIT_MS = 120_000


@pytest.fixture
def clustered(make_napari_viewer, sample_simulation, qtbot):
    """The sample tomogram picked, embedded and clustered by clicks."""
    viewer = make_napari_viewer()
    widgets, docks = add_dock_widgets(viewer)
    for data, kwargs, kind in sample_layers(sample_simulation):
        viewer.add_layer(Layer.create(data, kwargs, kind))
    session = session_for(viewer)
    click(qtbot, widgets["Particles"].pick_button)
    qtbot.waitUntil(lambda: not widgets["Particles"].task.running, timeout=WAIT_MS)
    embed = widgets["Embed"]
    embed.projection.value = "PCA"
    click(qtbot, embed.run_button)
    qtbot.waitUntil(
        lambda: session.clusters is not None and not embed.task.running, timeout=WAIT_MS
    )
    return viewer, widgets, session, docks


def label_cluster(qtbot, scatter, cluster: int, name: str) -> None:
    """Click a cluster in the legend, type a name, click Label selection."""
    scatter.colour_by.value = CLUSTER
    scatter.legend.linkActivated.emit(str(cluster))
    type_into(qtbot, scatter.label_name, name)
    click(qtbot, scatter.label_button)


def train_two_classes(qtbot, widgets, epochs: int):
    """Label clusters 0 and 1 alpha and beta, type the epochs and click Train; the Train dock."""
    scatter, train = widgets["Latent scatter"], widgets["Train"]
    label_cluster(qtbot, scatter, 0, "alpha")
    label_cluster(qtbot, scatter, 1, "beta")
    train.epochs.value = epochs
    click(qtbot, train.train_button)
    return train


def edit_cell(qtbot, table, row: int, column: int, text: str) -> None:
    """Click a cell of a table, press F2 to edit it, type over its value and press Return."""
    centre = table.visualItemRect(table.item(row, column)).center()
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    qtbot.keyClick(table, Qt.Key.Key_F2)
    editor = [e for e in table.findChildren(QLineEdit) if e.isVisible()][-1]  # F2 opened it
    editor.window().windowHandle().requestActivate()  # Xvfb has no window manager to do it
    qtbot.waitUntil(editor.hasFocus)
    editor.selectAll()
    qtbot.keyClicks(editor, text)
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: table.state() != table.State.EditingState)  # Qt commits it queued


def test_label_two_clusters_train_cancel_save_and_embed_again(
    clustered, qtbot, tmp_path, notifications
):
    _, widgets, session, _docks = clustered
    scatter, train, embed = widgets["Latent scatter"], widgets["Train"], widgets["Embed"]
    label_cluster(qtbot, scatter, 0, "alpha")
    label_cluster(qtbot, scatter, 1, "beta")
    clusters = session.particles[CLUSTER]
    assert set(session.particles.loc[clusters == 0, LABEL]) == {"alpha"}
    assert set(session.particles.loc[clusters == 1, LABEL]) == {"beta"}
    assert session.particles.loc[clusters > 1, LABEL].isna().all()
    assert scatter.colour_by.value == LABEL and "alpha" in scatter.legend.text()
    assert train.classes.value.startswith("2 classes: alpha (")
    assert train.affinity.classes == ["alpha", "beta"]

    train.epochs.value = 500  # far more than the test waits for: it cancels
    click(qtbot, train.train_button)
    qtbot.waitUntil(lambda: len(train.history) >= 3, timeout=WAIT_MS)
    drawn = train.losses.lines["reconstruction"]._pos
    assert drawn is not None and len(drawn) >= 3  # the loss plot shows every epoch so far
    assert train.preview.points._data is not None and len(train.preview.points._data) >= 3
    assert "alpha" in train.legend.text() and "beta" in train.legend.text()
    label_cluster(qtbot, scatter, 2, "gamma")  # while it trains: the run keeps its labels
    click(qtbot, train.cancel_button)
    qtbot.waitUntil(lambda: not train.task.running, timeout=WAIT_MS)
    assert "cancelled after" in train.status.value and "kept epoch" in train.status.value
    assert train.status.value.endswith("on the labels as they were: train again for the new")
    epochs = len(train.history)
    assert 3 <= epochs < 500

    type_into(qtbot, train.file, f" {tmp_path / 'mine_v1.5'} ")  # dotted, no suffix, spaces
    click(qtbot, train.save_button)
    out, card_path = tmp_path / "mine_v1.5.safetensors", tmp_path / "mine_v1.5.json"
    card = json.loads(card_path.read_text())
    assert card["classes"] == ["alpha", "beta"]
    assert card["training"]["init"] == "bundled"
    assert card["training"]["best_epoch"] <= epochs
    assert "labelled by their label (alpha " in card["training"]["data"]
    assert card["training"]["data"].endswith(f"from tomogram {session.tomogram.name}")
    assert any("Saved" in m for m in messages(notifications))

    type_into(qtbot, train.file, str(tmp_path / "no_such_folder" / "mine"))
    click(qtbot, train.save_button)
    assert messages(notifications)[-1].endswith(
        "no_such_folder is no folder: choose one that exists"
    )
    assert not (tmp_path / "no_such_folder").exists()
    type_into(qtbot, train.file, "/")  # a folder naming no file: said so, not a traceback
    click(qtbot, train.save_button)
    assert messages(notifications)[-1] == "/ is a folder: type another name (Save as)"
    type_into(qtbot, train.file, "")
    click(qtbot, train.use_button)  # nothing to save to: said, and nothing embedded
    assert messages(notifications)[-1].endswith(
        "Type the name of the file to save the model to (Save as)"
    )
    assert not embed.task.running
    (tmp_path / "taken.safetensors").mkdir()
    (tmp_path / "taken.json").write_text("an older card")
    type_into(qtbot, train.file, str(tmp_path / "taken"))
    click(qtbot, train.save_button)  # refused before asking to replace
    shown = messages(notifications)[-1]
    assert shown.endswith("taken.safetensors is a folder: type another name (Save as)")
    assert (tmp_path / "taken.json").read_text() == "an older card"

    before = session.particles[latent_columns(session.particles)].to_numpy()
    type_into(qtbot, train.file, str(tmp_path / "mine_v2"))  # used under another name
    click(qtbot, train.use_button)
    qtbot.waitUntil(lambda: embed.task.running, timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: not embed.task.running and session.clusters is not None, timeout=WAIT_MS
    )
    out, card_path = tmp_path / "mine_v2.safetensors", tmp_path / "mine_v2.json"
    assert embed.source.value == CHECKPOINT and embed.checkpoint.value == out
    assert session.card.path == card_path
    after = session.particles[latent_columns(session.particles)].to_numpy()
    assert after.shape == before.shape and not np.allclose(after, before)
    assert set(session.particles.loc[clusters == 0, LABEL]) == {"alpha"}  # labels stay
    assert scatter.colour_by.value == LABEL and "alpha" in scatter.legend.text()  # still shown

    click(qtbot, train.train_button)  # a new run, cancelled before its first epoch
    click(qtbot, train.cancel_button)
    qtbot.waitUntil(lambda: not train.task.running, timeout=WAIT_MS)
    assert not train.history and not train.save_button.enabled
    assert not train.losses.lines and not train.legend.text()  # not the last run's
    assert not train.preview.points.visible


def test_labels_typed_by_the_user_are_trained_on_over_a_files_classes(
    explorer, qtbot, tmp_path, small_tomogram, notifications
):
    """Picks from a classification (a class_name column) are labelled anew in the explorer:
    the Train dock then trains on what the user typed."""
    _, widgets, _session = explorer
    picks = three_picks(tmp_path / "picks")
    table = read_particles(picks).assign(class_name=["ribosome", "ribosome", "proteasome"])
    picks = write_particles(table, tmp_path / "classified.csv")
    open_and_import(qtbot, widgets, small_tomogram, picks)
    train, scatter = widgets["Train"], widgets["Latent scatter"]
    assert train.labels_from.value == "class_name" and "ribosome (2)" in train.classes.value
    _embed_by_clicks(qtbot, widgets, "k-means", k=2)
    label_cluster(qtbot, scatter, 0, "good")
    label_cluster(qtbot, scatter, 1, "bad")
    assert train.labels_from.value == LABEL
    assert train.classes.value.startswith("2 classes: ") and "good (" in train.classes.value
    assert train.affinity.classes == ["bad", "good"]
    typed = list(_session.particles[LABEL])
    label_cluster(qtbot, scatter, 0, "NaN")  # a file's word for a missing value
    assert list(_session.particles[LABEL]) == typed
    assert "'NaN' is how STAR and CSV files write a missing value" in messages(notifications)[-1]
    asked = answer_next_dialog(QMessageBox.StandardButton.No)
    click(qtbot, scatter.clusters_button)  # typed labels are not replaced without asking
    assert "3 particles labelled otherwise (" in asked[0] and "Replace their labels?" in asked[0]
    assert list(_session.particles[LABEL]) == typed
    answer_next_dialog(QMessageBox.StandardButton.Yes)
    click(qtbot, scatter.clusters_button)
    assert set(_session.particles[LABEL]) == {"cluster0", "cluster1"}


def test_a_relion_classification_s_class_numbers_are_offered_to_train_on(
    explorer, qtbot, tmp_path, small_tomogram
):
    _, widgets, _session = explorer
    classified = tmp_path / "run_it025_data.star"  # RELION 4 pixels, as a 3D classification
    rows = {
        "rlnTomoName": ["small"] * 4,
        "rlnCoordinateX": [20.0, 40.0, 40.0, 30.0],
        "rlnCoordinateY": [20.0, 40.0, 20.0, 30.0],
        "rlnCoordinateZ": [20.0] * 4,
        "rlnClassNumber": [1.0, 2.0, 1.0, 2.0],  # as a column with a blank reads: "1", not "1.0"
    }
    starfile.write({"particles": pd.DataFrame(rows)}, classified)
    open_and_import(qtbot, widgets, small_tomogram, classified)
    train = widgets["Train"]
    assert train.labels_from.value == "rlnClassNumber"
    assert train.classes.value.startswith("2 classes: 1 (2), 2 (2)")
    assert train.affinity.classes == ["1", "2"]
    train.epochs.value = 1
    type_into(qtbot, train.validation, "0.5")  # one of each class held out: too few to show
    click(qtbot, train.train_button)
    qtbot.waitUntil(lambda: not train.task.running and train.trained is not None, timeout=WAIT_MS)
    assert train.legend.text().startswith("<b>all particles</b>")  # not all trained on
    dots = train.losses.points["reconstruction"]._data  # one epoch: a dot, not a line
    assert dots is not None and len(dots) == 1


def test_training_to_the_end_keeps_the_best_epoch_and_asks_before_replacing(
    clustered, qtbot, tmp_path
):
    _, widgets, session, _docks = clustered
    scatter, train = widgets["Latent scatter"], widgets["Train"]
    click(qtbot, scatter.clusters_button)
    assert session.particles[LABEL].str.startswith("cluster").all()
    train.start.value = SCRATCH
    train.latent_dims.value = 4
    train.epochs.value = 3
    type_into(qtbot, train.tc, "0.2")
    type_into(qtbot, train.validation, "0.01")  # under one particle of the largest cluster
    click(qtbot, train.train_button)
    qtbot.waitUntil(lambda: not train.task.running and train.trained is not None, timeout=WAIT_MS)
    assert train.status.value.startswith("trained 3 epochs; kept epoch")
    assert train.status.value.endswith("(the best training loss)")  # none was held out
    assert train.legend.text().startswith("<b>all particles (trained on)</b>")
    model, card = train.trained
    assert model.architecture.latent_dims == 4 and "init" not in card.training
    assert len(card.training["history"]) == 3
    assert card.training["config"]["tc"]["high"] == pytest.approx(0.2)
    # in batches of 32, not 64: the sample's particles make 8 steps an epoch and more
    assert len(session.particles) // 32 >= 8 and card.training["config"]["batch_size"] == 32
    assert "tc" in train.losses.terms  # the total correlation has its own panel

    out = tmp_path / "scratch.safetensors"
    out.write_bytes(b"someone else's")
    train.file.value = out
    answer_next_dialog(QMessageBox.StandardButton.No)
    click(qtbot, train.save_button)
    assert out.read_bytes() == b"someone else's"
    answer_next_dialog(QMessageBox.StandardButton.Yes)
    click(qtbot, train.save_button)
    assert out.stat().st_size > 1000 and out.with_suffix(".json").is_file()


def test_training_without_two_labelled_classes_says_what_to_do(clustered, qtbot, notifications):
    _, widgets, _session, _docks = clustered
    scatter, train = widgets["Latent scatter"], widgets["Train"]
    click(qtbot, train.train_button)
    assert "at least two classes labelled; found none" in messages(notifications)[-1]
    label_cluster(qtbot, scatter, 0, "alpha")
    click(qtbot, train.train_button)
    assert "found only 'alpha'" in messages(notifications)[-1]
    assert not train.task.running and not train.save_button.enabled
    click(qtbot, train.centres_button)  # not training: the affinity is what needs them
    assert messages(notifications)[-1] == (
        "An affinity needs particles of at least two classes labelled; found only 'alpha'"
    )


def test_affinity_is_edited_in_its_table_or_read_from_another_tools_csv(
    clustered, qtbot, tmp_path, monkeypatch, notifications
):
    viewer, widgets, _session, docks = clustered
    scatter, train = widgets["Latent scatter"], widgets["Train"]
    viewer.window.show()  # a table takes edits only when it is on the screen
    docks["Train"].raise_()
    qtbot.waitUntil(train.affinity.isVisible)
    reference = tmp_path / "affinity_scores.csv"  # the reference affinity-VAE's layout
    reference.write_text(
        "alpha,beta,gamma,delta\n1,0.2,-0.5,0\n0.2,1,0.1,0\n-0.5,0.1,1,0\n0,0,0,1\n"
    )
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *_a, **_k: (str(reference), ""))
    click(qtbot, train.load_button)  # nothing labelled: "affinity from" it said, reading none
    assert messages(notifications)[-1].endswith(
        "affinity_scores.csv was not read: label classes first (the affinities of the labelled "
        "classes are taken from it)"
    )
    assert train.status.value != "affinity from affinity_scores.csv"
    for cluster, name in enumerate(("alpha", "beta", "gamma")):
        label_cluster(qtbot, scatter, cluster, name)
    table = train.affinity
    assert table.classes == ["alpha", "beta", "gamma"]
    edit_cell(qtbot, table, 0, 1, "0.7")
    assert table.item(1, 0).text() == "0.70"  # mirrored: the matrix stays symmetric
    assert table.item(0, 1).background().color().red() > table.item(0, 2).background().color().red()
    edit_cell(qtbot, table, 0, 2, "7")  # out of range: clipped
    assert table.matrix().loc["gamma", "alpha"] == 1.0
    assert messages(notifications)[-1] == "Affinities lie in [-1, 1]: 7 taken as 1"
    edit_cell(qtbot, table, 1, 2, "0,4")  # a decimal comma, as some keyboards type it
    assert table.matrix().loc["gamma", "beta"] == pytest.approx(0.4)
    edit_cell(qtbot, table, 1, 2, "abc")
    assert table.matrix().loc["gamma", "beta"] == pytest.approx(0.4)
    assert messages(notifications)[-1] == "'abc' is no number from -1 to 1: the affinity stays 0.40"
    edited = table.matrix()
    for cluster in (1, 2):  # unlabelled down to one class, then labelled again: kept as typed
        label_cluster(qtbot, scatter, cluster, "")
    assert table.classes == ["alpha"]
    for cluster, name in ((1, "beta"), (2, "gamma")):
        label_cluster(qtbot, scatter, cluster, name)
    pd.testing.assert_frame_equal(table.matrix(), edited)

    click(qtbot, train.load_button)
    np.testing.assert_allclose(table.matrix().loc["alpha", ["beta", "gamma"]], [0.2, -0.5])
    short = tmp_path / "short.csv"
    short.write_text("alpha,beta\n1,0.3\n0.3,1\n")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *_a, **_k: (str(short), ""))
    click(qtbot, train.load_button)
    assert f"{short}: no affinity for class(es) gamma" in messages(notifications)[-1]
    assert table.matrix().loc["alpha", "gamma"] == -0.5  # unchanged
    distances = tmp_path / "distances.csv"  # 0 on the diagonal: no affinity
    distances.write_text("alpha,beta,gamma\n0,0.2,0.5\n0.2,0,0.1\n0.5,0.1,0\n")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *_a, **_k: (str(distances), ""))
    click(qtbot, train.load_button)
    assert "affinity with itself must be 1; found 0 for alpha" in messages(notifications)[-1]
    assert table.matrix().loc["alpha", "gamma"] == -0.5  # unchanged
    uneven = tmp_path / "uneven.csv"  # made symmetric, and said so every time it is read
    uneven.write_text("alpha,beta,gamma\n1,0.2,0.5\n0.4,1,0.1\n0.5,0.1,1\n")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *_a, **_k: (str(uneven), ""))
    for _ in range(2):
        click(qtbot, train.load_button)
        assert "uneven.csv: the affinity matrix is not symmetric" in messages(notifications)[-1]
        notifications.clear()
    assert table.matrix().loc["alpha", "beta"] == pytest.approx(0.3)

    train.epochs.value = 1
    click(qtbot, train.train_button)
    qtbot.waitUntil(lambda: train.trained is not None and not train.task.running, timeout=WAIT_MS)
    _, card = train.trained
    np.testing.assert_allclose(card.affinity, table.matrix().to_numpy())
    expected = table.matrix()  # typed or read: it outlives the dock, closed and opened again
    viewer.window.remove_dock_widget(docks["Train"])
    _, reopened = viewer.window.add_plugin_dock_widget("napari-affinity-vae", "Train")
    assert reopened is not train
    np.testing.assert_allclose(reopened.affinity.matrix().loc[expected.index], expected)
    # and so does the model trained, unsaved: it was lost with the dock
    assert reopened.trained[1] is card and reopened.status.value == train.status.value
    assert reopened.save_button.enabled and reopened.use_button.enabled
    assert reopened.losses.lines["reconstruction"]._pos is not None
    type_into(qtbot, reopened.file, str(tmp_path / "kept"))
    click(qtbot, reopened.save_button)
    assert (tmp_path / "kept.safetensors").is_file()


def test_affinity_from_a_map_per_class_names_the_classes_without_one(
    clustered, qtbot, tmp_path, monkeypatch, notifications
):
    _, widgets, _session, _docks = clustered
    scatter, train = widgets["Latent scatter"], widgets["Train"]
    for cluster, name in enumerate(("alpha", "beta", "gamma")):
        label_cluster(qtbot, scatter, cluster, name)
    shape = blob_map(0)
    maps = {
        "alpha": write_mrc(tmp_path / "alpha.mrc", shape),
        "beta": write_mrc(tmp_path / "beta.map", np.rot90(shape, 1, (0, 2)).copy()),
        "gamma": write_mrc(tmp_path / "gamma.mrc", blob_map(7, spread=0.2, blobs=3)),
    }
    chosen = [str(maps["alpha"]), str(maps["beta"])]
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *_a, **_k: (chosen, ""))
    click(qtbot, train.maps_button)
    assert "No map or model for class(es) gamma" in messages(notifications)[-1]
    chosen.append(str(maps["gamma"]))
    click(qtbot, train.maps_button)
    assert not train.load_button.enabled  # a file loaded now would be replaced by the search
    qtbot.waitUntil(lambda: not train.task.running, timeout=WAIT_MS)
    assert train.load_button.enabled
    matrix = train.affinity.matrix()
    assert matrix.loc["alpha", "beta"] > 0.8  # one shape turned: alike whatever the rotation
    assert matrix.loc["alpha", "gamma"] < matrix.loc["alpha", "beta"] - 0.2
    assert train.status.value == "affinity from the reference maps"


def test_training_cuts_boxes_with_the_contrast_the_particles_were_embedded_with(clustered, qtbot):
    _, widgets, session, _docks = clustered
    scatter, train, embed = widgets["Latent scatter"], widgets["Train"], widgets["Embed"]
    click(qtbot, scatter.clusters_button)
    train.epochs.value = 1
    plain = run_steps(
        labelled_boxes(session.particles, LABEL, lambda _: session.tomogram, session.card),
        0,
        "",
        None,
    )
    embed.inverted.native.click()  # protein bright in this tomogram
    assert embed.inverted.value
    click(qtbot, train.train_button)
    qtbot.waitUntil(lambda: train.trained is not None and not train.task.running, timeout=WAIT_MS)
    trained_on = train._training[0]
    np.testing.assert_allclose(trained_on.boxes, -plain.boxes, atol=1e-5)


def test_fine_tuning_the_bundled_splat_model_keeps_its_pose_tied_to_orientation(clustered, qtbot):
    _, widgets, session, _docks = clustered
    embed, scatter, train = widgets["Embed"], widgets["Latent scatter"], widgets["Train"]
    box = embed.source.native
    box.setCurrentIndex(box.findText("Bundled splat model"))
    click(qtbot, embed.run_button)
    qtbot.waitUntil(
        lambda: session.clusters is not None and not embed.task.running, timeout=WAIT_MS
    )
    click(qtbot, scatter.clusters_button)
    train.epochs.value = 2
    click(qtbot, train.train_button)
    qtbot.waitUntil(lambda: not train.task.running and train.trained is not None, timeout=WAIT_MS)
    model, card = train.trained
    assert model.architecture.decoder == "splat" and card.training["init"] == "bundled-splat"
    assert card.training["config"]["pose"]["high"] == 1.0  # as the bundled splat model was
    assert "pose" in train.losses.terms  # the pose consistency has its own panel


def test_labelled_particles_in_a_blank_region_are_named_before_training(
    make_napari_viewer, qtbot, tmp_path, notifications
):
    """Trained on before: the loss went NaN and the message named neither file nor particles."""
    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    data = np.random.default_rng(0).normal(0, 1, (40, 64, 64)).astype(np.float32)
    data[:, :, 48:] = np.nan  # a blank strip, as some reconstructions leave
    path = write_mrc(tmp_path / "blank.mrc", data)
    type_into(qtbot, widgets["Tomogram"].file, str(path))
    click(qtbot, widgets["Tomogram"].open_button)
    click(qtbot, widgets["Particles"].hand_button)
    layer = widgets["Particles"].particles_layer
    layer.add(np.array([[20.0, 20, 20], [20, 40, 20], [20, 20, 40], [20, 40, 40]]))  # clicks
    session, scatter, train = session_for(viewer), widgets["Latent scatter"], widgets["Train"]
    for rows, name in (([0, 1], "a"), ([2, 3], "b")):
        session.select(rows)
        type_into(qtbot, scatter.label_name, name)
        click(qtbot, scatter.label_button)
    train.epochs.value = 1
    click(qtbot, train.train_button)
    qtbot.waitUntil(lambda: not train.task.running, timeout=WAIT_MS)
    said = [m for m in messages(notifications) if "blank.mrc" in m]
    assert (
        said
        and "the boxes of 2 of 4 labelled particles hold NaN or infinite voxels (rows 2, 3"
        in said[-1]
    )
    assert not train.history and not train.save_button.enabled


def test_cancel_stops_an_epoch_under_way(clustered, qtbot, monkeypatch):
    """Cancel said "cancelled" while the epoch ran on to its end. Here an epoch that ends only
    when told to stop: the Cancel button must reach it."""
    import napari_affinity_vae.widgets.train as train_module

    _, widgets, _session, _docks = clustered
    scatter, train = widgets["Latent scatter"], widgets["Train"]
    label_cluster(qtbot, scatter, 0, "alpha")
    label_cluster(qtbot, scatter, 1, "beta")
    asked = []

    def endless_epoch(_data, _model, _config, stop):
        while not stop():  # batch after batch, never yielding
            asked.append(True)
            time.sleep(0.01)
        return
        yield

    monkeypatch.setattr(train_module, "training_steps", endless_epoch)
    click(qtbot, train.train_button)
    qtbot.waitUntil(lambda: len(asked) > 0, timeout=WAIT_MS)
    click(qtbot, train.cancel_button)
    qtbot.waitUntil(lambda: not train.task.running, timeout=WAIT_MS)
    assert train.status.value == "cancelled before an epoch finished"


def test_cancel_stops_the_affinity_search_within_a_pair(clustered, qtbot, monkeypatch):
    """Cancel said "affinity cancelled" at once, while the pair under way was searched to its
    end (20 to 35 s a pair on one core), every button but Cancel greyed out meanwhile. Here
    each rotation tried takes 5 ms more, so that a pair takes over 10 s on any machine."""
    from napari_affinity_vae.simulate import affinity

    scored = affinity._score

    def slow_score(*args):
        time.sleep(0.005)
        return scored(*args)

    monkeypatch.setattr(affinity, "_score", slow_score)
    _, widgets, _session, _docks = clustered
    scatter, train = widgets["Latent scatter"], widgets["Train"]
    label_cluster(qtbot, scatter, 0, "alpha")
    label_cluster(qtbot, scatter, 1, "beta")
    before = train.affinity.matrix()
    click(qtbot, train.centres_button)
    qtbot.waitUntil(lambda: train.task.running, timeout=WAIT_MS)
    time.sleep(1.0)  # into the search of the one pair
    started = time.monotonic()
    click(qtbot, train.cancel_button)
    qtbot.waitUntil(lambda: not train.task.running, timeout=WAIT_MS)
    assert time.monotonic() - started < 5.0
    assert train.status.value == "affinity cancelled: the table is as it was"
    pd.testing.assert_frame_equal(train.affinity.matrix(), before)
    assert train.train_button.enabled


def test_closing_the_dock_during_a_run_keeps_its_best_epoch(clustered, qtbot, notifications):
    """Closing the Train dock mid-run stopped the run and dropped every epoch trained, where
    Cancel keeps the best: opened again, the dock offers that epoch to save."""
    viewer, widgets, session, docks = clustered
    train = train_two_classes(qtbot, widgets, 500)
    qtbot.waitUntil(lambda: len(train.history) >= 2, timeout=WAIT_MS)
    viewer.window.remove_dock_widget(docks["Train"])
    qtbot.waitUntil(lambda: not train.task.running, timeout=WAIT_MS)
    assert "Training stopped: its panel was closed" in messages(notifications)
    _, reopened = viewer.window.add_plugin_dock_widget("napari-affinity-vae", "Train")
    assert reopened.trained is not None and reopened.save_button.enabled
    assert reopened.status.value.startswith("cancelled after")
    assert session.trained_run.card.training["best_epoch"] <= len(train.history)
