"""The dock widgets driven as a person drives them: real button clicks and typing into real fields,
with assertions on what the person then sees (files, layers, notifications, labels)."""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
from qtpy.QtCore import QPoint, Qt, QTimer
from qtpy.QtTest import QTest
from qtpy.QtWidgets import (
    QApplication,
    QDialogButtonBox,
    QDoubleSpinBox,
    QInputDialog,
    QMessageBox,
)

from conftest import write_mrc
from napari_affinity_vae.demo import add_dock_widgets
from napari_affinity_vae.io.particles import read_particles, write_particles
from napari_affinity_vae.model.bundled import load_bundled
from napari_affinity_vae.model.checkpoint import save_checkpoint
from napari_affinity_vae.model.network import AffinityVAE
from napari_affinity_vae.widgets.embed import BUNDLED
from napari_affinity_vae.widgets.export import ALL, EACH_CLUSTER, SELECTED
from napari_affinity_vae.widgets.highlight import highlighted_rows
from napari_affinity_vae.widgets.viewer_session import session_for

WAIT_MS = 120_000


def messages(notifications) -> list[str]:
    return [str(n.message) for n in notifications]


def click(qtbot, button) -> None:
    """A left click on a magicgui push button, as the mouse gives it."""
    qtbot.mouseClick(button.native, Qt.MouseButton.LeftButton)


def tick(qtbot, checkbox) -> None:
    """Click a magicgui check box on its box, at the left (its row may be wider than its text)."""
    native = checkbox.native
    qtbot.mouseClick(native, Qt.MouseButton.LeftButton, pos=QPoint(8, native.height() // 2))


def type_into(qtbot, field, text: str) -> None:
    """Clear a magicgui text or file field and type ``text`` into it."""
    edit = getattr(field, "line_edit", field).native
    edit.clear()
    qtbot.keyClicks(edit, text)


def shown(field) -> bool:
    """Whether a magicgui field shows once its window does (test viewers are never shown)."""
    return field.native.isVisibleTo(field.native.window())


def when_a_dialog_opens(kind: type, respond) -> list[str]:
    """Call ``respond(dialog)`` on the next modal dialog of ``kind``; the list it returns gets
    what ``respond`` returned, once it has run."""
    seen: list[str] = []

    def check() -> None:
        dialog = QApplication.activeModalWidget()
        if isinstance(dialog, kind):
            seen.append(respond(dialog))
        else:
            QTimer.singleShot(20, check)

    QTimer.singleShot(20, check)
    return seen


def answer_next_dialog(button: QMessageBox.StandardButton) -> list[str]:
    """Press ``button`` in the next question; return its text once answered."""

    def press(box: QMessageBox) -> str:
        text = box.text()
        box.button(button).click()
        return text

    return when_a_dialog_opens(QMessageBox, press)


def choose_in_next_dialog(choice: str) -> list[str]:
    """Choose ``choice`` in the next list dialog and press OK; return its question."""

    def choose(dialog: QInputDialog) -> str:
        dialog.setTextValue(choice)
        dialog.accept()
        return dialog.labelText()

    return when_a_dialog_opens(QInputDialog, choose)


def type_number_in_next_dialog(text: str, button=QDialogButtonBox.StandardButton.Ok) -> list:
    """Type ``text`` over the number in the next number dialog and press ``button``; return
    (its question, the number it offered)."""

    def answer(dialog: QInputDialog) -> tuple[str, float]:
        offered = dialog.doubleValue()
        field = dialog.findChild(QDoubleSpinBox)
        field.selectAll()
        QTest.keyClicks(field, text)
        dialog.findChild(QDialogButtonBox).button(button).click()
        return dialog.labelText(), offered

    return when_a_dialog_opens(QInputDialog, answer)


def open_and_import(qtbot, widgets, tomogram: Path, coords: Path):
    """Open a tomogram and import a coordinate file by typing their paths and clicking."""
    type_into(qtbot, widgets["Tomogram"].file, str(tomogram))
    click(qtbot, widgets["Tomogram"].open_button)
    type_into(qtbot, widgets["Particles"].file, str(coords))
    click(qtbot, widgets["Particles"].import_button)
    return widgets["Particles"].particles_layer


def open_to_pick_by_hand(qtbot, widgets, tomogram: Path):
    """Open a tomogram by typing its path and clicking, then click Pick by hand."""
    type_into(qtbot, widgets["Tomogram"].file, str(tomogram))
    click(qtbot, widgets["Tomogram"].open_button)
    click(qtbot, widgets["Particles"].hand_button)
    return widgets["Particles"].particles_layer


def three_picks(folder: Path, n: int = 3) -> Path:
    folder.mkdir(exist_ok=True)
    table = pd.DataFrame(
        {"z": [20.0, 20.0, 20.0][:n], "y": [20.0, 40.0, 20.0][:n], "x": [20.0, 40.0, 40.0][:n]}
    )
    table["cluster"] = np.arange(n) % 2
    return write_particles(table, folder / "picks.csv")


# -- Export ----------------------------------------------------------------------------------
def test_the_export_button_writes_the_selection(explorer, qtbot, tmp_path, small_tomogram):
    _viewer, widgets, session = explorer
    layer = open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path))
    assert len(session.particles) == 3
    layer.selected_data = {0, 2}  # selected in the viewer
    export = widgets["Export"]
    type_into(qtbot, export.file, str(tmp_path / "keep.star"))
    click(qtbot, export.export_button)
    back = read_particles(tmp_path / "keep.star", voxel_size=10.0)
    assert back[["z", "y", "x"]].to_numpy().tolist() == [[20, 20, 20], [20, 20, 40]]
    assert export.status.value == "wrote 1 file: keep.star"


def test_a_typed_suffix_chooses_the_format_and_others_gain_one(
    explorer, qtbot, tmp_path, small_tomogram
):
    _, widgets, _session = explorer
    open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "picks", n=1))
    export = widgets["Export"]
    export.what.value = ALL
    type_into(qtbot, export.file, str(tmp_path / "mine.csv"))
    assert export.format.value == "CSV"
    click(qtbot, export.export_button)
    export.format.value = "RELION 5 STAR"
    type_into(qtbot, export.file, str(tmp_path / "keep.v2"))
    click(qtbot, export.export_button)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "keep.v2.star",
        "mine.csv",
        "picks",
        "small.mrc",
    ]
    assert export.format.value == "RELION 5 STAR"
    assert "rlnCenteredCoordinateXAngst" in (tmp_path / "keep.v2.star").read_text()
    type_into(qtbot, export.file, str(tmp_path / "other.csv"))
    type_into(qtbot, export.file, str(tmp_path / "again.star") + " ")  # pasted, with a space
    assert export.format.value == "RELION 5 STAR"  # the STAR flavour chosen stays
    click(qtbot, export.export_button)
    assert "rlnCenteredCoordinateXAngst" in (tmp_path / "again.star").read_text()


def test_a_hand_pick_beside_imported_angles_is_exported_unaligned(
    explorer, qtbot, tmp_path, small_tomogram, notifications
):
    _, widgets, _session = explorer
    table = pd.DataFrame({"z": [20.0], "y": [20.0], "x": [20.0]})
    table[["rot", "tilt", "psi"]] = [[10.0, 40.0, 70.0]]
    imported = write_particles(table, tmp_path / "a.csv")
    picks = open_and_import(qtbot, widgets, small_tomogram, imported)
    picks.add(np.array([[20.0, 30.0, 30.0]]))  # picked by hand: no angles
    export = widgets["Export"]
    export.what.value = ALL
    for name, label in [("r4.star", "RELION 4 STAR"), ("r5.star", "RELION 5 STAR")]:
        export.format.value = label
        type_into(qtbot, export.file, str(tmp_path / name))
        click(qtbot, export.export_button)
        star = starfile.read(tmp_path / name)
        block = star["particles"] if isinstance(star, dict) else star
        assert block["rlnAngleRot"].tolist() == [10.0, 0.0], name  # RELION reads every value
        assert "<NA>" not in (tmp_path / name).read_text()
    type_into(qtbot, export.file, str(tmp_path / "d.tbl"))
    click(qtbot, export.export_button)
    assert np.isfinite(np.loadtxt(tmp_path / "d.tbl")).all()
    unaligned = (
        "1 particle without angles (added by hand, or read from a file without them) was "
        "written with angles 0"
    )
    assert messages(notifications).count(unaligned) == 3  # two STAR files and a Dynamo table
    type_into(qtbot, export.file, str(tmp_path / "c.csv"))
    click(qtbot, export.export_button)  # a CSV leaves them empty, and says nothing of angles 0
    assert messages(notifications).count(unaligned) == 3
    assert read_particles(tmp_path / "c.csv")["rot"].isna().tolist() == [False, True]
    type_into(qtbot, export.file, "  ")
    click(qtbot, export.export_button)
    assert messages(notifications)[-1] == "Type the name of the file to export to (File)"


def test_open_and_import_with_an_empty_field_or_a_folder_say_what_to_type(
    explorer, qtbot, tmp_path, small_tomogram, notifications
):
    viewer, widgets, _ = explorer
    tomogram, particles = widgets["Tomogram"], widgets["Particles"]
    type_into(qtbot, tomogram.file, "")
    click(qtbot, tomogram.open_button)
    type_into(qtbot, tomogram.file, str(tmp_path))  # a plain folder, not an OME-Zarr image
    click(qtbot, tomogram.open_button)
    type_into(qtbot, tomogram.file, str(small_tomogram))
    click(qtbot, tomogram.open_button)
    type_into(qtbot, particles.file, " ")
    click(qtbot, particles.import_button)
    assert messages(notifications) == [
        "Type the name of the file of the tomogram to open (File)",
        f"{tmp_path}: is a folder, neither an MRC file nor an OME-Zarr image: choose a tomogram",
        "Type the name of the file of the particles to import (File)",
    ]
    assert [x.name for x in viewer.layers] == ["small"]


