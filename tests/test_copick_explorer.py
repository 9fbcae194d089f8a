"""A copick project in napari, as a person uses it: its configuration typed into the Project
dock, a pick set chosen, particles selected in the viewer and exported back as copick picks."""

from __future__ import annotations

import numpy as np
import pytest

from napari_affinity_vae.schema import AXES, TOMO_NAME
from test_clicks import click, messages, shown, type_into

copick = pytest.importorskip("copick")
from copick_files import build_copick_project, simulated_runs  # noqa: E402


@pytest.fixture(scope="module")
def simulated():
    return simulated_runs()


@pytest.fixture
def opened(explorer, qtbot, tmp_path, simulated):
    """The explorer with the copick project opened by typing its configuration."""
    viewer, widgets, session = explorer
    config = build_copick_project(tmp_path, simulated)
    project_dock = widgets["Project"]
    type_into(qtbot, project_dock.files, str(config))
    click(qtbot, project_dock.open_button)
    return viewer, widgets, session, config


def test_a_copick_project_opens_with_its_pick_sets_to_choose(opened, notifications):
    viewer, widgets, session, _ = opened
    dock = widgets["Project"]
    assert len(session.particles) == 20 and session.tomogram.name == "TS_01"
    assert shown(dock.picks) and "ribosome by curator, session 0" in dock.picks.choices
    layer = viewer.layers["TS_01"]
    assert layer.multiscale and tuple(layer.scale) == (10.0, 10.0, 10.0)
    assert dock.kind.choices == ("wbp", "denoised")

    dock.picks.value = "ribosome by curator, session 0"
    assert set(session.particles["copick_object"]) == {"ribosome"}
    assert len(session.particles) == 4
    assert dock.picks.value == "ribosome by curator, session 0"  # the others stay offered
    assert len(dock.picks.choices) == 10
    assert not [n for n in notifications if n.severity == "error"]
    assert viewer.layers[0].name == "TS_01"  # shown again, not renumbered
    widgets["Particles"].particles_layer.selected_data = {0, 1}  # the first selection after
    assert len(session.selection) == 2


def test_particles_selected_in_the_viewer_export_as_copick_picks(opened, qtbot, notifications):
    _, widgets, session, config = opened
    points = widgets["Particles"].particles_layer
    points.selected_data = {0, 1}  # napari's own selection, in the shown tomogram
    assert len(session.selection) == 2
    export = widgets["Export"]
    export.format.value = "copick picks"
    assert not shown(export.file) and shown(export.copick_object)
    assert "ribosome" in export.copick_object.choices
    type_into(qtbot, export.new_object, "odd-blob")
    click(qtbot, export.export_button)
    assert (
        export.status.value == "wrote copick picks: odd-blob by avae, session 0: 2 picks in 1 run"
    )

    root = copick.from_file(str(config))
    assert root.get_object("odd-blob") is not None
    (picks,) = root.get_run("TS_01").get_picks(object_name="odd-blob", user_id="avae")
    positions, _ = picks.numpy()
    chosen = session.particles.iloc[session.selection]
    assert set(chosen[TOMO_NAME]) == {"TS_01"}
    np.testing.assert_allclose(
        np.sort(positions[:, ::-1] / 10.0, axis=0), np.sort(chosen[list(AXES)], axis=0), atol=1e-6
    )
    assert "odd-blob" in export.copick_object.choices

    type_into(qtbot, export.copick_session, "0")  # the session just written: refused
    click(qtbot, export.export_button)
    assert "choose another session" in messages(notifications)[-1]
    type_into(qtbot, export.copick_session, "")
    click(qtbot, export.export_button)  # the next free session
    assert "session 1: 2 picks" in export.status.value
    curator = copick.from_file(str(config)).get_run("TS_01").get_picks(user_id="curator")
    assert sum(len(p.points) for p in curator) == 10  # the curator's picks are untouched


def test_a_file_chosen_after_copick_picks_turns_the_format_back_to_files(explorer, tmp_path):
    """The Export dock remembers its format: with copick picks remembered from another session,
    a file name chosen names its format again."""
    _, widgets, _ = explorer
    export = widgets["Export"]
    export.format.value = "copick picks"
    export.file.value = tmp_path / "chosen.star"
    assert export.format.value == "RELION 4 STAR" and shown(export.file)
