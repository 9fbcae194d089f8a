"""What the explorer uses as layers come and go, as a person adds, renames, removes and switches
them: the particles follow the tomogram shown, a 3D image dropped in is not taken for a tomogram,
a project is left only when the user says so (and never silently), and the selection's highlight
belongs to the particles explored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qtpy.QtWidgets import QMessageBox

from conftest import write_mrc
from napari_affinity_vae.widgets.highlight import is_highlight
from test_clicks import _embed_by_clicks as _embed_clicks
from test_clicks import answer_next_dialog, click, messages, three_picks, type_into
from test_project_explorer import _embed_by_clicks, opened, project_folder  # noqa: F401

A_PICKS = [[20.0, 20.0, 20.0], [20.0, 40.0, 40.0], [20.0, 20.0, 40.0]]


@pytest.fixture
def two_tomograms(tmp_path) -> tuple[Path, Path]:
    """Tomogram A (40 x 60 x 60) and tomogram B (30 x 50 x 70), both at 10 A/voxel."""
    rng = np.random.default_rng(0)
    a = write_mrc(tmp_path / "tomo_a.mrc", rng.normal(0, 1, (40, 60, 60)).astype(np.float32))
    b = write_mrc(tmp_path / "tomo_b.mrc", rng.normal(0, 1, (30, 50, 70)).astype(np.float32))
    return a, b


def open_tomogram(qtbot, widgets, path: Path) -> None:
    type_into(qtbot, widgets["Tomogram"].file, str(path))
    click(qtbot, widgets["Tomogram"].open_button)


def import_picks(qtbot, widgets, path: Path):
    type_into(qtbot, widgets["Particles"].file, str(path))
    click(qtbot, widgets["Particles"].import_button)
    return widgets["Particles"].particles_layer


def highlights(viewer) -> list[str]:
    return [x.name for x in viewer.layers if is_highlight(x)]


def test_another_tomogram_never_uses_the_first_ones_particles(
    explorer, qtbot, tmp_path, two_tomograms
):
    viewer, widgets, session = explorer
    a, b = two_tomograms
    open_tomogram(qtbot, widgets, a)
    picks = import_picks(qtbot, widgets, three_picks(tmp_path / "picks"))
    assert session.particles[["z", "y", "x"]].to_numpy().tolist() == A_PICKS
    open_tomogram(qtbot, widgets, b)
    assert session.tomogram.name == "tomo_b"
    assert len(session.particles) == 0 and widgets["Particles"].particles_layer is None
    assert widgets["Particles"].count.value == "0"

    widgets["Tomogram"].layer.value = viewer.layers["tomo_a"]  # A chosen again in the dock
    assert widgets["Particles"].particles_layer is picks
    assert session.particles[["z", "y", "x"]].to_numpy().tolist() == A_PICKS
    assert set(session.particles["tomo_name"]) == {"tomo_a"}

    viewer.layers.remove("tomo_a")  # B, still open, is shown: without A's particles
    assert session.tomogram.name == "tomo_b" and len(session.particles) == 0


def test_the_embed_status_is_of_the_tomogram_shown(explorer, qtbot, tmp_path, two_tomograms):
    viewer, widgets, _session = explorer
    a, b = two_tomograms
    open_tomogram(qtbot, widgets, a)
    import_picks(qtbot, widgets, three_picks(tmp_path / "picks"))
    _embed_clicks(qtbot, widgets, "k-means", k=2)
    embed = widgets["Embed"]
    assert embed.status.value == "3 particles, 2 clusters"
    open_tomogram(qtbot, widgets, b)
    assert embed.status.value == "not run"
    widgets["Tomogram"].layer.value = viewer.layers["tomo_a"]  # A chosen again
    assert embed.status.value == "3 particles, 2 clusters"


def test_closing_the_last_tomogram_leaves_its_particles_unexplored(explorer, qtbot, tmp_path):
    viewer, widgets, session = explorer
    open_tomogram(
        qtbot, widgets, write_mrc(tmp_path / "tomo_a.mrc", np.zeros((40, 60, 60), np.float32))
    )
    picks = import_picks(qtbot, widgets, three_picks(tmp_path / "picks"))
    viewer.layers.remove("tomo_a")  # none open: the points stay a layer, no longer explored
    assert session.tomogram is None and widgets["Particles"].particles_layer is None
    assert len(session.particles) == 0 and widgets["Particles"].count.value == "0"
    assert widgets["Particles"].tomogram_label.value == "none open" and picks in viewer.layers


def test_a_3d_image_dropped_in_is_not_taken_for_the_tomogram(
    explorer, qtbot, tmp_path, two_tomograms
):
    viewer, widgets, session = explorer
    open_tomogram(qtbot, widgets, two_tomograms[0])
    import_picks(qtbot, widgets, three_picks(tmp_path / "picks"))
    version = session.version
    viewer.add_image(np.zeros((20, 20, 20), np.float32), name="reference map")
    assert session.tomogram.name == "tomo_a" and widgets["Tomogram"].layer.value.name == "tomo_a"
    assert session.version == version and len(session.particles) == 3
    open_tomogram(qtbot, widgets, two_tomograms[1])  # a tomogram opened as one is followed
    assert session.tomogram.name == "tomo_b"


def test_a_project_is_left_only_when_the_user_says_so_and_the_dock_forgets_it(
    opened,  # noqa: F811
    qtbot,
    tmp_path,
    notifications,
):
    viewer, widgets, session = opened
    _embed_by_clicks(qtbot, widgets, session)
    viewer.add_image(np.zeros((20, 20, 20), np.float32), name="reference map")
    assert session.project is not None and session.latent is not None
    assert session.tomogram.name == "TS_01"
    widgets["Project"].shown.value = "TS_02"  # the project's own switch keeps it
    assert session.project is not None and session.latent is not None

    picks = three_picks(tmp_path / "picks")
    asked = answer_next_dialog(QMessageBox.StandardButton.No)
    import_picks(qtbot, widgets, picks)
    qtbot.waitUntil(lambda: bool(asked))
    assert "discards its embedding" in asked[0]
    assert session.project is not None and session.latent is not None

    answer_next_dialog(QMessageBox.StandardButton.Yes)
    import_picks(qtbot, widgets, picks)
    assert session.project is None and len(session.particles) == 3
    assert any("embedding discarded" in m for m in messages(notifications))
    dock = widgets["Project"]
    assert dock.summary.value == "no project"
    assert list(dock.shown.choices) == [] and list(dock.kind.choices) == []
    assert dock.table.to_dict()["tomogram"] == {}


def test_renaming_the_particles_keeps_the_selection_as_layers_come_and_go(
    explorer, qtbot, tmp_path, two_tomograms
):
    viewer, widgets, session = explorer
    open_tomogram(qtbot, widgets, two_tomograms[0])
    picks = import_picks(qtbot, widgets, three_picks(tmp_path / "picks"))
    version = session.version
    picks.name = "mine"
    picks.selected_data = {0, 1}  # the first selection adds the highlight layer
    assert session.selection.tolist() == [0, 1] and session.version == version
    assert highlights(viewer) == ["mine (selected)"]
    viewer.add_points(np.zeros((1, 2)), name="a note")
    viewer.layers.remove("a note")
    assert session.selection.tolist() == [0, 1] and session.version == version
    assert widgets["Particles"].particles_layer is picks


def test_particles_no_longer_explored_lose_their_highlight(
    explorer, qtbot, tmp_path, two_tomograms
):
    viewer, widgets, session = explorer
    open_tomogram(qtbot, widgets, two_tomograms[0])
    picks = import_picks(qtbot, widgets, three_picks(tmp_path / "picks"))
    picks.selected_data = {1}
    assert highlights(viewer) == ["tomo_a picks (selected)"] and picks.opacity < 1
    open_tomogram(qtbot, widgets, two_tomograms[1])
    assert highlights(viewer) == [] and picks.opacity == 1

    widgets["Tomogram"].layer.value = viewer.layers["tomo_a"]
    picks.selected_data = {0}
    assert highlights(viewer) == ["tomo_a picks (selected)"]
    viewer.layers.remove(picks)
    assert highlights(viewer) == [] and len(session.particles) == 0