def test_a_relion4_selection_is_exported_for_relion_in_its_own_pixels(
    explorer, qtbot, tmp_path, small_tomogram
):
    """Picks of a RELION 4 tomography file (unbinned 2.5 A tilt-series pixels, the tomogram at
    bin 4) come back out of the Export dock as RELION reads them: after the same optics block,
    in the same pixels, a hand pick beside them in their optics group."""
    source = tmp_path / "run_data.star"
    optics = {"rlnOpticsGroup": [1], "rlnTomoTiltSeriesPixelSize": [2.5], "rlnVoltage": [300.0]}
    block = {
        "rlnTomoName": ["small"] * 3,
        "rlnCoordinateX": [80.0, 160.0, 160.0],
        "rlnCoordinateY": [80.0, 160.0, 80.0],
        "rlnCoordinateZ": [80.0, 80.0, 80.0],
        "rlnOpticsGroup": [1, 1, 1],
    }
    starfile.write({"optics": pd.DataFrame(optics), "particles": pd.DataFrame(block)}, source)
    _, widgets, _ = explorer
    layer = open_and_import(qtbot, widgets, small_tomogram, source)
    assert layer.data.tolist() == [[20, 20, 20], [20, 40, 40], [20, 20, 40]]  # on the blobs
    layer.add(np.array([[30.0, 30.0, 30.0]]))  # picked by hand
    layer.selected_data = {1, 3}
    export = widgets["Export"]
    type_into(qtbot, export.file, str(tmp_path / "chosen.star"))
    click(qtbot, export.export_button)
    written = starfile.read(tmp_path / "chosen.star")
    assert written["optics"].to_dict(orient="list") == optics
    chosen = written["particles"]
    assert chosen["rlnCoordinateX"].tolist() == [160.0, 120.0]
    assert chosen["rlnCoordinateZ"].tolist() == [80.0, 120.0]
    assert chosen["rlnOpticsGroup"].tolist() == [1, 1]


def test_export_asks_before_replacing_a_file(explorer, qtbot, tmp_path):
    _, widgets, session = explorer
    session.set_particles(pd.DataFrame({"z": [1.0], "y": [2.0], "x": [3.0]}))
    existing = tmp_path / "keep.star"
    existing.write_text("mine, keep me\n")
    export = widgets["Export"]
    export.what.value = ALL
    type_into(qtbot, export.file, str(existing))
    asked = answer_next_dialog(QMessageBox.StandardButton.No)
    click(qtbot, export.export_button)
    assert asked and "keep.star" in asked[0]
    assert existing.read_text() == "mine, keep me\n"
    assert "kept" in export.status.value
    answer_next_dialog(QMessageBox.StandardButton.Yes)
    click(qtbot, export.export_button)
    assert read_particles(existing)[["z", "y", "x"]].to_numpy().tolist() == [[1, 2, 3]]


def test_labels_a_star_file_cannot_hold_as_written_are_quoted_or_refused(
    explorer, qtbot, tmp_path, small_tomogram, notifications
):
    """A label beginning with # was written bare and read as a comment: the exported STAR file
    could not be read back; one with a quote came back changed."""
    _, widgets, session = explorer
    open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "picks"))
    scatter, export = widgets["Latent scatter"], widgets["Export"]
    for row, name in ((0, "#3"), (1, "two words")):
        session.select([row])
        type_into(qtbot, scatter.label_name, name)
        click(qtbot, scatter.label_button)
    export.what.value = ALL
    type_into(qtbot, export.file, str(tmp_path / "labelled.star"))
    click(qtbot, export.export_button)
    back = read_particles(tmp_path / "labelled.star", voxel_size=10.0)
    assert back["label"].tolist()[:2] == ["#3", "two words"]
    session.select([2])
    type_into(qtbot, scatter.label_name, "it's")
    click(qtbot, scatter.label_button)
    type_into(qtbot, export.file, str(tmp_path / "quoted.star"))
    click(qtbot, export.export_button)
    said = f'{tmp_path / "quoted.star"}: label "it\'s" holds a quote, which a STAR file cannot'
    assert any(m.startswith(said) for m in messages(notifications))
    assert not (tmp_path / "quoted.star").exists() and export.status.value == "nothing written"


def test_export_to_a_relative_name_says_where_the_file_went(
    explorer, qtbot, tmp_path, notifications, monkeypatch
):
    """A bare name lands in napari's working folder, which the user never chose."""
    _, widgets, session = explorer
    session.set_particles(pd.DataFrame({"z": [1.0], "y": [2.0], "x": [3.0]}))
    monkeypatch.chdir(tmp_path)
    export = widgets["Export"]
    export.what.value = ALL
    type_into(qtbot, export.file, "mine.csv")
    click(qtbot, export.export_button)
    assert f"Exported to {tmp_path / 'mine.csv'}" in messages(notifications)


def test_export_to_a_read_only_folder_says_so(explorer, qtbot, tmp_path, notifications):
    _, widgets, session = explorer
    session.set_particles(pd.DataFrame({"z": [1.0], "y": [2.0], "x": [3.0]}))
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root writes into any folder of its own: use a read-only file system
        folder = Path("/sys")
    export = widgets["Export"]
    export.what.value = ALL
    type_into(qtbot, export.file, str(folder / "keep.star"))
    click(qtbot, export.export_button)
    assert any("keep.star" in m and "cannot be written" in m for m in messages(notifications))
    assert not (folder / "keep.star").exists() and export.status.value == "nothing written"


def test_export_where_a_folder_stands_says_so(explorer, qtbot, tmp_path, notifications):
    _, widgets, session = explorer
    session.set_particles(pd.DataFrame({"z": [1.0], "y": [2.0], "x": [3.0]}))
    export = widgets["Export"]
    export.what.value = ALL
    (tmp_path / "keep.star").mkdir()
    type_into(qtbot, export.file, str(tmp_path / "keep.star"))
    click(qtbot, export.export_button)
    type_into(qtbot, export.file, str(tmp_path / "keep"))
    click(qtbot, export.export_button)
    shown = messages(notifications)
    assert len(shown) == 2 and all("folder" in m for m in shown)
    assert export.status.value == "nothing written"


def test_export_under_a_file_or_to_a_name_too_long_says_so(
    explorer, qtbot, tmp_path, notifications
):
    """A file where a folder should be was "a folder that does not exist"; a name longer than
    file names may be ended in a traceback; a suffix alone was written as a hidden file."""
    _, widgets, session = explorer
    session.set_particles(pd.DataFrame({"z": [1.0], "y": [2.0], "x": [3.0]}))
    export = widgets["Export"]
    export.what.value = ALL
    (tmp_path / "afile").write_text("mine\n")
    type_into(qtbot, export.file, str(tmp_path / "afile" / "out.star"))
    click(qtbot, export.export_button)
    type_into(qtbot, export.file, str(tmp_path / ("a" * 300 + ".csv")))
    click(qtbot, export.export_button)
    type_into(qtbot, export.file, str(tmp_path / ".star"))  # wrote a hidden .star.star
    click(qtbot, export.export_button)
    under_file, too_long, suffix = messages(notifications)
    assert under_file.endswith(f"{tmp_path / 'afile'} is a file, not a folder")
    assert "a name of 304 bytes is longer than file names may be (255)" in too_long
    assert suffix.endswith(".star: is a suffix alone: type a name before it")
    assert not list(tmp_path.glob(".star*"))
    assert export.status.value == "nothing written"


def test_per_cluster_export_is_all_or_nothing(explorer, qtbot, tmp_path, monkeypatch):
    _, widgets, session = explorer
    session.set_particles(pd.DataFrame(np.ones((8, 3)), columns=["z", "y", "x"]))
    session.add_columns(session.version, pd.DataFrame({"cluster": np.arange(8) % 4}))
    export = widgets["Export"]
    export.what.value = EACH_CLUSTER
    type_into(qtbot, export.file, str(tmp_path / "name.star"))
    (tmp_path / "name_cluster1.star").write_text("older\n")
    answer_next_dialog(QMessageBox.StandardButton.Yes)

    from napari_affinity_vae.operations import export as module

    calls = []

    def failing_on_the_fourth(rows, path, **kwargs):
        calls.append(path)
        if len(calls) == 4:
            raise OSError(28, "No space left on device")
        return write_particles(rows, path, **kwargs)

    monkeypatch.setattr(module, "write_particles", failing_on_the_fourth)
    click(qtbot, export.export_button)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["name_cluster1.star"]
    assert (tmp_path / "name_cluster1.star").read_text() == "older\n"
    monkeypatch.undo()
    answer_next_dialog(QMessageBox.StandardButton.Yes)
    click(qtbot, export.export_button)
    names = [f"name_cluster{k}.star" for k in range(4)]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert export.status.value == f"wrote 4 files: {', '.join(names)}"


# -- Particles -------------------------------------------------------------------------------
def test_a_hand_pick_beside_the_tomogram_is_undone(explorer, qtbot, small_tomogram, notifications):
    """Kept before, embedded from a blank box, exported, and then refused on import."""
    _, widgets, session = explorer
    layer = open_to_pick_by_hand(qtbot, widgets, small_tomogram)
    layer.add(np.array([[20.0, 30.0, 30.0], [20.0, 40.0, 40.0]]))  # as clicks on the plane
    layer.add(np.array([[20.0, 30.0, -40.0]]))  # a click beside the image
    assert len(layer.data) == len(session.particles) == len(layer.features) == 2
    assert widgets["Particles"].count.value == "2"
    assert messages(notifications)[-1].startswith(
        "This edit was undone: a particle must lie inside small ("
    )
    np.testing.assert_array_equal(session.particles[["z", "y", "x"]], layer.data)


def test_pick_by_hand_twice_keeps_the_hand_picks(explorer, qtbot, small_tomogram, tmp_path):
    viewer, widgets, session = explorer
    type_into(qtbot, widgets["Tomogram"].file, str(small_tomogram))
    click(qtbot, widgets["Tomogram"].open_button)
    click(qtbot, widgets["Particles"].hand_button)
    layer = viewer.layers["small hand picks"]
    layer.add(np.array([[20.0, 30.0, 30.0]]))  # as a click on the plane adds it
    click(qtbot, widgets["Particles"].hand_button)
    assert len(viewer.layers["small hand picks"].data) == 1 and len(session.particles) == 1
    # a file named like the layer comes in beside it, not over it
    named_alike = write_particles(
        pd.DataFrame({"z": [10.0], "y": [10.0], "x": [10.0]}), tmp_path / "hand picks.csv"
    )
    type_into(qtbot, widgets["Particles"].file, str(named_alike))
    click(qtbot, widgets["Particles"].import_button)
    assert len(viewer.layers["small hand picks"].data) == 1
    assert len(widgets["Particles"].particles_layer.data) == 1
    assert widgets["Particles"].particles_layer is not layer
    colours = {tuple(x.border_color[0]) for x in widgets["Particles"].layer.choices if x}
    assert len(colours) == 2  # two particle layers, two colours


def test_a_dynamo_table_of_several_tomograms_asks_which(explorer, qtbot, tmp_path, small_tomogram):
    _, widgets, session = explorer
    table = pd.DataFrame({"z": [5.0, 10.0, 15.0], "y": [6.0, 11.0, 16.0], "x": [7.0, 12.0, 17.0]})
    table["tomo_name"] = ["1", "2", "3"]
    dynamo = write_particles(table, tmp_path / "all.tbl")
    asked = choose_in_next_dialog("2")
    layer = open_and_import(qtbot, widgets, small_tomogram, dynamo)
    assert asked and "3 tomograms" in asked[0]
    assert layer.data.tolist() == [[10.0, 11.0, 12.0]]
    assert session.particles["tomo_name"].tolist() == [small_tomogram.stem]  # placed on it
    layer.add(np.array([[20.0, 20.0, 20.0]]))  # and a pick by hand beside it
    export = widgets["Export"]
    export.what.value = ALL
    for name in ("both.star", "both.tbl"):
        type_into(qtbot, export.file, str(tmp_path / name))
        click(qtbot, export.export_button)
    # RELION is told the tomogram's name, Dynamo the number its table gave that tomogram
    star = starfile.read(tmp_path / "both.star")  # RELION 4: a single block
    assert star["rlnTomoName"].tolist() == [small_tomogram.stem] * 2
    assert np.loadtxt(tmp_path / "both.tbl")[:, 19].tolist() == [2.0, 2.0]


def test_picking_again_keeps_picks_the_user_renamed(explorer, qtbot, small_tomogram):
    """Picking again replaced every earlier pick layer of the tomogram, even one renamed to
    keep it; it replaces the one still named as picks are."""
    viewer, widgets, _session = explorer
    _open_tomogram(qtbot, widgets, small_tomogram)
    particles = widgets["Particles"]
    particles.diameter_min.value, particles.diameter_max.value = 40.0, 120.0
    for _ in range(2):
        click(qtbot, particles.pick_button)
        qtbot.waitUntil(lambda: not particles.task.running, timeout=WAIT_MS)
        if "small picks" in viewer.layers and "kept" not in viewer.layers:
            viewer.layers["small picks"].name = "kept"
    names = [x.name for x in viewer.layers]
    assert names.count("kept") == 1 and names.count("small picks") == 1
    assert particles.particles_layer is viewer.layers["small picks"]
    click(qtbot, particles.pick_button)  # a third time: the second run's picks are replaced
    qtbot.waitUntil(lambda: not particles.task.running, timeout=WAIT_MS)
    assert [x.name for x in viewer.layers] == names


def test_picks_deleted_while_picking_again_are_replaced_and_edited_ones_kept(
    explorer, qtbot, small_tomogram, notifications
):
    """Deleting the earlier picks while a new pick ran threw the new picks away too."""
    viewer, widgets, session = explorer
    _open_tomogram(qtbot, widgets, small_tomogram)
    particles = widgets["Particles"]
    particles.diameter_min.value, particles.diameter_max.value = 40.0, 120.0
    click(qtbot, particles.pick_button)
    qtbot.waitUntil(lambda: not particles.task.running, timeout=WAIT_MS)
    found = len(session.particles)
    click(qtbot, particles.pick_button)
    viewer.layers.remove("small picks")  # before the new picks come back
    qtbot.waitUntil(lambda: not particles.task.running, timeout=WAIT_MS)
    assert len(viewer.layers["small picks"].data) == found == len(session.particles)
    click(qtbot, particles.pick_button)
    viewer.layers["small picks"].add(np.array([[20.0, 30.0, 30.0]]))  # an edit: it stays
    qtbot.waitUntil(lambda: not particles.task.running, timeout=WAIT_MS)
    assert len(viewer.layers["small picks"].data) == found + 1
    assert messages(notifications)[-1].startswith("Picks discarded: the particles changed")


def test_closing_the_tomogram_while_picking_says_so(explorer, qtbot, small_tomogram, notifications):
    viewer, widgets, session = explorer
    _open_tomogram(qtbot, widgets, small_tomogram)
    particles = widgets["Particles"]
    click(qtbot, particles.pick_button)
    viewer.layers.remove("small")  # before the picks come back: they come in the event loop
    qtbot.waitUntil(lambda: not particles.task.running, timeout=WAIT_MS)
    assert messages(notifications)[-1].endswith("discarded: it was closed")  # not "another"
    assert widgets["Tomogram"].info.value == "no tomogram"
    assert widgets["Tomogram"].voxel_size.value == 0  # not the closed tomogram's 10 Å
    assert session.particles is None or len(session.particles) == 0


def test_rows_naming_no_tomogram_are_left_out_and_counted(
    explorer, qtbot, tmp_path, small_tomogram, notifications
):
    _, widgets, _session = explorer
    table = pd.DataFrame({"z": [20.0] * 4, "y": [20.0, 40.0, 20.0, 30.0], "x": [20.0] * 4})
    table["tomo_name"] = ["small", None, "small", None]  # a spreadsheet's blank cells
    picks = tmp_path / "half.csv"
    table.to_csv(picks, index=False)
    layer = open_and_import(qtbot, widgets, small_tomogram, picks)
    assert layer.data.tolist() == [[20.0, 20.0, 20.0], [20.0, 20.0, 20.0]]
    assert any("2 of 4 rows name no tomogram" in m for m in messages(notifications))


def test_picking_again_asks_before_dropping_labels_and_keeps_picks_when_none_is_found(
    explorer, qtbot, small_tomogram, notifications
):
    """A pick that found nothing replaced labelled picks with none, without a word."""
    _, widgets, session = explorer
    type_into(qtbot, widgets["Tomogram"].file, str(small_tomogram))
    click(qtbot, widgets["Tomogram"].open_button)
    particles, scatter = widgets["Particles"], widgets["Latent scatter"]
    particles.diameter_min.value, particles.diameter_max.value = 40.0, 120.0
    click(qtbot, particles.pick_button)
    qtbot.waitUntil(lambda: not particles.task.running, timeout=WAIT_MS)
    picked = len(session.particles)
    assert picked >= 3
    session.select([0])
    type_into(qtbot, scatter.label_name, "ribosome")
    click(qtbot, scatter.label_button)
    particles.auto_threshold.value, particles.threshold.value = False, 80.0  # finds nothing
    asked = answer_next_dialog(QMessageBox.StandardButton.No)
    click(qtbot, particles.pick_button)
    assert asked == [
        "Picking again replaces small picks and the labels of 1 particle of them. Go on?"
    ]
    assert not particles.task.running
    answer_next_dialog(QMessageBox.StandardButton.Yes)
    click(qtbot, particles.pick_button)
    qtbot.waitUntil(lambda: not particles.task.running, timeout=WAIT_MS)
    assert messages(notifications)[-1] == (
        "No particles found in small at threshold 80; the earlier picks were kept: lower the "
        "threshold, or check the diameters or templates and 'Protein bright'"
    )
    assert len(session.particles) == len(particles.particles_layer.data) == picked
    assert session.particles["label"].tolist()[0] == "ribosome"


def test_a_minimum_diameter_above_the_maximum_is_one_clear_message(
    explorer, qtbot, small_tomogram, notifications
):
    _, widgets, _session = explorer
    type_into(qtbot, widgets["Tomogram"].file, str(small_tomogram))
    click(qtbot, widgets["Tomogram"].open_button)
    particles = widgets["Particles"]
    particles.diameter_min.value, particles.diameter_max.value = 300.0, 100.0
    click(qtbot, particles.pick_button)
    assert messages(notifications) == ["The minimum diameter (300 Å) is above the maximum (100 Å)"]
    assert not particles.task.running


@pytest.mark.parametrize(
    ("shape", "diameters"), [((40, 60, 60), (2000.0, 3000.0)), ((1, 60, 60), (20.0, 40.0))]
)
def test_diameters_too_large_for_the_tomogram_are_one_clear_message(
    explorer, qtbot, tmp_path, notifications, shape, diameters
):
    _, widgets, session = explorer
    tomogram = write_mrc(tmp_path / "thin.mrc", np.zeros(shape, np.float32))
    type_into(qtbot, widgets["Tomogram"].file, str(tomogram))
    click(qtbot, widgets["Tomogram"].open_button)
    particles = widgets["Particles"]
    particles.diameter_min.value, particles.diameter_max.value = diameters
    click(qtbot, particles.pick_button)
    qtbot.waitUntil(lambda: not particles.task.running, timeout=WAIT_MS)
    [shown] = messages(notifications)
    assert f"Particles of {diameters[0]:g} Å or more" in shown and "smaller diameters" in shown
    assert len(session.particles) == 0 and particles.pick_button.enabled


def test_picks_of_one_tomogram_never_land_on_another_of_the_same_name(
    explorer, qtbot, tmp_path, notifications
):
    viewer, widgets, session = explorer
    first = tmp_path / "a" / "tomogram.mrc"
    second = tmp_path / "b" / "tomogram.mrc"
    for path, shape in ((first, (96, 320, 320)), (second, (40, 60, 60))):
        path.parent.mkdir()
        write_mrc(path, np.random.default_rng(0).normal(size=shape).astype(np.float32))
    type_into(qtbot, widgets["Tomogram"].file, str(first))
    click(qtbot, widgets["Tomogram"].open_button)
    particles = widgets["Particles"]
    particles.auto_threshold.value, particles.threshold.value = False, 1.0  # noise peaks
    click(qtbot, particles.pick_button)
    assert particles.task.running and not particles.pick_button.enabled
    type_into(qtbot, widgets["Tomogram"].file, str(second))
    click(qtbot, widgets["Tomogram"].open_button)
    qtbot.waitUntil(lambda: not particles.task.running, timeout=WAIT_MS)
    assert session.tomogram.shape == (40, 60, 60) and len(session.particles) == 0
    assert not [x for x in viewer.layers if x.name.endswith("picks")]
    assert any("discarded" in m for m in messages(notifications))


def test_a_small_tomogram_opened_after_a_large_one_fills_the_view(explorer, qtbot, tmp_path):
    """The view is fitted to the tomogram shown, not to one hidden: a 40-voxel tomogram opened
    after a 400-voxel one sat small in a corner of the view."""
    viewer, widgets, _ = explorer
    large, small = tmp_path / "large.mrc", tmp_path / "small.mrc"
    write_mrc(large, np.zeros((20, 400, 400), np.float32), voxel_size=10.0)
    write_mrc(small, np.zeros((10, 40, 40), np.float32), voxel_size=10.0)
    centres = {}
    for path in (large, small, large):
        type_into(qtbot, widgets["Tomogram"].file, str(path))
        click(qtbot, widgets["Tomogram"].open_button)
        centres[path] = np.array(viewer.camera.center[-2:]), viewer.camera.zoom
    np.testing.assert_allclose(centres[small][0], [195.0, 195.0], atol=10)  # its middle
    np.testing.assert_allclose(centres[large][0], [1995.0, 1995.0], atol=50)  # chosen again
    assert centres[small][1] > 5 * centres[large][1]  # and ten times as large
    type_into(qtbot, widgets["Tomogram"].file, str(small))
    click(qtbot, widgets["Tomogram"].open_button)
    widgets["Tomogram"].voxel_size.value = 12.0  # corrected: fitted to it, not to the large
    np.testing.assert_allclose(viewer.camera.center[-2:], [234.0, 234.0], atol=12)


def test_the_view_is_fitted_on_a_napari_that_fits_to_every_layer():
    """napari before 0.9 has no ``fit_to_view(layers=...)``: switching tomograms raised."""
    from napari_affinity_vae.widgets.viewer_session import fit_view

    calls = []

    class OldViewer:
        def fit_to_view(self, margin: float = 0.05) -> None:
            calls.append("fit")

        def reset_view(self) -> None:
            calls.append("reset")

    fit_view(OldViewer(), [object()])
    assert calls == ["reset"]


def test_particles_of_a_tomogram_stay_off_another_of_the_same_name(
    explorer, qtbot, tmp_path, notifications
):
    """``TS_01/tomogram.mrc`` and ``TS_02/tomogram.mrc``: each keeps its own particles,
    imported, opened with File > Open or picked by hand, and its own voxel size."""
    viewer, widgets, session = explorer
    first, second = tmp_path / "TS_01" / "tomogram.mrc", tmp_path / "TS_02" / "tomogram.mrc"
    for path, shape, voxel in ((first, (40, 60, 60), 10.0), (second, (30, 50, 50), 12.0)):
        path.parent.mkdir()
        write_mrc(path, np.zeros(shape, np.float32), voxel_size=voxel)
    imported = open_and_import(qtbot, widgets, first, three_picks(tmp_path / "picks"))
    [opened] = viewer.open(three_picks(tmp_path / "more", n=2), plugin="napari-affinity-vae")
    click(qtbot, widgets["Particles"].hand_button)
    first_hand = widgets["Particles"].particles_layer
    first_hand.add(np.array([[5.0, 55.0, 55.0]]))
    type_into(qtbot, widgets["Tomogram"].file, str(second))
    click(qtbot, widgets["Tomogram"].open_button)
    assert session.tomogram.shape == (30, 50, 50)
    assert widgets["Particles"].particles_layer is None and len(session.particles) == 0
    for layer in (imported, opened):  # not taken for the 12 A tomogram's
        assert tuple(layer.scale) == (10.0,) * 3
    click(qtbot, widgets["Particles"].hand_button)
    second_hand = widgets["Particles"].particles_layer
    assert second_hand is not first_hand and len(second_hand.data) == 0
    assert len(first_hand.data) == 1
    first_image, second_image = [x for x in viewer.layers if x._type_string == "image"]
    firsts = (first_image, imported, opened, first_hand)  # else drawn over the second
    assert [x.visible for x in (*firsts, second_image, second_hand)] == [False] * 4 + [True] * 2
    widgets["Tomogram"].layer.value = first_image  # chosen again: shown with its particles
    assert session.tomogram.shape == (40, 60, 60)
    assert [x.visible for x in (*firsts, second_image, second_hand)] == [True] * 4 + [False] * 2
    chosen = widgets["Particles"].particles_layer
    widgets["Particles"].layer.value = second_hand  # the second's, hidden: boxes of the first
    assert widgets["Particles"].particles_layer is chosen and len(session.particles) == 1
    assert "are the particles of another tomogram than tomogram" in messages(notifications)[-1]


def test_cancel_stops_the_picker_before_pick_is_offered_again(explorer, qtbot, tmp_path):
    viewer, widgets, session = explorer
    path = write_mrc(
        tmp_path / "big.mrc", np.random.default_rng(0).normal(size=(96, 320, 320)).astype("f4")
    )
    type_into(qtbot, widgets["Tomogram"].file, str(path))
    click(qtbot, widgets["Tomogram"].open_button)
    particles = widgets["Particles"]
    particles.diameter_min.value = 50.0  # no binning: several seconds of work
    click(qtbot, particles.pick_button)
    steps = []
    particles.task.worker.yielded.connect(steps.append)
    qtbot.waitUntil(lambda: len(steps) > 0, timeout=WAIT_MS)
    worker = particles.task.worker
    click(qtbot, particles.cancel_button)
    assert not particles.pick_button.enabled and not particles.cancel_button.enabled
    qtbot.waitUntil(lambda: particles.pick_button.enabled, timeout=5000)  # stops within a stage
    assert not worker.is_running and len(session.particles) == 0
    assert not [x for x in viewer.layers if x.name.endswith("picks")]


def test_a_tomogram_whose_header_has_no_voxel_size_asks_for_one(explorer, qtbot, tmp_path):
    viewer, widgets, session = explorer
    tomogram = widgets["Tomogram"]
    data = np.random.default_rng(0).normal(size=(20, 30, 40)).astype(np.float32)
    stack = write_mrc(tmp_path / "stack.mrc", data, voxel_size=0.0)  # as tilt stacks often are
    type_into(qtbot, tomogram.file, str(stack))
    cancelled = type_number_in_next_dialog("11.4", QDialogButtonBox.StandardButton.Cancel)
    click(qtbot, tomogram.open_button)
    assert cancelled and "stack" not in viewer.layers  # Cancel: not opened
    answered = type_number_in_next_dialog("11.4")
    click(qtbot, tomogram.open_button)
    [(question, offered)] = answered
    assert "stack.mrc gives no voxel size" in question and offered == 1.0
    assert tuple(viewer.layers["stack"].scale) == pytest.approx((11.4,) * 3)
    assert tomogram.voxel_size.value == pytest.approx(11.4)
    assert session.tomogram.voxel_size == pytest.approx(11.4)
    # the next such file offers the box's value: OK alone takes it
    second = write_mrc(tmp_path / "next.mrc", data, voxel_size=0.0)
    type_into(qtbot, tomogram.file, str(second))
    answered = type_number_in_next_dialog("")
    click(qtbot, tomogram.open_button)
    assert answered[0][1] == pytest.approx(11.4)
    assert tuple(viewer.layers["next"].scale) == pytest.approx((11.4,) * 3)


def test_a_tomogram_with_voxels_not_cubic_asks_which_size_to_use(explorer, qtbot, tmp_path):
    """Refused before, with no way round it in napari."""
    viewer, widgets, session = explorer
    path = tmp_path / "aniso.mrc"
    with mrcfile.new(path, np.zeros((8, 16, 16), np.float32)) as mrc:
        mrc.voxel_size = (10.0, 10.0, 20.0)  # x, y, z
    type_into(qtbot, widgets["Tomogram"].file, str(path))
    answered = type_number_in_next_dialog("10")
    click(qtbot, widgets["Tomogram"].open_button)
    [(question, _)] = answered
    assert "aniso.mrc gives voxels of 20 x 10 x 10 Å (z, y, x), not cubic" in question
    assert tuple(viewer.layers["aniso"].scale) == (10.0,) * 3
    assert session.tomogram.voxel_size == 10.0


def test_the_voxel_size_field_keeps_four_decimals(explorer, qtbot, tmp_path):
    """It held two: 5.392 Å showed as 5.39, a nudge up and down made the tomogram 5.39 Å, and
    RELION's 1.0825 Å could not be typed."""
    _, widgets, session = explorer
    path = write_mrc(tmp_path / "fine.mrc", np.zeros((8, 16, 16), np.float32), voxel_size=5.392)
    type_into(qtbot, widgets["Tomogram"].file, str(path))
    click(qtbot, widgets["Tomogram"].open_button)
    box = widgets["Tomogram"].voxel_size.native
    assert box.text() == "5.3920"
    box.stepUp()
    box.stepDown()
    assert session.tomogram.voxel_size == pytest.approx(5.392, abs=1e-6)
    box.selectAll()
    qtbot.keyClicks(box, "1.0825")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert session.tomogram.voxel_size == pytest.approx(1.0825, abs=1e-6)


def test_a_corrected_voxel_size_moves_the_particles_and_the_export(
    explorer, qtbot, tmp_path, small_tomogram
):
    viewer, widgets, session = explorer
    placeholder = tmp_path / "placeholder.mrc"
    import mrcfile

    with mrcfile.open(small_tomogram) as mrc:
        write_mrc(placeholder, mrc.data.copy(), voxel_size=1.0)
    layer = open_and_import(qtbot, widgets, placeholder, three_picks(tmp_path / "picks"))
    voxel = widgets["Tomogram"].voxel_size
    assert voxel.enabled and voxel.value == 1.0
    for value in (12.0, 10.0):
        voxel.native.selectAll()
        qtbot.keyClicks(voxel.native, f"{value:g}")
        qtbot.keyClick(voxel.native, Qt.Key.Key_Return)
        assert tuple(viewer.layers["placeholder"].scale) == (value,) * 3
        assert tuple(layer.scale) == (value,) * 3
        assert session.particles.attrs["voxel_size"] == value
    voxel.native.selectAll()
    qtbot.keyClicks(voxel.native, "0")  # no voxel size: 10 A stays, and the field says so
    qtbot.keyClick(voxel.native, Qt.Key.Key_Return)
    assert voxel.value == 10.0 and session.particles.attrs["voxel_size"] == 10.0
    voxel.native.selectAll()
    qtbot.keyClicks(voxel.native, "0.8")  # taken as typed, not as its first keystroke, 0
    qtbot.keyClick(voxel.native, Qt.Key.Key_Return)
    assert voxel.value == 0.8 and session.particles.attrs["voxel_size"] == 0.8
    voxel.native.selectAll()
    qtbot.keyClicks(voxel.native, "10")
    qtbot.keyClick(voxel.native, Qt.Key.Key_Return)
    export = widgets["Export"]
    export.what.value, export.format.value = ALL, "RELION 5 STAR"
    type_into(qtbot, export.file, str(tmp_path / "out.star"))
    click(qtbot, export.export_button)
    back = read_particles(tmp_path / "out.star", voxel_size=10.0, tomogram_shape=(40, 60, 60))
    assert back[["z", "y", "x"]].to_numpy().tolist() == [[20, 20, 20], [20, 40, 40], [20, 20, 40]]


def test_a_corrected_voxel_size_makes_the_embedding_stale(
    explorer, qtbot, tmp_path, small_tomogram
):
    _, widgets, session = explorer
    first = open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "picks"))
    _embed_by_clicks(qtbot, widgets, "k-means", k=2)
    assert session.latent is not None
    type_into(qtbot, widgets["Particles"].file, str(three_picks(tmp_path / "more", n=2)))
    click(qtbot, widgets["Particles"].import_button)  # another layer of the tomogram, explored
    voxel = widgets["Tomogram"].voxel_size
    voxel.native.selectAll()
    qtbot.keyClicks(voxel.native, "12")  # the boxes are now cut at another scale
    qtbot.keyClick(voxel.native, Qt.Key.Key_Return)
    widgets["Particles"].layer.value = first  # the embedded layer, explored again
    assert session.latent is None and session.embedding is None and len(session.particles) == 3
    assert widgets["Embed"].status.value == "not run"


def test_a_volume_decoded_at_a_particle_goes_when_the_voxel_size_is_corrected(
    explorer, qtbot, tmp_path, small_tomogram, notifications
):
    """It stood at the particle's place at 10 A; at 12 A the particle is elsewhere. The
    clusters went without a word, and Decode said the volume was "placed by another
    tomogram", of the one tomogram open."""
    viewer, widgets, session = explorer
    open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "picks"))
    _embed_by_clicks(qtbot, widgets, "k-means", k=2)
    session.select([0])
    decode = widgets["Decode"]
    decode.source.value, decode.placement.value = "Selected particle", "At the particle"
    click(qtbot, decode.decode_button)
    qtbot.waitUntil(lambda: "decoded" in viewer.layers, timeout=WAIT_MS)
    voxel = widgets["Tomogram"].voxel_size
    voxel.native.selectAll()
    qtbot.keyClicks(voxel.native, "12")
    qtbot.keyClick(voxel.native, Qt.Key.Key_Return)
    assert "decoded" not in viewer.layers and session.latent is None
    dropped = "The embedding was dropped: small's boxes were cut at its old voxel size. Embed again"
    assert dropped in messages(notifications)
    assert decode.status.value == "the volume shown went: small's voxel size changed"


def test_the_selection_is_highlighted_alone_in_the_volume_view(
    explorer, qtbot, tmp_path, small_tomogram
):
    viewer, widgets, session = explorer
    layer = open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "picks"))
    tomogram = widgets["Tomogram"]
    tomogram.rendering.value = "Volume"
    assert viewer.dims.ndisplay == 3 and not tomogram.slab.enabled
    button = viewer.window._qt_viewer.viewerButtons.ndisplayButton
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)  # napari's own 2D/3D button
    assert viewer.dims.ndisplay == 2 and tomogram.rendering.value == "Plane"
    assert tomogram.slab.enabled
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert tomogram.rendering.value == "Volume" and viewer.dims.ndisplay == 3
    layer.selected_data = {1}
    highlight = viewer.layers["small picks (selected)"]
    assert highlight.data.tolist() == [[20.0, 40.0, 40.0]] and highlight.visible
    layer.selected_data = {0, 1, 2}
    layer.selected_data = {2}  # the layer keeps room for three, drawn at the one selected
    assert np.unique(highlight.data, axis=0).tolist() == [[20.0, 20.0, 40.0]]
    assert highlighted_rows(highlight).tolist() == [2]
    session.clear_selection()
    assert not highlight.visible


# -- Embed -----------------------------------------------------------------------------------
def test_a_missing_or_broken_checkpoint_leaves_no_model_to_embed_with(
    explorer, qtbot, tmp_path, small_tomogram, notifications
):
    _, widgets, session = explorer
    open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "picks"))
    embed = widgets["Embed"]
    assert session.model is not None and "Å/voxel" in embed.card.value  # the bundled model
    embed.source.value = "Checkpoint file"
    assert session.model is None and "choose a checkpoint" in embed.card.value
    assert messages(notifications) == []
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    type_into(qtbot, embed.checkpoint, str(broken))
    assert session.model is None and embed.card.value.startswith("no model")
    assert any("broken" in m for m in messages(notifications))
    click(qtbot, embed.run_button)
    assert not embed.task.running and session.latent is None
    assert "Choose a model" in messages(notifications)[-1]
    type_into(qtbot, embed.checkpoint, str(tmp_path / "mistyped.safetensors"))
    assert "mistyped.safetensors is no file" in embed.card.value

    _, card = load_bundled()
    flat_card = dataclasses.replace(
        card, architecture=dataclasses.replace(card.architecture, ndim=2), path=None
    )
    flat, _ = save_checkpoint(AffinityVAE(flat_card.architecture), flat_card, tmp_path / "flat")
    type_into(qtbot, embed.checkpoint, str(flat))  # a model of 2D images, for 3D particles
    click(qtbot, embed.run_button)
    qtbot.waitUntil(lambda: not embed.task.running, timeout=WAIT_MS)
    assert embed.status.value.startswith("failed") and session.latent is None
    embed.source.value = BUNDLED  # another model: that failure is no longer news
    assert embed.status.value == "not run"


def _embedding_400_slowly(viewer, qtbot, tmp_path, slow_embedding):
    """The docks, a noise tomogram with 400 particles, and their embedding started by a click
    and under way (at least 2.5 s more); returns the widgets, docks and the embedding's worker."""
    widgets, docks = add_dock_widgets(viewer)
    data = np.random.default_rng(0).normal(size=(96, 160, 160)).astype(np.float32)
    widgets["Tomogram"].open_file(write_mrc(tmp_path / "t.mrc", data))
    rng = np.random.default_rng(0)
    many = pd.DataFrame(rng.uniform(20, 76, (400, 3)), columns=["z", "y", "x"])
    widgets["Particles"].show_particles(many, "many")
    widgets["Embed"].batch = 16  # 25 batches
    click(qtbot, widgets["Embed"].run_button)
    qtbot.waitUntil(lambda: len(slow_embedding) > 0, timeout=WAIT_MS)
    return widgets, docks, widgets["Embed"].task.worker


def test_closing_the_viewer_mid_run_stops_the_work(
    make_napari_viewer, qtbot, tmp_path, slow_embedding
):
    viewer = make_napari_viewer()
    _, _, worker = _embedding_400_slowly(viewer, qtbot, tmp_path, slow_embedding)
    viewer.close()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=5000)
    qtbot.wait(200)  # anything the worker still sent is delivered (and must not raise)
    assert len(slow_embedding) < 5


def test_closing_the_embed_panel_mid_run_stops_its_work_and_says_so(
    make_napari_viewer, qtbot, tmp_path, slow_embedding, notifications
):
    """napari takes a closed panel's widget out of the window without deleting it: the
    embedding went on unseen, and its latents could arrive without their 2D map."""
    viewer = make_napari_viewer()
    session = session_for(viewer)
    widgets, docks, worker = _embedding_400_slowly(viewer, qtbot, tmp_path, slow_embedding)
    qtbot.mouseClick(docks["Embed"].title.close_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=5000)
    qtbot.wait(200)  # anything the worker still sent would be delivered by now
    assert len(slow_embedding) < 5 and session.latent is None
    assert "Embedding particles stopped: its panel was closed" in messages(notifications)
    assert "Embed (napari-affinity-vae)" not in viewer.window.dock_widgets
    _, embed = viewer.window.add_plugin_dock_widget("napari-affinity-vae", "Embed")
    assert embed is not widgets["Embed"] and embed.run_button.enabled  # opened anew, ready


# -- Few particles, and what the window does -------------------------------------------------
def _embed_by_clicks(qtbot, widgets, clustering: str, k: int = 9, projection: str = "UMAP") -> None:
    embed = widgets["Embed"]
    embed.projection.value, embed.clustering.value, embed.k.value = projection, clustering, k
    click(qtbot, embed.run_button)
    qtbot.waitUntil(lambda: not embed.task.running, timeout=WAIT_MS)
    qtbot.wait(50)


@pytest.mark.parametrize(
    ("clustering", "projection"),
    [("k-means", "UMAP"), ("Gaussian mixture", "t-SNE"), ("HDBSCAN", "UMAP")],
)
def test_two_particles_embed_cluster_and_explain_with_one_clear_message_each(
    explorer, qtbot, tmp_path, small_tomogram, notifications, clustering, projection
):
    _, widgets, session = explorer
    open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "picks", n=2))
    _embed_by_clicks(qtbot, widgets, clustering, projection=projection)
    assert session.clusters is not None and len(session.clusters) == 2
    assert widgets["Latent scatter"].colour_by.choices[0] == "cluster"
    status = widgets["Embed"].status.value
    assert status.startswith("2 particles, ") and "failed" not in status
    shown = messages(notifications)
    laid_out = f"{projection} needs at least 5 particles; 2 are laid out by PCA instead"
    if clustering == "HDBSCAN":
        assert shown[0] == laid_out and shown[1].startswith("HDBSCAN needs at least 5")
    else:
        assert shown == [laid_out, "Asked for 9 clusters of 2 particles; made 2"]  # in turn
    rect = widgets["Latent scatter"].plot.view.camera.rect  # both points well inside the view
    xy = session.particles[["embedding_x", "embedding_y"]].to_numpy()
    for axis, (start, size) in enumerate(((rect.left, rect.width), (rect.bottom, rect.height))):
        assert size > 1e-3 * np.ptp(xy[:, 0])  # not a sliver fitted to rounding noise
        assert np.all(
            (xy[:, axis] - start > 0.04 * size) & (start + size - xy[:, axis] > 0.04 * size)
        )
    session.select([0, 1])
    click(qtbot, widgets["Decode"].explain_button)
    qtbot.waitUntil(lambda: len(messages(notifications)) > len(shown), timeout=WAIT_MS)
    qtbot.wait(200)
    new = messages(notifications)[len(shown) :]
    assert new == ["Explain needs some particles selected and some not: all 2 are selected"]


def test_a_result_for_a_decoded_volume_does_not_change_what_a_star_file_is_read_against(
    explorer, qtbot, tmp_path, small_tomogram
):
    viewer, widgets, session = explorer
    picks = three_picks(tmp_path / "picks")
    open_and_import(qtbot, widgets, small_tomogram, picks)
    _embed_by_clicks(qtbot, widgets, "k-means", k=2)
    session.select([0])
    widgets["Decode"].source.value = "Selected particle"
    click(qtbot, widgets["Decode"].decode_button)
    qtbot.waitUntil(lambda: "decoded" in viewer.layers, timeout=WAIT_MS)
    star = write_particles(
        read_particles(picks), tmp_path / "picks.star", voxel_size=10.0, star_flavour="relion4"
    )
    [layer] = viewer.open(star, plugin="napari-affinity-vae")
    assert len(layer.data) == 3  # read against the tomogram, not the 32^3 decoded volume


def test_particles_opened_with_file_open_are_the_ones_explored(
    explorer, qtbot, tmp_path, small_tomogram, notifications
):
    """A STAR file naming its own tomogram (``TS_07``), opened with File > Open (or dropped on
    the window) on the tomogram shown, is what the docks then explore and embed."""
    viewer, widgets, session = explorer
    type_into(qtbot, widgets["Tomogram"].file, str(small_tomogram))
    click(qtbot, widgets["Tomogram"].open_button)
    picks = read_particles(three_picks(tmp_path / "picks")).assign(tomo_name="TS_07")
    star = write_particles(picks, tmp_path / "picks.star", voxel_size=10.0)
    [layer] = viewer.open(star, plugin="napari-affinity-vae")
    assert widgets["Particles"].particles_layer is layer
    assert widgets["Particles"].count.value == "3" and len(session.particles) == 3
    _embed_by_clicks(qtbot, widgets, "k-means", k=2)
    assert session.latent is not None and len(session.latent) == 3
    assert not any("no particles" in m for m in messages(notifications))


def _open_tomogram(qtbot, widgets, path: Path) -> None:
    type_into(qtbot, widgets["Tomogram"].file, str(path))
    click(qtbot, widgets["Tomogram"].open_button)


@pytest.mark.parametrize(("flavour", "stem"), [("relion4", "TS_1"), ("relion5", "TS_1_rec")])
def test_a_dropped_file_of_other_tomograms_waits_for_them_hidden(
    explorer, qtbot, tmp_path, small_tomogram, flavour, stem
):
    """Dropped while another tomogram was shown, TS_1's particles were read against it: RELION 5
    Angstrom counted from its centre, RELION 4 picks beyond its width dropped as outside it;
    and both tomograms' points lay, shown, over it. They wait for TS_1, in a file of that name
    or of it with a suffix (``TS_1_rec``), as a file dropped on TS_1_rec is read."""
    viewer, widgets, session = explorer
    _open_tomogram(qtbot, widgets, small_tomogram)  # 40 x 60 x 60
    ts_1 = write_mrc(tmp_path / f"{stem}.mrc", np.zeros((50, 100, 120), np.float32), 10.0)
    picks = pd.DataFrame({"z": [25.0, 25.0, 5.0], "y": [50.0, 50.0, 5.0], "x": [60, 100, 5.0]})
    picks["tomo_name"] = ["TS_1", "TS_1", "TS_2"]  # x = 100 lies outside small, inside TS_1
    star = write_particles(
        picks,
        tmp_path / "many.star",
        voxel_size=10.0,
        tomogram_shape=(50, 100, 120),
        star_flavour=flavour,
    )
    with pytest.warns(UserWarning, match="of TS_1, TS_2, not of the open tomogram small: hid"):
        layers = viewer.open(star, plugin="napari-affinity-vae")
    assert [x.name for x in layers] == ["many [TS_1]", "many [TS_2]"]
    assert not any(x.visible for x in layers)  # not over small
    assert widgets["Particles"].particles_layer is None
    _open_tomogram(qtbot, widgets, ts_1)
    assert layers[0].visible and not layers[1].visible
    np.testing.assert_allclose(layers[0].data, [[25, 50, 60], [25, 50, 100]])
    assert widgets["Particles"].particles_layer is layers[0] and len(session.particles) == 2


def test_a_file_naming_no_tomogram_dropped_first_lies_on_the_tomogram_opened(
    explorer, qtbot, tmp_path, small_tomogram
):
    """A CSV file dropped before the tomogram was opened with the Tomogram dock stayed at
    1 Angstrom a voxel (10 times too close to the origin) and was not explored."""
    viewer, widgets, session = explorer
    [layer] = viewer.open(three_picks(tmp_path / "picks"), plugin="napari-affinity-vae")
    _open_tomogram(qtbot, widgets, small_tomogram)
    np.testing.assert_allclose(layer.scale, [10.0] * 3)  # on the tomogram's voxels
    assert widgets["Particles"].particles_layer is layer and len(session.particles) == 3
    box = widgets["Tomogram"].voxel_size.native  # corrected: the points follow
    box.selectAll()
    qtbot.keyClicks(box, "20")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    np.testing.assert_allclose(layer.scale, [20.0] * 3)


def test_a_header_only_file_dropped_on_a_tomogram_says_it_holds_no_particles(
    explorer, qtbot, tmp_path, small_tomogram
):
    viewer, widgets, _session = explorer
    _open_tomogram(qtbot, widgets, small_tomogram)
    empty = tmp_path / "empty.csv"
    empty.write_text("x,y,z\n")
    with pytest.warns(UserWarning, match="empty.csv: holds no particles"):
        [layer] = viewer.open(empty, plugin="napari-affinity-vae")
    assert len(layer.data) == 0


def test_a_dropped_dynamo_table_is_the_open_tomograms_without_a_word(
    explorer, qtbot, tmp_path, small_tomogram
):
    """Dynamo numbers its tomograms: a table's '1' is no other tomogram to warn of."""
    viewer, widgets, session = explorer
    _open_tomogram(qtbot, widgets, small_tomogram)
    table = write_particles(read_particles(three_picks(tmp_path / "p")), tmp_path / "p.tbl")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        [layer] = viewer.open(table, plugin="napari-affinity-vae")
    assert widgets["Particles"].particles_layer is layer
    assert set(session.particles["tomo_name"]) == {"small"}
    picks = read_particles(three_picks(tmp_path / "q")).assign(tomo_name=["1", "2", "2"])
    two = write_particles(picks, tmp_path / "two.tbl")  # tomograms 1 and 2: which is small?
    with pytest.warns(UserWarning, match="Dynamo tomograms 1, 2, which name no tomogram file"):
        layers = viewer.open(two, plugin="napari-affinity-vae")
    assert [x.name for x in layers] == ["two [1]", "two [2]"]
    assert not any(x.visible for x in layers)


def test_long_legends_and_status_lines_never_widen_the_window(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    widgets, _ = add_dock_widgets(viewer)
    window = viewer.window._qt_window
    screen = window.screen().availableGeometry().width()
    session = session_for(viewer)
    n = 60
    names = [f"a_rather_long_class_name_of_a_molecule_{k}" for k in range(n)]
    session.set_particles(pd.DataFrame(np.ones((n, 3)), columns=["z", "y", "x"]))
    xy = np.random.default_rng(0).normal(size=(n, 2))
    session.add_columns(
        session.version,
        pd.DataFrame(
            {
                "embedding_x": xy[:, 0],
                "embedding_y": xy[:, 1],
                "class_name": names,
                "cluster": np.arange(n) % 20,
            }
        ),
    )
    canvas = widgets["Latent scatter"].canvas.native
    qtbot.wait(300)
    before = canvas.width()
    widgets["Latent scatter"].colour_by.value = "class_name"
    export = widgets["Export"]
    export.what.value = EACH_CLUSTER
    type_into(qtbot, export.file, str(tmp_path / ("a_long_file_name_" * 4 + ".star")))
    click(qtbot, export.export_button)
    assert export.status.value.startswith("wrote 20 files")
    qtbot.wait(300)
    assert window.frameGeometry().width() <= screen
    assert canvas.width() >= 0.9 * before  # the legend wraps; the canvas keeps its room


@pytest.mark.parametrize("dtype", [np.uint8, np.float16])
def test_one_particle_of_a_uint8_or_float16_tomogram_embeds_and_decodes(
    explorer, qtbot, tmp_path, small_tomogram, notifications, dtype
):
    import mrcfile

    viewer, widgets, session = explorer
    with mrcfile.open(small_tomogram) as mrc:
        data = mrc.data * 20 + 128 if dtype is np.uint8 else mrc.data
    path = write_mrc(tmp_path / "typed.mrc", np.clip(data, 0, 255).astype(dtype))
    open_and_import(qtbot, widgets, path, three_picks(tmp_path / "picks", n=1))
    _embed_by_clicks(qtbot, widgets, "k-means")
    assert session.latent.shape == (1, 8) and np.isfinite(session.latent).all()
    assert session.clusters.tolist() == [0]
    session.select([0])
    click(qtbot, widgets["Decode"].decode_button)
    qtbot.waitUntil(lambda: "decoded" in viewer.layers, timeout=WAIT_MS)
    assert np.isfinite(viewer.layers["decoded"].data).all()
    assert messages(notifications) == ["Asked for 9 clusters of 1 particle; made 1"]


def test_an_unexpected_error_is_one_sentence_and_napari_carries_on(
    explorer, qtbot, tmp_path, small_tomogram, notifications, monkeypatch
):
    _, widgets, session = explorer
    from napari_affinity_vae.widgets import particles as module

    def broken(*_args, **_kwargs):
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(module, "read_particles_for", broken)
    open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "picks"))
    assert messages(notifications) == ["Importing particles failed: the disk went away"]
    monkeypatch.undo()
    click(qtbot, widgets["Particles"].import_button)  # the same click works once it can
    assert len(session.particles) == 3


def test_rows_with_nan_are_refused_or_skipped_when_the_box_is_ticked(
    explorer, qtbot, tmp_path, small_tomogram, notifications
):
    viewer, widgets, session = explorer
    csv = tmp_path / "gaps.csv"
    csv.write_text("x,y,z\n20,20,20\n,40,20\n40,20,20\n")
    open_and_import(qtbot, widgets, small_tomogram, csv)
    assert len(session.particles) == 0
    assert "skip them to import the others" in messages(notifications)[-1]
    assert viewer.dims.axis_labels == ("z", "y", "x")  # the tomogram's axes, named
    qtbot.mouseClick(widgets["Particles"].skip_unusable.native, Qt.MouseButton.LeftButton)
    assert widgets["Particles"].skip_unusable.value
    click(qtbot, widgets["Particles"].import_button)
    assert len(session.particles) == 2
    assert "1 of 3 particles have missing (NaN) coordinates" in messages(notifications)[-1]


def test_the_density_view_of_a_few_points_shows_them(explorer, qtbot):
    viewer, widgets, session = explorer
    viewer.window._qt_window.show()
    scatter = widgets["Latent scatter"]
    n = 150
    session.set_particles(pd.DataFrame(np.ones((n, 3)), columns=["z", "y", "x"]))
    xy = np.random.default_rng(0).normal(size=(n, 2))
    session.add_columns(
        session.version, pd.DataFrame({"embedding_x": xy[:, 0], "embedding_y": xy[:, 1]})
    )
    scatter.density.native.click()
    assert scatter.density.value and scatter.heat.visible
    picture = scatter.canvas.render()[..., :3].astype(int)
    filled = picture[..., 1] > 100  # viridis is green to yellow where bins hold points
    assert filled.mean() > 0.02  # bins of a few points each, not single pixels in an empty panel


def test_per_cluster_export_writes_hdbscan_noise_to_its_own_file(explorer, qtbot, tmp_path):
    """HDBSCAN's noise label -1: cluster files name_cluster0.. and name_unclustered.star."""
    _, widgets, session = explorer
    table = pd.DataFrame({"z": np.arange(7.0), "y": 1.0, "x": 1.0})
    session.set_particles(table)
    session.add_columns(session.version, pd.DataFrame({"cluster": [0, -1, 1, 0, -1, 1, 1]}))
    export = widgets["Export"]
    export.what.value = EACH_CLUSTER
    type_into(qtbot, export.file, str(tmp_path / "name.star"))
    click(qtbot, export.export_button)
    names = ["name_cluster0.star", "name_cluster1.star", "name_unclustered.star"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    rows = {n: read_particles(tmp_path / n)["z"].round().tolist() for n in names}
    assert rows == {names[0]: [0, 3], names[1]: [2, 5, 6], names[2]: [1, 4]}

    (tmp_path / "name_notes.star").write_text("kept: not a cluster's file")
    clusters = pd.DataFrame({"cluster": [0, 0, 0, 0, 2, 2, 2]})  # clustered again, no noise
    session.add_columns(session.version, clusters)
    asked = answer_next_dialog(QMessageBox.StandardButton.No)
    click(qtbot, export.export_button)
    assert "name_unclustered.star" in asked[0] and "will be removed" in asked[0]
    assert len(list(tmp_path.iterdir())) == 4  # kept, as answered
    answer_next_dialog(QMessageBox.StandardButton.Yes)
    click(qtbot, export.export_button)
    left = ["name_cluster0.star", "name_cluster2.star", "name_notes.star"]
    assert sorted(p.name for p in tmp_path.iterdir()) == left  # no stale cluster1, unclustered


def test_a_warptools_template_matching_file_lands_on_its_particles(
    explorer, qtbot, tmp_path, small_tomogram
):
    """WarpTools 2 writes each coordinate as a fraction of the tomogram's size: its picks land
    on the blobs, and are exported in pixels."""
    _, widgets, _session = explorer
    warp = tmp_path / "small_flipx.star"
    warp.write_text(
        "data_\n\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n_rlnCoordinateZ #3\n"
        "_rlnAngleRot #4\n_rlnAngleTilt #5\n_rlnAnglePsi #6\n_rlnMicrographName #7\n"
        "_rlnAutopickFigureOfMerit #8\n"
        "0.3333333 0.3333333 0.5 10.0 20.0 30.0 small.tomostar 7.5\n"
        "0.6666667 0.6666667 0.5 10.0 20.0 30.0 small.tomostar 6.1\n"
    )
    layer = open_and_import(qtbot, widgets, small_tomogram, warp)
    np.testing.assert_allclose(layer.data, [[20, 20, 20], [20, 40, 40]], atol=1e-4)
    assert layer.features["rlnAutopickFigureOfMerit"].tolist() == [7.5, 6.1]
    export = widgets["Export"]
    export.what.value = ALL
    type_into(qtbot, export.file, str(tmp_path / "relion.star"))
    click(qtbot, export.export_button)
    written = starfile.read(tmp_path / "relion.star")  # pixels RELION reads
    np.testing.assert_allclose(written["rlnCoordinateX"], [20, 40], atol=1e-4)


def test_particles_a_file_gave_in_angstrom_move_with_a_corrected_voxel_size(
    explorer, qtbot, tmp_path, small_tomogram, notifications
):
    """A RELION 5 file gives Ångström from the tomogram's centre: read at a header's wrong 5 Å,
    its particles land twice as far out; corrected to 10 Å they land on the blobs. Picks in
    pixels stay on their voxels."""
    import mrcfile

    _, widgets, _ = explorer
    wrong = tmp_path / "wrong.mrc"
    with mrcfile.open(small_tomogram) as mrc:
        write_mrc(wrong, mrc.data.copy(), voxel_size=5.0)
    blobs = [[20.0, 20.0, 20.0], [20.0, 40.0, 40.0]]
    centred = pd.DataFrame(blobs, columns=["z", "y", "x"]).assign(tomo_name="wrong")
    relion5 = write_particles(
        centred,
        tmp_path / "r5.star",
        voxel_size=10.0,
        tomogram_shape=(40, 60, 60),
        star_flavour="relion5",
    )
    pixels = three_picks(tmp_path / "picks")
    at_five = open_and_import(qtbot, widgets, wrong, relion5)
    np.testing.assert_allclose(at_five.data, [[20, 10, 10], [20, 50, 50]])  # 2 x from the centre
    type_into(qtbot, widgets["Particles"].file, str(pixels))
    click(qtbot, widgets["Particles"].import_button)
    picks = widgets["Particles"].particles_layer
    voxel = widgets["Tomogram"].voxel_size
    voxel.native.selectAll()
    qtbot.keyClicks(voxel.native, "10")
    qtbot.keyClick(voxel.native, Qt.Key.Key_Return)
    np.testing.assert_allclose(at_five.data, blobs)
    assert picks.data.tolist() == [[20, 20, 20], [20, 40, 40], [20, 20, 40]]
    assert any(
        "r5" in m and "moved with the voxel size (5 to 10 Å)" in m for m in messages(notifications)
    )
    at_five.add(np.array([[20.0, 25.0, 35.0]]))  # a hand pick beside them stays where it is
    voxel.native.selectAll()
    qtbot.keyClicks(voxel.native, "12")
    qtbot.keyClick(voxel.native, Qt.Key.Key_Return)
    centre = np.array([20.0, 30.0, 30.0])
    at_twelve = centre + (np.array(blobs) - centre) * 10 / 12
    np.testing.assert_allclose(at_five.data, [*at_twelve, [20.0, 25.0, 35.0]])
    assert any("1 point added or moved by hand stayed" in m for m in messages(notifications))
    voxel.native.selectAll()
    qtbot.keyClicks(voxel.native, "10")
    qtbot.keyClick(voxel.native, Qt.Key.Key_Return)
    widgets["Particles"].layer.value = at_five
    export = widgets["Export"]
    export.what.value, export.format.value = ALL, "RELION 5 STAR"
    type_into(qtbot, export.file, str(tmp_path / "out.star"))
    click(qtbot, export.export_button)
    back = starfile.read(tmp_path / "out.star")  # the file's own Ångström again
    original = starfile.read(relion5)
    np.testing.assert_allclose(
        back["rlnCenteredCoordinateXAngst"][:2], original["rlnCenteredCoordinateXAngst"]
    )
    voxel.native.selectAll()  # a slip: 2 Å moves them five times as far from the centre
    qtbot.keyClicks(voxel.native, "2")
    qtbot.keyClick(voxel.native, Qt.Key.Key_Return)
    assert messages(notifications)[-1].endswith(
        "; 2 particles now lie outside the tomogram: is the voxel size right?"
    )


def test_copied_particles_paste_onto_the_plane_shown_as_hand_picks(
    explorer, qtbot, tmp_path, small_tomogram, notifications
):
    """Ctrl+C on a selected particle, another plane, Ctrl+V: a new particle there, in the
    table and the export, with nothing of the one copied (napari's own paste raised on 3D
    points and added them behind the table's back)."""
    from napari_affinity_vae.widgets.export import ALL

    viewer, widgets, session = explorer
    layer = open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "picks"))
    viewer.layers.selection.active = layer
    layer.selected_data = {1}  # as a click in Select mode chooses it
    canvas = viewer.window._qt_viewer.canvas.native
    control = Qt.KeyboardModifier.ControlModifier
    qtbot.keyClick(canvas, Qt.Key.Key_C, control)
    viewer.dims.set_point(0, 250.0)  # the z slider moved to plane 25 (10 Å voxels)
    qtbot.keyClick(canvas, Qt.Key.Key_V, control)
    assert layer.data.tolist()[-1] == [25.0, 40.0, 40.0]
    assert len(session.particles) == 4
    qtbot.keyClick(canvas, Qt.Key.Key_V, control)  # again: it is there already
    assert len(layer.data) == 4
    assert "the points copied are on this plane already" in messages(notifications)[-1]
    viewer.dims.ndisplay = 3
    qtbot.keyClick(canvas, Qt.Key.Key_V, control)  # in 3D it would sit on the one copied
    assert len(layer.data) == 4 and "switch to 2D" in messages(notifications)[-1]
    viewer.dims.ndisplay = 2
    assert session.particles[["z", "y", "x"]].to_numpy().tolist()[-1] == [25.0, 40.0, 40.0]
    export = widgets["Export"]
    export.what.value = ALL
    type_into(qtbot, export.file, str(tmp_path / "all.csv"))
    click(qtbot, export.export_button)
    written = read_particles(tmp_path / "all.csv")
    assert written[["z", "y", "x"]].to_numpy().tolist()[-1] == [25.0, 40.0, 40.0]


def test_an_imported_particle_can_be_dragged(explorer, qtbot, tmp_path, small_tomogram):
    """A point of an imported file dragged to where the particle is: the table follows (the
    points were pandas' read-only view, and napari's drag failed on them)."""
    _, widgets, session = explorer
    layer = open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "picks"))
    layer.selected_data = {0}
    layer._set_drag_start({0}, layer.data[0])  # as napari's drag: pressed on the point,
    layer._move({0}, [20.0, 22.0, 23.0])  # released here, in the plane shown
    assert layer.data[0].tolist() == [20.0, 22.0, 23.0]
    assert session.particles.loc[0, ["z", "y", "x"]].tolist() == [20.0, 22.0, 23.0]


def test_volumes_another_model_decoded_go_when_particles_are_embedded_again(
    explorer, qtbot, tmp_path, small_tomogram
):
    """Embedded again with a model of 4 latents, the bundled model's volume stayed beside 4
    sliders, as if theirs."""
    from napari_affinity_vae.model.network import Architecture
    from napari_affinity_vae.widgets.embed import CHECKPOINT
    from test_splat_explorer import checkpoint

    viewer, widgets, session = explorer
    open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "picks"))
    _embed_by_clicks(qtbot, widgets, "k-means", k=2)
    session.select([0, 1])
    click(qtbot, widgets["Decode"].decode_button)
    qtbot.waitUntil(lambda: "decoded" in viewer.layers, timeout=WAIT_MS)
    other = checkpoint(tmp_path / "other.safetensors", Architecture(box=32, latent_dims=4))
    widgets["Embed"].source.value = CHECKPOINT
    type_into(qtbot, widgets["Embed"].checkpoint, str(other))
    assert "decoded" in viewer.layers  # a model chosen: nothing embedded with it yet
    _embed_by_clicks(qtbot, widgets, "k-means", k=2)
    assert "decoded" not in viewer.layers and len(widgets["Decode"].sliders) == 4 + 1


def test_a_file_without_particles_or_of_another_tomogram_says_so(
    explorer, qtbot, tmp_path, small_tomogram, notifications
):
    """An empty file made an empty layer without a word; a file naming only TS_42 was placed
    on small.mrc without one."""
    viewer, widgets, session = explorer
    empty = tmp_path / "empty.csv"
    empty.write_text("x,y,z\n")
    open_and_import(qtbot, widgets, small_tomogram, empty)
    assert messages(notifications)[-1].endswith("empty.csv: holds no particles")
    assert not [x for x in viewer.layers if x.name.startswith("small ")]
    other = tmp_path / "other.csv"
    other.write_text("tomo_name,x,y,z\nTS_42,20,20,20\n")
    type_into(qtbot, widgets["Particles"].file, str(other))
    click(qtbot, widgets["Particles"].import_button)
    assert messages(notifications)[-1] == (
        "other.csv names tomogram TS_42, not small: its particles are placed on small"
    )
    assert len(session.particles) == 1


def test_picks_made_at_a_voxel_size_corrected_meanwhile_are_discarded(
    explorer, qtbot, small_tomogram, monkeypatch, notifications
):
    """The diameters (and templates) were in Å at the old voxel size: the picks were kept, and a
    score map was placed at the old scale over a corner of the tomogram."""
    from napari_affinity_vae.widgets import picker

    _, widgets, session = explorer
    real = picker.pick_tomogram_steps

    def slow(*args):
        time.sleep(1.0)
        yield 0
        return (yield from real(*args))

    monkeypatch.setattr(picker, "pick_tomogram_steps", slow)
    type_into(qtbot, widgets["Tomogram"].file, str(small_tomogram))
    click(qtbot, widgets["Tomogram"].open_button)
    click(qtbot, widgets["Particles"].pick_button)
    voxel = widgets["Tomogram"].voxel_size.native
    voxel.selectAll()
    qtbot.keyClicks(voxel, "20")
    qtbot.keyClick(voxel, Qt.Key.Key_Return)  # while the picker runs
    qtbot.waitUntil(lambda: not widgets["Particles"].task.running, timeout=WAIT_MS)
    assert messages(notifications)[-1] == (
        "Picks discarded: the voxel size changed while the picker ran (10 Å to 20 Å): pick again"
    )
    assert len(session.particles) == 0


def test_picking_by_hand_is_on_a_plane(explorer, qtbot, small_tomogram, notifications):
    """Switched to Volume, clicks went on adding points at a depth the user never chose."""
    viewer, widgets, _ = explorer
    layer = open_to_pick_by_hand(qtbot, widgets, small_tomogram)
    assert layer.mode == "add"
    widgets["Tomogram"].rendering.value = "Volume"
    assert layer.mode != "add"
    assert messages(notifications)[-1].startswith("Points are no longer added by clicks")
    click(qtbot, widgets["Particles"].hand_button)  # asked again in 3D: back on a plane
    assert viewer.dims.ndisplay == 2 and layer.mode == "add"
    assert widgets["Tomogram"].rendering.value == "Plane"


def test_points_edited_by_hand_keep_the_embedding_of_the_others(
    explorer, qtbot, tmp_path, small_tomogram, notifications
):
    """One stray click in add mode threw away every particle's latents and clusters without
    a word; as in a project, the point added or moved waits for the next embedding."""
    _, widgets, session = explorer
    picks = open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "picks"))
    _embed_by_clicks(qtbot, widgets, "k-means", k=2)
    before, clusters = session.embedding.copy(), session.clusters.copy()
    picks.add(np.array([[20.0, 30.0, 30.0]]))  # as a click on the plane adds it
    assert messages(notifications)[-1] == (
        "1 particle added by hand: not in the scatter until the particles are embedded again"
    )
    np.testing.assert_allclose(session.embedding[:3], before)
    assert np.isnan(session.embedding[3]).all() and session.clusters.tolist()[3] == -1
    assert widgets["Embed"].status.value.startswith("3 of 4 particles")
    picks.selected_data = {0}
    picks._set_drag_start({0}, picks.data[0])  # as napari's drag: pressed on the point,
    picks._move({0}, [20.0, 22.0, 23.0])  # released here
    assert np.isnan(session.embedding[0]).all()
    np.testing.assert_allclose(session.embedding[1:3], before[1:])
    export = widgets["Export"]  # the clusters, kept, are still exported one file each
    export.what.value = EACH_CLUSTER
    type_into(qtbot, export.file, str(tmp_path / "each.csv"))
    click(qtbot, export.export_button)
    written = sorted(p.name for p in tmp_path.glob("each_*.csv"))
    assert len(written) == len(set(clusters[1:]) | {"unclustered"})
    picks.selected_data = {3}  # the point added, selected as napari leaves it: Delete
    picks.remove_selected()
    assert len(session.particles) == 3 and len(picks.data) == 3
    np.testing.assert_allclose(session.embedding[1:3], before[1:])
    _embed_by_clicks(qtbot, widgets, "k-means", k=2)  # the next embedding places them all
    assert np.isfinite(session.embedding).all() and len(session.embedding) == 3


def test_export_with_the_tomogram_closed_says_to_open_it(
    explorer, qtbot, tmp_path, small_tomogram, notifications
):
    """The picks stayed on screen, and Export said there were no particles to export."""
    viewer, widgets, _session = explorer
    picks = open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "picks"))
    viewer.layers.remove("small")
    export = widgets["Export"]
    export.what.value = ALL
    type_into(qtbot, export.file, str(tmp_path / "out.star"))
    click(qtbot, export.export_button)
    assert messages(notifications)[-1].startswith("No tomogram is open: open the particles'")
    viewer.layers.selection = {picks}  # the way the message gives
    viewer.layers.save(str(tmp_path / "saved.star"), selected=True, plugin="napari-affinity-vae")
    assert len(read_particles(tmp_path / "saved.star")) == 3


def test_a_hand_pick_among_extracted_particles_gives_relion_no_nan_file_names(
    explorer, qtbot, tmp_path, small_tomogram, notifications
):
    """A pick of Warp (tomogram file, extracted subtomogram) with a point added by hand beside
    it: the hand pick's rlnImageName, rlnCtfImage and rlnMicrographName were written "nan",
    which RELION reads as file names. The file now leaves the extracted files out, for RELION
    to extract the particles again, and gives the hand pick its tomogram's file."""
    table = read_particles(three_picks(tmp_path / "picks", n=1))
    table["rlnMicrographName"] = "small.mrc"
    table["rlnImageName"], table["rlnCtfImage"] = "subtomo/0.mrc", "subtomo/0_ctf.mrc"
    star = write_particles(table, tmp_path / "warp.star", voxel_size=10.0)
    _, widgets, session = explorer
    picks = open_and_import(qtbot, widgets, small_tomogram, star)
    picks.add(np.array([[20.0, 30.0, 30.0]]))  # by hand
    export = widgets["Export"]
    export.what.value = ALL
    type_into(qtbot, export.file, str(tmp_path / "with hand pick.star"))
    click(qtbot, export.export_button)
    written = starfile.read(tmp_path / "with hand pick.star")
    assert len(written) == 2 and not {"rlnImageName", "rlnCtfImage"} & set(written)
    assert written["rlnMicrographName"].tolist() == ["small.mrc"] * 2
    said = messages(notifications)[-2:]  # before "Exported to ..."
    assert said[0].startswith("1 particle without an extracted subtomogram (added by hand)")
    session.select([0])  # the extracted particle alone keeps its files
    export.what.value = SELECTED
    type_into(qtbot, export.file, str(tmp_path / "one.star"))
    click(qtbot, export.export_button)
    one = starfile.read(tmp_path / "one.star")
    assert one[["rlnImageName", "rlnCtfImage"]].values.tolist() == [
        ["subtomo/0.mrc", "subtomo/0_ctf.mrc"]
    ]


def test_hand_picks_exported_cluster_by_cluster_get_names_no_other_particle_has(
    explorer, qtbot, tmp_path, small_tomogram
):
    """RELION extracts each particle to a file named after rlnTomoParticleName: a hand pick
    alone in the unclustered file failed to export, and one beside a selection was numbered
    after that selection only, taking another particle's name."""
    _, widgets, session = explorer
    table = read_particles(three_picks(tmp_path / "picks"))
    table["rlnTomoParticleName"] = ["small/1", "small/2", "small/7"]
    table["rlnTomoParticleId"] = [1, 2, 7]
    star = write_particles(table, tmp_path / "named.star", voxel_size=10.0)
    picks = open_and_import(qtbot, widgets, small_tomogram, star)
    _embed_by_clicks(qtbot, widgets, "k-means", k=2)
    picks.add(np.array([[20.0, 30.0, 30.0]]))  # by hand: cluster -1, unclustered
    export = widgets["Export"]
    export.what.value, export.format.value = EACH_CLUSTER, "RELION 5 STAR"
    type_into(qtbot, export.file, str(tmp_path / "each.star"))
    click(qtbot, export.export_button)
    written = [starfile.read(f, always_dict=True)["particles"] for f in tmp_path.glob("each_*")]
    names = sorted(n for block in written for n in block["rlnTomoParticleName"])
    assert names == ["small/1", "small/2", "small/7", "small/8"]
    ids = sorted(i for block in written for i in block["rlnTomoParticleId"])
    assert ids == [1, 2, 7, 8]
    session.select([0, 3])  # the first particle and the hand pick
    export.what.value = SELECTED
    type_into(qtbot, export.file, str(tmp_path / "two.star"))
    click(qtbot, export.export_button)
    two = starfile.read(tmp_path / "two.star", always_dict=True)["particles"]
    assert two["rlnTomoParticleName"].tolist() == ["small/1", "small/8"]
