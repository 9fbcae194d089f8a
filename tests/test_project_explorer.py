"""A project of several tomograms in napari: open it in the Project dock, see one tomogram and its
particles, embed them all, select across tomograms, go to a particle of another tomogram, and
export one file across tomograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile
from napari.layers import Image, Points
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QMessageBox

from conftest import relion_layout
from napari_affinity_vae.demo import add_dock_widgets
from napari_affinity_vae.io.projects import open_project
from napari_affinity_vae.io.validate import outside_rows
from napari_affinity_vae.operations.export import DYNAMO
from napari_affinity_vae.schema import AXES, TOMO_NAME
from napari_affinity_vae.simulate.project import write_project
from napari_affinity_vae.simulate.tomogram import Simulation
from napari_affinity_vae.widgets.export import ALL, EACH_CLUSTER
from napari_affinity_vae.widgets.highlight import highlighted_rows
from napari_affinity_vae.widgets.project import PROJECT_KEY
from napari_affinity_vae.widgets.viewer_session import session_for
from test_clicks import answer_next_dialog, click, messages, type_into

WAIT_MS = 60_000
SMALL = Simulation(shape=(40, 96, 96), particles=7, snr=0.5, seed=21)


@pytest.fixture(scope="module")
def project_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("project")
    write_project(folder, SMALL, 3)
    return folder


@pytest.fixture
def opened(make_napari_viewer, qtbot, project_folder):
    """The explorer with the project opened by typing its optimisation set and clicking Open."""
    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    dock = widgets["Project"]
    type_into(qtbot, dock.files, str(project_folder / "optimisation_set.star"))
    click(qtbot, dock.open_button)
    return viewer, widgets, session_for(viewer)


def _embed_by_clicks(qtbot, widgets, session) -> None:
    """Every particle of the project embedded (PCA) by a click on Run."""
    embed = widgets["Embed"]
    embed.projection.value = "PCA"
    click(qtbot, embed.run_button)
    qtbot.waitUntil(
        lambda: session.clusters is not None and not embed.task.running, timeout=WAIT_MS
    )


def _column(dock, name: str) -> list:
    """A column of the Project dock's table of tomograms, as the user reads it."""
    return list(dock.table.to_dict()[name].values())


def _project_images(viewer) -> list[Image]:
    return [x for x in viewer.layers if PROJECT_KEY in x.metadata]


def test_opening_a_project_lists_its_tomograms_and_shows_the_first(opened, project_folder):
    viewer, widgets, session = opened
    dock = widgets["Project"]
    assert _column(dock, "tomogram") == ["TS_01", "TS_02", "TS_03"]
    assert _column(dock, "particles") == [7, 7, 7]
    assert dock.summary.value.startswith("3 tomograms, 21 particles")
    assert [x.name for x in _project_images(viewer)] == ["TS_01"]
    assert len(session.particles) == 21 and session.tomogram.name == "TS_01"
    points = widgets["Particles"].particles_layer
    assert points.name == "TS_01 particles" and len(points.data) == 7
    truth = open_project([project_folder / "optimisation_set.star"]).particles
    np.testing.assert_allclose(points.data, truth[truth[TOMO_NAME] == "TS_01"][list(AXES)])


def test_choosing_another_tomogram_replaces_the_one_shown(opened):
    viewer, widgets, session = opened
    widgets["Project"].shown.value = "TS_02"
    assert [x.name for x in _project_images(viewer)] == ["TS_02"]  # only one held
    assert session.tomogram.name == "TS_02" and len(session.particles) == 21
    assert widgets["Particles"].particles_layer.name == "TS_02 particles"
    assert "TS_01 particles" not in viewer.layers


def test_particles_stay_above_the_tomogram_shown_after_one_was_opened_again(opened, project_folder):
    """TS_02 opened again with File > Open, then TS_03 shown: its image went above the lone
    copy, and so above the particles, which it hid."""
    viewer, widgets, _ = opened
    widgets["Project"].shown.value = "TS_02"
    viewer.open(project_folder / "tomograms" / "TS_02.mrc", plugin="napari-affinity-vae")
    for name in ("TS_03", "TS_02"):
        widgets["Project"].shown.value = name
        shown = [i for i, x in enumerate(viewer.layers) if isinstance(x, Image) and x.visible]
        particles = viewer.layers.index(widgets["Particles"].particles_layer)
        assert widgets["Particles"].particles_layer.name == f"{name} particles"
        assert max(shown) < particles, [x.name for x in viewer.layers]


def test_a_selection_across_tomograms_is_counted_highlighted_and_gone_to(opened, qtbot):
    viewer, widgets, session = opened
    _embed_by_clicks(qtbot, widgets, session)
    assert np.isfinite(session.latent).all() and session.latent.shape == (21, 8)
    assert "tomo_name" in widgets["Latent scatter"].colour_by.choices
    widgets["Latent scatter"].colour_by.value = "tomo_name"
    chosen = [1, 2, 15]  # two of TS_01, one of TS_03
    session.select(chosen)
    selected = _column(widgets["Project"], "selected")
    assert selected == [2, 0, 1]
    highlight = viewer.layers["TS_01 particles (selected)"]
    np.testing.assert_array_equal(highlighted_rows(highlight), [1, 2])  # TS_01's points 1, 2
    widgets["Project"].shown.value = "TS_02"
    click(qtbot, widgets["Latent scatter"].go_button)  # none in TS_02: TS_01 is opened
    assert session.tomogram.name == "TS_01"
    z = session.particles.loc[[1, 2], "z"].to_numpy() * 10.0
    assert np.min(np.abs(z - viewer.dims.point[-3])) <= 10.0  # at one of TS_01's selected


def test_each_tomograms_particles_have_their_colour_in_the_scatter(opened, qtbot):
    """Coloured from its own particles alone, each tomogram's first category took the first
    colour: by tomogram, every tomogram's particles were blue in the viewer."""
    _, widgets, session = opened
    _embed_by_clicks(qtbot, widgets, session)
    scatter = widgets["Latent scatter"]
    scatter.colour_by.value = "tomo_name"
    seen = {}
    for name in ("TS_01", "TS_02"):
        widgets["Project"].shown.value = name
        layer = widgets["Particles"].particles_layer
        rows = np.flatnonzero(session.particles["tomo_name"] == name)
        np.testing.assert_allclose(layer.border_color, scatter._colours[rows], atol=1e-3)
        seen[name] = tuple(layer.border_color[0])
    assert seen["TS_01"] != seen["TS_02"]


def test_a_file_of_another_project_tomogram_dropped_waits_for_it(opened, tmp_path, project_folder):
    """Dropped while TS_01 was shown, a file of TS_02's particles alone was placed on TS_01,
    drawn over its own, as for a lone tomogram of another name."""
    viewer, widgets, session = opened
    table = starfile.read(project_folder / "particles.star", always_dict=True)
    rows = table["particles"]
    star = tmp_path / "TS_02_picks.star"
    starfile.write({**table, "particles": rows[rows["rlnTomoName"] == "TS_02"]}, star)
    with pytest.warns(UserWarning, match="are of TS_02, not of the open tomogram TS_01: hidden"):
        [layer] = viewer.open(star, plugin="napari-affinity-vae")
    assert not layer.visible
    widgets["Project"].shown.value = "TS_02"
    assert layer.visible
    ts02 = session.particles[session.particles[TOMO_NAME] == "TS_02"][list(AXES)].to_numpy()
    np.testing.assert_allclose(layer.data, ts02, atol=1e-3)


def test_a_click_on_a_scatter_point_of_another_tomogram_goes_there(opened, qtbot):
    viewer, widgets, session = opened
    _embed_by_clicks(qtbot, widgets, session)
    scatter = widgets["Latent scatter"]
    scatter.canvas.native.resize(400, 400)
    row = 18  # of TS_03
    xy = session.embedding
    scatter.view.camera.rect = tuple(xy.min(axis=0) - 1) + tuple(np.ptp(xy, axis=0) + 2)
    pos = scatter.view.scene.transform.map(xy[row])[:2]
    scatter.canvas.events.mouse_press(pos=pos, button=1, modifiers=())
    scatter.canvas.events.mouse_release(pos=pos, button=1, modifiers=())
    assert session.selection.tolist() == [row]
    assert session.tomogram.name == "TS_03"
    y = session.particles.loc[row, "y"] * 10.0
    assert viewer.dims.point[-2] == pytest.approx(y, abs=10.0)


@pytest.mark.parametrize("label", ["RELION 5 STAR", "Dynamo table"])
def test_export_across_tomograms_reads_back_to_the_same_particles(
    opened, qtbot, tmp_path, project_folder, label
):
    _viewer, widgets, session = opened
    _embed_by_clicks(qtbot, widgets, session)
    xy = session.embedding
    low, high = xy.min(axis=0) - 1, xy.max(axis=0) + 1
    widgets["Latent scatter"].select_lasso(
        np.array([low, [high[0], low[1]], high, [low[0], high[1]]])
    )
    chosen = session.selection  # a lasso around all: every tomogram's particles
    assert len(chosen) == 21
    export = widgets["Export"]
    export.format.value = label
    out = tmp_path / ("chosen.star" if label.startswith("RELION") else "chosen.tbl")
    type_into(qtbot, export.file, str(out))
    click(qtbot, export.export_button)
    expected = session.particles.iloc[chosen]
    if label.startswith("RELION"):
        assert export.status.value == "wrote 1 file: chosen.star"
        back = open_project([project_folder / "tomograms.star", out]).particles
        assert starfile.read(out, always_dict=True).keys() == {"optics", "particles"}
    else:
        assert export.status.value == "wrote 2 files: chosen.tbl, chosen.doc"
        back = open_project([out, out.with_suffix(".doc")]).particles
        numbers = {"1": "TS_01", "2": "TS_02", "3": "TS_03"}
        back[TOMO_NAME] = back[TOMO_NAME].map(numbers)
    assert back[TOMO_NAME].tolist() == expected[TOMO_NAME].tolist()
    assert set(back[TOMO_NAME]) == {"TS_01", "TS_02", "TS_03"}
    np.testing.assert_allclose(back[list(AXES)], expected[list(AXES)], atol=1e-3)


def test_each_cluster_as_dynamo_tables_shares_one_index_named_as_typed(opened, qtbot, tmp_path):
    _viewer, widgets, session = opened
    _embed_by_clicks(qtbot, widgets, session)
    export = widgets["Export"]
    export.format.value = "Dynamo table"
    export.what.value = EACH_CLUSTER
    type_into(qtbot, export.file, str(tmp_path / "picks.tbl"))
    click(qtbot, export.export_button)
    clusters = np.unique(session.clusters)
    tables = [f"picks_cluster{k}.tbl" for k in clusters]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*tables, "picks.doc"])
    for name in tables:  # every table reads back through the one index
        back = open_project([tmp_path / name, tmp_path / "picks.doc"]).particles
        assert len(back) == np.sum(session.clusters == int(name[13:-4]))


def _dynamo(folder: Path) -> list[Path]:
    from conftest import write_mrc

    for number in (1, 2):
        write_mrc(folder / f"tomo{number}.mrc", np.zeros((30, 40, 50), np.float32))
    table = np.zeros((3, 35))
    table[:, 19] = [1, 2, 2]
    table[:, 23:26] = [[11, 21, 6], [31, 11, 3], [41, 31, 11]]
    np.savetxt(folder / "particles.tbl", table, fmt="%g")
    (folder / "index.doc").write_text("1 tomo1.mrc\n2 tomo2.mrc\n")
    return [folder / "particles.tbl", folder / "index.doc"]


def _named(folder: Path) -> list[Path]:
    from conftest import write_mrc

    tomograms = folder / "tomograms"
    tomograms.mkdir()
    for name in ("TS_01", "TS_02"):
        write_mrc(tomograms / f"{name}.mrc", np.zeros((30, 40, 50), np.float32))
    starfile.write(
        {
            "particles": pd.DataFrame(
                {
                    "rlnTomoName": ["TS_01", "TS_02", "TS_02"],
                    "rlnCoordinateX": [20.0, 60.0, 80.0],  # unbinned: twice the tomograms' voxels
                    "rlnCoordinateY": [40.0, 20.0, 60.0],
                    "rlnCoordinateZ": [10.0, 4.0, 20.0],
                }
            )
        },
        folder / "particles.star",
    )
    return [folder / "particles.star", tomograms]


def _folder(folder: Path) -> list[Path]:
    from conftest import write_mrc
    from napari_affinity_vae.io.particles import write_particles

    for name in ("a", "b"):
        write_mrc(folder / f"{name}.mrc", np.zeros((30, 40, 50), np.float32))
    rows = {"z": [5.0, 15.0, 10.0], "y": [20.0, 10.0, 30.0], "x": [10.0, 30.0, 40.0]}
    write_particles(pd.DataFrame(rows).head(1), folder / "a.csv")
    write_particles(pd.DataFrame(rows).tail(2), folder / "b.csv")
    return [folder]


@pytest.mark.parametrize(
    ("make", "binning", "shown"),
    [(_dynamo, 1.0, "1"), (_named, 2.0, "TS_01"), (_folder, 1.0, "a")],
    ids=["dynamo", "relion4 with a folder", "a folder"],
)
def test_other_sources_open_in_the_project_dock(
    make_napari_viewer, qtbot, tmp_path, make, binning, shown
):
    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    dock = widgets["Project"]
    paths = make(tmp_path)
    files = [p for p in paths if p.is_file()]
    if files:
        type_into(qtbot, dock.files, ", ".join(map(str, files)))
    if any(p.is_dir() for p in paths):
        type_into(qtbot, dock.folder, str(next(p for p in paths if p.is_dir())))
    dock.binning.value = binning
    click(qtbot, dock.open_button)
    session = session_for(viewer)
    assert _column(dock, "particles") == [1, 2]
    assert len(session.particles) == 3 and session.tomogram.name == shown
    points = widgets["Particles"].particles_layer
    np.testing.assert_allclose(points.data, [[5, 20, 10]])  # each source's first particle


def test_cancel_stops_a_projects_embedding(opened, qtbot, slow_embedding):
    _viewer, widgets, session = opened
    embed = widgets["Embed"]
    embed.batch = 2  # 4 batches a tomogram, 12 in all: at least 1.2 s
    click(qtbot, embed.run_button)
    qtbot.waitUntil(lambda: len(slow_embedding) >= 2, timeout=WAIT_MS)
    click(qtbot, embed.cancel_button)
    qtbot.waitUntil(lambda: not embed.task.running, timeout=WAIT_MS)
    assert session.latent is None and embed.status.value == "cancelled"
    assert len(slow_embedding) < 6 and embed.run_button.enabled


def test_a_project_is_embedded_on_the_dask_scheduler_typed_in(opened, qtbot):
    from distributed import LocalCluster

    _viewer, widgets, session = opened
    embed = widgets["Embed"]
    assert not embed.scheduler.native.isHidden()  # offered once a project is open
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        type_into(qtbot, embed.scheduler, cluster.scheduler_address)
        embed.projection.value = "PCA"
        click(qtbot, embed.run_button)
        qtbot.waitUntil(
            lambda: session.clusters is not None and not embed.task.running, timeout=WAIT_MS
        )
        ran = cluster.scheduler.task_prefixes
    assert "embed_tomogram" in ran  # the tomograms' tasks ran on that cluster
    assert np.isfinite(session.latent).all() and session.latent.shape == (21, 8)


def _broken_copy(project_folder: Path, folder: Path, broken: tuple[str, ...]) -> Path:
    """The project copied with the tomograms ``broken`` truncated; its optimisation set."""
    for path in project_folder.glob("*.star"):
        (folder / path.name).write_text(path.read_text())
    (folder / "tomograms").mkdir()
    for source in (project_folder / "tomograms").glob("*.mrc"):
        data = b"truncated" if source.stem in broken else source.read_bytes()
        (folder / "tomograms" / source.name).write_bytes(data)
    return folder / "optimisation_set.star"


def open_with_ts_02_broken(viewer, qtbot, tmp_path, project_folder):
    """The docks, session and Project dock of ``viewer`` with the project opened by clicks,
    tomogram TS_02's file truncated."""
    widgets, _ = add_dock_widgets(viewer)
    dock = widgets["Project"]
    type_into(qtbot, dock.files, str(_broken_copy(project_folder, tmp_path, ("TS_02",))))
    click(qtbot, dock.open_button)
    return widgets, session_for(viewer), dock


def test_show_names_the_tomogram_shown_as_tomograms_fail_and_close(
    make_napari_viewer, qtbot, tmp_path, project_folder, notifications
):
    viewer = make_napari_viewer()
    _, session, dock = open_with_ts_02_broken(viewer, qtbot, tmp_path, project_folder)
    assert dock.shown.value == "TS_01" and session.tomogram.name == "TS_01"
    dock.shown.value = "TS_02"  # its file is broken: TS_01 stays, and Show says so
    shown = messages(notifications)[-1]
    assert shown.startswith("TS_02: ") and shown.count("TS_02.mrc") == 1
    assert dock.shown.value == "TS_01" and session.tomogram.name == "TS_01"
    viewer.layers.remove(widgets_tomogram(viewer))  # the user closes the tomogram
    assert dock.shown.value is None
    dock.shown.value = "TS_01"  # chosen again: shown again, below its particles
    assert session.tomogram.name == "TS_01" and widgets_tomogram(viewer) is not None
    assert viewer.layers.index(widgets_tomogram(viewer)) == 0
    viewer.layers.remove(widgets_tomogram(viewer))
    dock.table.native.cellDoubleClicked.emit(0, 0)  # what Qt sends on a double click on a row
    assert session.tomogram.name == "TS_01" and widgets_tomogram(viewer) is not None


def widgets_tomogram(viewer):
    """The project's tomogram layer shown, if any."""
    return next((x for x in viewer.layers if PROJECT_KEY in x.metadata), None)


def test_a_tomogram_that_cannot_be_embedded_leaves_the_others_explorable(
    make_napari_viewer, qtbot, tmp_path, project_folder, notifications
):
    viewer = make_napari_viewer()
    widgets, session, dock = open_with_ts_02_broken(viewer, qtbot, tmp_path, project_folder)
    assert "not a readable MRC file" in _column(dock, "status")[1]
    _embed_by_clicks(qtbot, widgets, session)
    assert any(m.startswith("Tomogram TS_02 was not embedded") for m in messages(notifications))
    assert widgets["Embed"].status.value.startswith("14 of 21 particles, ")
    broken = session.particles["tomo_name"] == "TS_02"
    assert (session.clusters[broken] == -1).all() and (session.clusters[~broken] >= 0).all()
    scatter = widgets["Latent scatter"]
    xy = session.embedding[~broken.to_numpy()]
    pad = np.ptp(xy, axis=0) * 0.1 + 1e-6
    low, high = xy.min(axis=0) - pad, xy.max(axis=0) + pad
    scatter.select_lasso(np.array([low, [high[0], low[1]], high, [low[0], high[1]]]))
    assert sorted(session.selection) == list(np.flatnonzero(~broken))  # the placed ones only
    decode = widgets["Decode"]
    assert len(decode.sliders) == 9  # 8 latent and 1 pose, from the embedded particles
    decode.source.value = "Selection mean"
    click(qtbot, decode.decode_button)
    qtbot.waitUntil(lambda: "decoded" in viewer.layers, timeout=WAIT_MS)


def test_no_tomogram_embedded_says_so_and_keeps_what_was_there(
    make_napari_viewer, qtbot, tmp_path, project_folder
):
    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    session = session_for(viewer)
    dock = widgets["Project"]
    broken = ("TS_01", "TS_02", "TS_03")
    type_into(qtbot, dock.files, str(_broken_copy(project_folder, tmp_path, broken)))
    click(qtbot, dock.open_button)
    embed = widgets["Embed"]
    click(qtbot, embed.run_button)
    qtbot.waitUntil(lambda: not embed.task.running, timeout=WAIT_MS)
    assert embed.status.value == "failed: no tomogram could be embedded"
    assert session.latent is None and len(session.particles) == 21


def test_a_voxel_size_corrected_in_the_tomogram_dock_is_the_projects(opened, qtbot, notifications):
    _viewer, widgets, session = opened
    _embed_by_clicks(qtbot, widgets, session)
    widgets["Tomogram"].voxel_size.value = 12.0  # the user corrects TS_01's header
    assert session.latent is None and session.clusters is None  # of boxes cut at 10 A
    assert any("TS_01's boxes were cut at its old voxel size" in m for m in messages(notifications))
    assert session.project.tomograms["TS_01"].voxel_size == 12.0
    assert session.project.open("TS_01").voxel_size == 12.0  # what its embedding opens
    assert session.project.tomograms["TS_02"].voxel_size == pytest.approx(10.0)
    points = widgets["Particles"].particles_layer
    assert tuple(points.scale) == (12.0, 12.0, 12.0)  # the particles follow it


def test_a_projects_particles_given_in_angstrom_move_with_a_corrected_voxel_size(
    opened, qtbot, tmp_path, project_folder, notifications
):
    """RELION 5 gives Ångström from each tomogram's centre: corrected from 10 to 12 Å, TS_01's
    particles move to where those Ångström now lie (a point added by hand stays), the other
    tomograms' stay, and the export gives the file's own Ångström back."""

    _, widgets, session = opened
    before = session.particles[list(AXES)].to_numpy(dtype=float)
    points = widgets["Particles"].particles_layer
    points.add(np.array([[10.0, 20.0, 30.0]]))  # a hand pick, in the table's last row
    points.add(points.data[:1])  # a second particle where the first is: it stays too
    session.set_labels([0, 8], "ribosome")  # named in the scatter, in TS_01 and TS_02
    session.select([0, 8])
    voxel = widgets["Tomogram"].voxel_size
    voxel.native.selectAll()
    qtbot.keyClicks(voxel.native, "12")
    qtbot.keyClick(voxel.native, Qt.Key.Key_Return)
    centre = np.array(session.project.tomograms["TS_01"].shape) / 2
    ts01 = session.rows_of("TS_01")
    after = session.particles[list(AXES)].to_numpy(dtype=float)
    np.testing.assert_allclose(after[ts01[:-2]], centre + (before[ts01[:-2]] - centre) * 10 / 12)
    assert after[ts01[-2]].tolist() == [10.0, 20.0, 30.0]
    assert after[ts01[-1]].tolist() == before[ts01[0]].tolist()
    np.testing.assert_allclose(points.data, after[ts01])  # what the viewer shows
    others = np.setdiff1d(np.arange(len(before)), ts01[:-1])
    np.testing.assert_allclose(after[others[:-1]], before[others[:-1]])
    assert any(
        "TS_01" in m
        and "moved with the voxel size (10 to 12 Å)" in m
        and "2 points added or moved by hand stayed" in m
        for m in messages(notifications)
    )
    assert session.particles["label"].iloc[[0, 8]].tolist() == ["ribosome"] * 2
    voxel.native.selectAll()  # halved: most lie outside now, which the message counts
    qtbot.keyClicks(voxel.native, "5")
    qtbot.keyClick(voxel.native, Qt.Key.Key_Return)
    outside = outside_rows(session.particles[list(AXES)].to_numpy()[ts01], centre * 2).sum()
    assert outside > 0
    said = f"{outside} particles now lie outside the tomogram: is the voxel size right?"
    assert messages(notifications)[-1].endswith(said)
    assert session.selection.tolist() == [0, 8]
    export = widgets["Export"]
    export.what.value, export.format.value = ALL, "RELION 5 STAR"
    type_into(qtbot, export.file, str(tmp_path / "out.star"))
    click(qtbot, export.export_button)
    columns = [f"rlnCenteredCoordinate{a}Angst" for a in "XYZ"]
    back, original = (
        next(b for b in starfile.read(path, always_dict=True).values() if columns[0] in b)
        for path in (tmp_path / "out.star", project_folder / "particles.star")
    )
    mine = back[back["rlnTomoName"] == "TS_01"][columns].to_numpy()[:-2]
    theirs = original[original["rlnTomoName"] == "TS_01"][columns].to_numpy()
    np.testing.assert_allclose(mine, theirs, atol=1e-3)


def test_particles_of_a_tomogram_the_project_does_not_list_are_not_exported_empty(
    make_napari_viewer, qtbot, tmp_path, relion5, notifications
):
    """particles.star names TS_09, which tomograms.star does not: RELION 4 STAR and CSV were
    written with its rows empty, and a Dynamo table filed them under tomogram 1 (TS_01)."""

    def to_ts_09(table: pd.DataFrame) -> pd.DataFrame:
        table.loc[table.index[-2:], "rlnTomoName"] = "TS_09"
        return table

    source = _edited_copy(relion5, tmp_path / "project", particles=to_ts_09)
    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    type_into(qtbot, widgets["Project"].files, str(source))
    click(qtbot, widgets["Project"].open_button)
    export = widgets["Export"]
    export.what.value = ALL
    for label, name in [("RELION 4 STAR", "all.star"), ("CSV", "all.csv"), (DYNAMO, "all.tbl")]:
        export.format.value = label
        type_into(qtbot, export.file, str(tmp_path / name))
        click(qtbot, export.export_button)
        assert "the particles of TS_09 have no position in voxels" in messages(notifications)[-1]
        assert not (tmp_path / name).exists() and not (tmp_path / "all.doc").exists()
    session = session_for(viewer)
    session.select(np.flatnonzero(session.particles[TOMO_NAME] != "TS_09"))
    export.what.value, export.format.value = "Selected particles", "CSV"
    type_into(qtbot, export.file, str(tmp_path / "all.csv"))
    click(qtbot, export.export_button)  # the others are written
    assert len(pd.read_csv(tmp_path / "all.csv")) == len(session.particles) - 2


def _edited_copy(relion5: Path, folder: Path, particles=None, tomograms=None) -> Path:
    """A copy of the RELION 5 project with its particles (and tomograms) tables edited."""
    import shutil

    shutil.copytree(relion5, folder)
    for name, edit in (("particles", particles), ("tomograms", tomograms)):
        if edit is not None:
            star = starfile.read(folder / f"{name}.star", always_dict=True)
            block = next(k for k, b in star.items() if "rlnTomoName" in getattr(b, "columns", ()))
            star[block] = edit(star[block])
            starfile.write(star, folder / f"{name}.star")
    return folder / "optimisation_set.star"


def test_a_project_whose_only_tomogram_is_missing_says_so_and_shows_none(
    make_napari_viewer, qtbot, tmp_path, relion5, notifications
):
    """Nothing was shown and nothing said so, while the Show box named TS_01 as if shown."""
    source = _edited_copy(
        relion5,
        tmp_path / "project",
        particles=lambda table: table[table["rlnTomoName"] == "TS_01"],
        tomograms=lambda table: table.iloc[:1],
    )
    (source.parent / "tomograms" / "TS_01.mrc").unlink()
    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    dock = widgets["Project"]
    type_into(qtbot, dock.files, str(source))
    click(qtbot, dock.open_button)
    said = messages(notifications)[-1]
    assert said.startswith("No tomogram of the project can be shown (TS_01: ")
    assert said.endswith("TS_01.mrc: no such file)")
    assert dock.shown.native.currentText() == "" and not len(viewer.layers)
    dock.shown.value = "TS_01"  # chosen: the user is told why again
    assert messages(notifications)[-1].startswith("TS_01: ")


def test_embedding_a_project_without_particles_says_there_are_none(
    make_napari_viewer, qtbot, tmp_path, relion5, notifications
):
    source = _edited_copy(relion5, tmp_path / "project", particles=lambda table: table.iloc[:0])
    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    type_into(qtbot, widgets["Project"].files, str(source))
    click(qtbot, widgets["Project"].open_button)
    click(qtbot, widgets["Embed"].run_button)
    assert messages(notifications)[-1] == "There are no particles to embed: import or pick some"
    assert not widgets["Embed"].task.running


def test_the_project_docks_voxel_size_opens_tomograms_whose_headers_have_none(
    make_napari_viewer, qtbot, tmp_path
):
    from conftest import write_mrc

    write_mrc(tmp_path / "a.mrc", np.zeros((20, 30, 40), np.float32), voxel_size=0.0)
    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    dock = widgets["Project"]
    type_into(qtbot, dock.folder, str(tmp_path))
    dock.voxel_size.value = 8.0
    click(qtbot, dock.open_button)
    session = session_for(viewer)
    assert session.tomogram.name == "a" and session.tomogram.voxel_size == 8.0
    assert tuple(viewer.layers["a"].scale) == (8.0, 8.0, 8.0)


def test_a_relion4_project_exports_and_saves_in_its_own_unbinned_pixels(
    make_napari_viewer, qtbot, tmp_path
):
    """A RELION 4 STAR (2.5 A tilt-series pixels) with a folder of bin-4 tomograms (10 A): the
    Export dock and File > Save give RELION the file's own pixels and optics back, not voxels."""
    from conftest import write_mrc

    folder = tmp_path / "tomograms"
    folder.mkdir()
    for name in ("TS_01", "TS_02"):
        write_mrc(folder / f"{name}.mrc", np.zeros((20, 30, 40), np.float32), voxel_size=10.0)
    optics = {"rlnOpticsGroup": [1, 2], "rlnTomoTiltSeriesPixelSize": [2.5, 2.5]}
    block = {
        "rlnTomoName": ["TS_01", "TS_02", "TS_02"],
        "rlnCoordinateX": [40.0, 80.0, 120.0],
        "rlnCoordinateY": [20.0, 40.0, 60.0],
        "rlnCoordinateZ": [8.0, 16.0, 24.0],
        "rlnOpticsGroup": [1, 2, 2],
        "rlnClassNumber": [1, 1, 1],
    }
    star = tmp_path / "particles.star"
    starfile.write({"optics": pd.DataFrame(optics), "particles": pd.DataFrame(block)}, star)
    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    type_into(qtbot, widgets["Project"].files, str(star))
    type_into(qtbot, widgets["Project"].folder, str(folder))
    click(qtbot, widgets["Project"].open_button)
    points = widgets["Particles"].particles_layer
    np.testing.assert_allclose(points.data, [[2, 5, 10]])  # TS_01's, a quarter of its pixels
    export = widgets["Export"]
    export.what.value = ALL
    type_into(qtbot, export.file, str(tmp_path / "all.star"))
    click(qtbot, export.export_button)
    written = starfile.read(tmp_path / "all.star")
    assert written["optics"].to_dict(orient="list") == optics
    for column, values in block.items():
        assert written["particles"][column].tolist() == values, column
    viewer.layers.selection = {points}
    viewer.layers.save(str(tmp_path / "saved.star"), selected=True, plugin="napari-affinity-vae")
    saved = starfile.read(tmp_path / "saved.star")
    assert saved["particles"]["rlnCoordinateX"].tolist() == [40.0]
    assert "optics" in saved


@pytest.mark.parametrize("source", ["relion4", "folder"])
def test_a_binned_project_exports_and_saves_in_the_pixels_it_was_read_in(
    make_napari_viewer, qtbot, tmp_path, source
):
    """Coordinates picked on tomograms 4 times finer than those opened, without optics: the
    binning typed in the Project dock brings them onto the tomograms, and every pixel format
    the Export dock and File > Save write gives them back in the file's own pixels."""
    from conftest import write_mrc
    from napari_affinity_vae.io.particles import read_particles, write_particles

    folder = tmp_path / "tomograms"
    folder.mkdir()
    write_mrc(folder / "TS_01.mrc", np.zeros((20, 30, 40), np.float32), voxel_size=10.0)
    unbinned = pd.DataFrame({"z": [8.0, 24.0], "y": [20.0, 60.0], "x": [40.0, 120.0]})
    if source == "relion4":
        files = [write_particles(unbinned.assign(tomo_name="TS_01"), tmp_path / "picks.star")]
    else:
        write_particles(unbinned, folder / "TS_01.csv")
        files = []
    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    dock = widgets["Project"]
    if files:
        type_into(qtbot, dock.files, str(files[0]))
    type_into(qtbot, dock.folder, str(folder))
    type_into(qtbot, dock.binning, "4")
    click(qtbot, dock.open_button)
    points = widgets["Particles"].particles_layer
    np.testing.assert_allclose(points.data, unbinned.to_numpy() / 4)  # on the binned tomogram
    export = widgets["Export"]
    export.what.value = ALL
    for name, label in [
        ("all.star", "RELION 4 STAR"),
        ("all.tbl", "Dynamo table"),
        ("all.csv", "CSV"),
    ]:
        export.format.value = label
        type_into(qtbot, export.file, str(tmp_path / name))
        click(qtbot, export.export_button)
        back = read_particles(tmp_path / name)  # in the file's own pixels
        np.testing.assert_allclose(back[list(AXES)], unbinned, err_msg=label)
    viewer.layers.selection = {points}
    viewer.layers.save(str(tmp_path / "saved.star"), selected=True, plugin="napari-affinity-vae")
    saved = starfile.read(tmp_path / "saved.star")
    assert saved["rlnCoordinateX"].tolist() == [40.0, 120.0]


def test_points_added_moved_and_removed_by_hand_are_the_projects(
    opened, qtbot, tmp_path, project_folder, notifications
):
    """In a project's layer a point added, dragged or deleted changes the project: its counts,
    its export, its next embedding; the other particles keep their places in the scatter."""

    _, widgets, session = opened
    _embed_by_clicks(qtbot, widgets, session)
    before = session.embedding.copy()
    scatter, decode = widgets["Latent scatter"], widgets["Decode"]
    scatter.density.value = True  # the views as the user left them stay so
    scatter.view.camera.rect = (0.0, 0.0, 1.0, 1.0)
    decode.sliders[0].value = decode.sliders[0].max
    points = widgets["Particles"].particles_layer
    points.add(np.array([[10.0, 20.0, 30.0]]))  # as a click on the plane adds it
    assert scatter.density.value and tuple(scatter.view.camera.rect.size) == (1.0, 1.0)
    assert decode.sliders[0].value == decode.sliders[0].max
    assert _column(widgets["Project"], "particles") == [8, 7, 7]
    assert len(session.particles) == 22 and len(points.data) == 8
    added = session.rows_of("TS_01")[-1]
    assert session.particles.loc[added, TOMO_NAME] == "TS_01"
    assert session.particles.loc[added, "cluster"] == -1  # waits for the next embedding
    assert np.isnan(session.embedding[added]).all()
    kept = np.delete(np.arange(22), added)
    np.testing.assert_allclose(session.embedding[kept], before)
    assert widgets["Embed"].status.value.startswith("21 of 22 particles")
    points.selected_data = {0}
    session.select([2, 15])  # chosen in the scatter, and kept through the edits below
    points._set_drag_start({0}, points.data[0])  # as napari's drag: pressed on the point,
    target = [points.data[0][0], 22.0, 32.0]  # in the plane shown
    points._move({0}, target)  # released here
    moved = session.rows_of("TS_01")[0]
    assert session.particles.loc[moved, ["z", "y", "x"]].tolist() == target
    assert np.isnan(session.embedding[moved]).all()
    assert session.selection.tolist() == [2, 15]
    points.remove([1])  # as the Delete key removes the points selected
    assert _column(widgets["Project"], "particles") == [7, 7, 7] and len(points.data) == 7
    assert session.selection.tolist() == [1, 14]  # the same particles, a row earlier
    points.add(np.array([[10.0, 20.0, 999.0]]))  # beyond the tomogram's edge: undone
    assert len(points.data) == 7 and len(session.particles) == 21
    assert "This edit was undone: a particle must lie inside TS_01" in notifications[-1].message
    export = widgets["Export"]
    export.what.value, export.format.value = ALL, "RELION 5 STAR"
    type_into(qtbot, export.file, str(tmp_path / "edited.star"))
    click(qtbot, export.export_button)
    back = open_project([tmp_path / "edited.star", project_folder / "tomograms.star"])
    assert len(back.particles) == 21
    ts01 = back.particles[back.particles[TOMO_NAME] == "TS_01"][list(AXES)].to_numpy()
    assert np.any(np.all(np.isclose(ts01, [10.0, 20.0, 30.0], atol=1e-3), axis=1))
    _embed_by_clicks(qtbot, widgets, session)  # the next embedding places every particle
    assert np.isfinite(session.embedding).all() and len(session.embedding) == 21


def test_a_second_project_saves_in_its_own_pixels_not_the_firsts(
    make_napari_viewer, qtbot, tmp_path
):
    """The layer showing a project's particles serves the next project too: the binning and
    blocks of the first are not the second's."""
    from conftest import write_mrc
    from napari_affinity_vae.io.particles import write_particles

    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    dock = widgets["Project"]
    for name, binning in (("first", "4"), ("second", "1")):
        folder = tmp_path / name
        folder.mkdir()
        write_mrc(folder / "TS_01.mrc", np.zeros((20, 30, 40), np.float32), voxel_size=10.0)
        write_particles(pd.DataFrame({"z": [8.0], "y": [8.0], "x": [8.0]}), folder / "TS_01.csv")
        type_into(qtbot, dock.folder, str(folder))
        type_into(qtbot, dock.binning, binning)
        click(qtbot, dock.open_button)
    points = widgets["Particles"].particles_layer
    assert points.data.tolist() == [[8.0, 8.0, 8.0]]  # the second's, not binned
    viewer.layers.selection = {points}
    viewer.layers.save(str(tmp_path / "saved.star"), selected=True, plugin="napari-affinity-vae")
    assert starfile.read(tmp_path / "saved.star")["rlnCoordinateX"].tolist() == [8.0]


def test_a_point_added_with_its_tomogram_closed_is_undone(opened, notifications):
    viewer, widgets, session = opened
    points = widgets["Particles"].particles_layer
    viewer.layers.remove(_project_images(viewer)[0])  # TS_01 closed, its points still there
    points.add(np.array([[10.0, 20.0, 30.0]]))
    assert len(points.data) == 7 and len(session.particles) == 21
    assert "show TS_01 in the Project dock" in notifications[-1].message


def test_points_edited_by_hand_while_the_project_embeds_keep_the_embedding(opened, qtbot):
    """A point added and another deleted while Run embeds: the embedding lands on the particles
    it was made for, the added one waits for the next (it was thrown away, minutes of work on
    a large project, for one click)."""
    _, widgets, session = opened
    embed = widgets["Embed"]
    embed.projection.value = "PCA"
    click(qtbot, embed.run_button)
    points = widgets["Particles"].particles_layer
    points.add(np.array([[10.0, 20.0, 30.0]]))  # while the worker runs
    points.remove([1])
    qtbot.waitUntil(
        lambda: session.clusters is not None and not embed.task.running, timeout=WAIT_MS
    )
    assert len(session.particles) == 21
    added = session.rows_of("TS_01")[-1]
    latent = session.latent
    assert np.isnan(latent[added]).all() and session.clusters[added] == -1
    assert np.isfinite(np.delete(latent, added, axis=0)).all()
    assert np.isfinite(np.delete(session.embedding, added, axis=0)).all()
    assert embed.status.value.startswith("20 of 21 particles")


def test_a_particle_pasted_in_a_project_is_the_projects(opened, qtbot, notifications):
    """Ctrl+C, Ctrl+V on a project's layer adds a particle to the project, on the plane shown."""
    viewer, widgets, session = opened
    points = widgets["Particles"].particles_layer
    viewer.layers.selection.active = points
    points.selected_data = {0}
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.keyClick(canvas, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    viewer.dims.set_point(0, 5 * session.tomogram.voxel_size)
    qtbot.keyClick(canvas, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert _column(widgets["Project"], "particles") == [8, 7, 7]
    added = session.particles.iloc[session.rows_of("TS_01")[-1]]
    assert added["z"] == 5.0 and added[TOMO_NAME] == "TS_01"
    assert session.project.edited
    widgets["Project"].shown.value = "TS_02"  # the same layer shows TS_02's particles now
    viewer.layers.selection.active = points
    qtbot.keyClick(canvas, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert _column(widgets["Project"], "particles") == [8, 7, 7]  # TS_01's are not TS_02's
    assert "the points were copied in TS_01, not TS_02" in messages(notifications)[-1]


def test_reopening_an_embedded_project_asks_before_discarding_its_embedding(opened, qtbot):
    """Reopened with Skip rows ticked, as Embed's warning advises: the embedding went unasked."""
    _, widgets, session = opened
    _embed_by_clicks(qtbot, widgets, session)
    widgets["Project"].skip_unusable.value = True
    asked = answer_next_dialog(QMessageBox.StandardButton.No)
    click(qtbot, widgets["Project"].open_button)
    assert asked == [
        "Opening a project discards the open project's embedding (export them to keep them). Go on?"
    ]
    assert session.latent is not None  # kept
    answer_next_dialog(QMessageBox.StandardButton.Yes)
    click(qtbot, widgets["Project"].open_button)
    assert session.latent is None


def test_a_misspelt_project_file_is_said_before_asking_to_discard_work(
    opened, qtbot, project_folder, notifications, monkeypatch
):
    """A typo in Files asked to discard the hand edits, then said the file does not exist."""
    from napari_affinity_vae.widgets import project

    _, widgets, session = opened
    widgets["Particles"].particles_layer.add(np.array([[10.0, 20.0, 30.0]]))
    asked = []
    monkeypatch.setattr(project, "confirm", lambda *args: asked.append(args[-1]) or False)
    typo = project_folder / "optimisaton_set.star"
    type_into(qtbot, widgets["Project"].files, str(typo))
    click(qtbot, widgets["Project"].open_button)
    assert asked == []
    assert any(f"{typo}: no such file or folder" in m for m in messages(notifications))
    assert len(session.particles) == 22 and session.project.edited  # the edit kept
    type_into(qtbot, widgets["Project"].files, str(project_folder / "optimisation_set.star"))
    click(qtbot, widgets["Project"].open_button)
    assert asked and "added, moved or deleted by hand" in asked[0]


def test_reopening_a_project_asks_before_discarding_hand_edits(opened, qtbot, tmp_path):
    from conftest import write_mrc

    viewer, widgets, session = opened
    widgets["Particles"].particles_layer.add(np.array([[10.0, 20.0, 30.0]]))
    assert len(session.particles) == 22
    asked = answer_next_dialog(QMessageBox.StandardButton.No)
    click(qtbot, widgets["Project"].open_button)
    assert asked and "added, moved or deleted by hand" in asked[0]
    assert len(session.particles) == 22  # kept
    answer_next_dialog(QMessageBox.StandardButton.Yes)
    click(qtbot, widgets["Project"].open_button)
    assert len(session.particles) == 21 and not session.project.edited  # opened anew
    widgets["Particles"].particles_layer.add(np.array([[10.0, 20.0, 30.0]]))
    asked = answer_next_dialog(QMessageBox.StandardButton.No)
    click(qtbot, widgets["Particles"].hand_button)  # picking by hand beside it leaves it
    assert (
        asked
        and "leaves the project and discards its points added, moved or deleted by hand" in asked[0]
    )
    assert session.project is not None and len(session.particles) == 22
    lone = write_mrc(tmp_path / "lone.mrc", np.zeros((20, 30, 40), np.float32))
    type_into(qtbot, widgets["Tomogram"].file, str(lone))
    asked = answer_next_dialog(QMessageBox.StandardButton.No)
    click(qtbot, widgets["Tomogram"].open_button)  # a tomogram of none of the project's
    assert asked and asked[0].startswith("Opening lone.mrc leaves the project")
    assert session.project is not None and len(session.particles) == 22
    assert "lone" not in viewer.layers


def test_class_centres_refuse_a_class_of_particles_added_since_the_embedding(
    opened, qtbot, notifications
):
    """A class made only of points added by hand has no latent to decode: one sentence says
    so, rather than a matrix of NaN that training then diverges on."""
    _, widgets, session = opened
    _embed_by_clicks(qtbot, widgets, session)
    widgets["Particles"].particles_layer.add(np.array([[10.0, 20.0, 30.0], [12.0, 22.0, 32.0]]))
    session.set_labels([1, 2, 3], "alpha")
    session.set_labels([21, 22], "beta")  # the two added by hand
    train = widgets["Train"]
    train.labels_from.value = "label"
    click(qtbot, train.centres_button)
    qtbot.waitUntil(lambda: not train.task.running, timeout=WAIT_MS)
    assert any("No particle of beta is embedded" in m for m in messages(notifications))
    assert train.affinity.matrix().notna().all(axis=None)


def test_training_leaves_out_the_labels_of_a_tomogram_that_cannot_be_opened(
    make_napari_viewer, qtbot, tmp_path, project_folder
):
    """TS_02's file is broken: its labelled particles cannot be cut, the others train."""
    viewer = make_napari_viewer()
    widgets, session, _ = open_with_ts_02_broken(viewer, qtbot, tmp_path, project_folder)
    train = widgets["Train"]
    train.labels_from.value = "class_name"
    left = int((session.particles["tomo_name"] == "TS_02").sum())
    left_out = "labelled in tomograms that cannot be opened (or lack the map chosen) left out"
    assert f"{left} particles {left_out}" in train.classes.value
    train.epochs.value = 1
    click(qtbot, train.train_button)
    qtbot.waitUntil(lambda: not train.task.running and bool(train.history), timeout=120_000)
    assert not train.status.value.startswith("failed"), train.status.value
    assert "TS_02" not in train.status.value
    trained = len(session.particles) - left
    said = train.trained[1].training["data"]  # what the card says it was trained on
    assert said.startswith(f"{trained} particles labelled by their class_name (")
    assert "from project " in said and "(3 tomograms, " in said


def test_a_project_opened_again_after_a_lone_tomogram_is_shown_over_it(
    opened, qtbot, tmp_path, project_folder
):
    """Opening a tomogram alone leaves the project; opening the project again shows its
    tomogram above the lone one (which would hide it), its particles above both."""
    from conftest import write_mrc

    viewer, widgets, session = opened
    lone = write_mrc(tmp_path / "lone.mrc", np.zeros((32, 64, 64), np.float32))
    type_into(qtbot, widgets["Tomogram"].file, str(lone))
    click(qtbot, widgets["Tomogram"].open_button)
    assert session.project is None
    click(qtbot, widgets["Project"].open_button)
    assert session.project is not None and session.tomogram.name == "TS_01"
    names = [x.name for x in viewer.layers]
    points = widgets["Particles"].particles_layer
    assert names.index("lone") < names.index("TS_01") < names.index(points.name)


def _points_of(viewer, name: str) -> list[Points]:
    """The particles layers of tomogram ``name`` (not their highlights)."""
    return [
        x
        for x in viewer.layers
        if isinstance(x, Points) and x.name.startswith(f"{name} ") and "(selected)" not in x.name
    ]


def test_a_project_opened_again_after_leaving_it_shows_its_particles_once(opened, qtbot, tmp_path):
    """Left and opened again, twice: the left project's points stayed beside the new ones, all
    drawn, and an edit of the copy on top changed nothing of the project."""
    from conftest import write_mrc

    viewer, widgets, session = opened
    lone = write_mrc(tmp_path / "lone.mrc", np.zeros((32, 64, 64), np.float32))
    for _ in range(2):
        type_into(qtbot, widgets["Tomogram"].file, str(lone))
        click(qtbot, widgets["Tomogram"].open_button)
        click(qtbot, widgets["Project"].open_button)
    (points,) = _points_of(viewer, "TS_01")
    assert points is widgets["Particles"].particles_layer and len(points.data) == 7
    total = len(session.particles)
    points.remove([0])  # by hand: the project's particles
    assert session.project.edited and len(session.particles) == total - 1


def test_a_lone_tomogram_named_as_a_project_tomogram_does_not_take_its_particles(
    opened, qtbot, tmp_path
):
    """Another file called TS_01.mrc, opened alone: the project's TS_01 points were drawn over
    it and explored, though the session held none of them (Embed found nothing to embed)."""
    from conftest import write_mrc

    _, widgets, session = opened
    points = widgets["Particles"].particles_layer
    (tmp_path / "elsewhere").mkdir()
    lone = write_mrc(tmp_path / "elsewhere" / "TS_01.mrc", np.zeros((40, 96, 112), np.float32))
    type_into(qtbot, widgets["Tomogram"].file, str(lone))
    click(qtbot, widgets["Tomogram"].open_button)
    assert session.project is None and session.tomogram.path == lone
    assert widgets["Particles"].particles_layer is None and not points.visible
    assert widgets["Particles"].count.value == "0"


def test_particles_imported_into_a_project_are_drawn_without_the_project_s(opened, qtbot, tmp_path):
    """Importing picks leaves the project: its points stayed drawn beside the picks, 9 points
    on screen where Export writes the 2 picks."""
    viewer, widgets, session = opened
    points = widgets["Particles"].particles_layer
    picks = tmp_path / "TS_01.coords"
    picks.write_text("10 20 5\n30 40 8\n")  # TomoTwin: x y z voxels
    type_into(qtbot, widgets["Particles"].file, str(picks))
    click(qtbot, widgets["Particles"].import_button)
    assert session.project is None and len(session.particles) == 2
    shown = [x for x in _points_of(viewer, "TS_01") if x.visible]
    assert shown == [widgets["Particles"].particles_layer] and not points.visible


def test_showing_another_tomogram_of_the_same_size_keeps_the_view(opened):
    """Zoomed in on TS_01, the user shows TS_02 (the same size) to compare the same place."""
    viewer, widgets, _ = opened
    viewer.camera.zoom *= 4
    viewer.camera.center = (0.0, 100.0, 100.0)
    view = (viewer.camera.zoom, *viewer.camera.center)
    widgets["Project"].shown.value = "TS_02"
    assert [x.name for x in _project_images(viewer)] == ["TS_02"]
    assert (viewer.camera.zoom, *viewer.camera.center) == pytest.approx(view)


def test_a_left_project_s_particles_are_not_drawn_over_a_lone_tomogram(opened, qtbot, tmp_path):
    """They looked like the lone tomogram's own picks; chosen again, TS_01 shows them."""
    from conftest import write_mrc

    viewer, widgets, session = opened
    points = widgets["Particles"].particles_layer
    lone = write_mrc(tmp_path / "lone.mrc", np.zeros((32, 64, 64), np.float32))
    type_into(qtbot, widgets["Tomogram"].file, str(lone))
    click(qtbot, widgets["Tomogram"].open_button)
    assert session.project is None and len(session.particles) == 0
    left = (viewer.layers["TS_01"], points)
    assert [x.visible for x in left] == [False, False] and viewer.layers["lone"].visible
    widgets["Tomogram"].layer.value = viewer.layers["TS_01"]
    assert [x.visible for x in left] == [True, True] and not viewer.layers["lone"].visible
    assert len(session.particles) == len(points.data) == 7  # now TS_01's own particles


def test_a_particle_of_another_tomogram_is_decoded_beside_the_one_shown_and_says_why(opened, qtbot):
    """ "At the particle" cannot place a volume at a particle of TS_02 while TS_01 is shown: it
    is shown beside TS_01, and the status said nothing of why."""
    viewer, widgets, session = opened
    _embed_by_clicks(qtbot, widgets, session)
    assert session.tomogram.name == "TS_01"
    of_ts_02 = int(np.flatnonzero(session.particles[TOMO_NAME] == "TS_02")[0])
    session.select([of_ts_02])
    decode = widgets["Decode"]
    decode.source.value, decode.placement.value = "Selected particle", "At the particle"
    click(qtbot, decode.decode_button)
    qtbot.waitUntil(lambda: "decoded" in viewer.layers, timeout=WAIT_MS)
    assert decode.status.value.endswith("; beside the tomogram: its particle is in tomogram TS_02")
    assert viewer.layers["decoded"].translate[-1] > 95 * session.tomogram.voxel_size


def test_decoding_a_point_added_since_the_embedding_says_to_embed_again(
    opened, qtbot, notifications
):
    viewer, widgets, session = opened
    _embed_by_clicks(qtbot, widgets, session)
    points = widgets["Particles"].particles_layer
    points.add(np.array([[10.0, 20.0, 30.0]]))  # a point clicked in after the embedding
    session.select([len(session.particles) - 1])
    decode = widgets["Decode"]
    for source in ("Selected particle", "Selection mean"):
        decode.source.value = source
        click(qtbot, decode.decode_button)
        assert messages(notifications)[-1].startswith(
            "None of the 1 selected particles is embedded (added or moved by hand"
        )
    assert "decoded" not in viewer.layers


def test_a_project_opened_skipping_rows_outside_embeds_the_rest_of_their_tomogram(
    make_napari_viewer, qtbot, tmp_path, project_folder, notifications
):
    """One pick of TS_02 beyond its top keeps TS_02 from being embedded, and the warning says
    how to embed the rest; ticked, the Project dock leaves that pick out and embeds the rest."""
    import shutil

    folder = tmp_path / "project"
    shutil.copytree(project_folder, folder)
    star = starfile.read(folder / "particles.star")
    particles = star["particles"]
    first = int(np.flatnonzero(particles["rlnTomoName"] == "TS_02")[0])
    particles.loc[first, "rlnCenteredCoordinateZAngst"] = 10_000.0  # 1000 voxels above
    starfile.write(star, folder / "particles.star")
    in_ts02 = int((particles["rlnTomoName"] == "TS_02").sum())
    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    session, dock = session_for(viewer), widgets["Project"]
    type_into(qtbot, dock.files, str(folder / "optimisation_set.star"))
    click(qtbot, dock.open_button)
    _embed_by_clicks(qtbot, widgets, session)
    [warned] = [m for m in messages(notifications) if "TS_02 was not embedded" in m]
    assert f"1 of {in_ts02} particles lie outside the tomogram" in warned
    assert "tick 'Skip rows with NaN or outside the tomogram' in the Project dock" in warned
    assert not np.isfinite(session.latent[session.particles[TOMO_NAME] == "TS_02"]).any()

    notifications.clear()
    qtbot.mouseClick(dock.skip_unusable.native, Qt.MouseButton.LeftButton)
    assert dock.skip_unusable.value
    asked = answer_next_dialog(QMessageBox.StandardButton.Yes)  # the embedding goes
    click(qtbot, dock.open_button)
    assert asked and "discards the open project's embedding" in asked[0]
    [skipped] = messages(notifications)
    assert f"TS_02: 1 of {in_ts02} particles lie outside" in skipped
    assert skipped.endswith("they were left out")
    assert _column(dock, "particles")[1] == in_ts02 - 1
    _embed_by_clicks(qtbot, widgets, session)
    assert not [m for m in messages(notifications) if "not embedded" in m]
    assert np.isfinite(session.latent).all() and len(session.particles) == len(particles) - 1


def test_a_project_in_a_folder_whose_name_holds_a_comma_opens(
    make_napari_viewer, qtbot, tmp_path, project_folder
):
    """The Files field splits at ", ": my project, v2/optimisation_set.star was read as two
    files, neither of them there."""
    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    folder = tmp_path / "my project, v2"
    folder.mkdir()
    star = _broken_copy(project_folder, folder, ())
    dock = widgets["Project"]
    type_into(qtbot, dock.files, str(star))
    click(qtbot, dock.open_button)
    project = session_for(viewer).project
    assert project is not None and sorted(project.tomograms) == ["TS_01", "TS_02", "TS_03"]


def test_points_selected_in_the_viewer_stay_selected_when_another_tomogram_is_shown(opened):
    """The selection of TS_01's points, made with napari's select tool, was wiped across the
    project when TS_02 was shown; one made in the scatter stayed."""
    _, widgets, session = opened
    points = widgets["Particles"].particles_layer
    points.selected_data = {0, 1}  # as napari's select tool sets it
    selected = session.selection.copy()
    assert len(selected) == 2
    widgets["Project"].shown.value = "TS_02"
    assert session.tomogram.name == "TS_02"
    np.testing.assert_array_equal(session.selection, selected)
    assert _column(widgets["Project"], "selected")[:2] == [2, 0]


def test_show_follows_a_project_tomogram_opened_in_the_tomogram_dock(
    opened, qtbot, project_folder, tmp_path
):
    """Show kept TS_01 while TS_02 was explored: choosing TS_01 again then did nothing."""
    viewer, widgets, session = opened
    link = tmp_path / "linked"  # a link to the folder: the same file, by another path
    link.symlink_to(project_folder / "tomograms")
    type_into(qtbot, widgets["Tomogram"].file, str(link / "TS_02.mrc"))
    click(qtbot, widgets["Tomogram"].open_button)
    assert session.project is not None, "taken for none of the project's tomograms"
    assert session.tomogram.name == "TS_02" and widgets["Project"].shown.value == "TS_02"
    widgets["Project"].shown.value = "TS_01"
    assert session.tomogram.name == "TS_01" and viewer.layers["TS_01"].visible


def test_choosing_a_lone_tomogram_in_the_box_asks_before_leaving_an_embedded_project(
    opened, qtbot, tmp_path
):
    """Opening it by name asked; choosing its layer in the Tomogram box left the project and
    its embedding unasked."""
    from conftest import write_mrc

    viewer, widgets, session = opened
    lone = write_mrc(tmp_path / "lone.mrc", np.zeros((32, 64, 64), np.float32))
    type_into(qtbot, widgets["Tomogram"].file, str(lone))
    click(qtbot, widgets["Tomogram"].open_button)  # nothing embedded yet: left unasked
    click(qtbot, widgets["Project"].open_button)
    _embed_by_clicks(qtbot, widgets, session)
    asked = answer_next_dialog(QMessageBox.StandardButton.No)
    widgets["Tomogram"].layer.value = viewer.layers["lone"]
    assert asked and asked[0].startswith("Showing lone.mrc leaves the project")
    assert session.project is not None and session.latent is not None
    assert widgets["Tomogram"].layer.value is viewer.layers["TS_01"]
    answer_next_dialog(QMessageBox.StandardButton.Yes)
    widgets["Tomogram"].layer.value = viewer.layers["lone"]
    assert session.project is None and session.tomogram.name == "lone"
    click(qtbot, widgets["Project"].open_button)  # again, embedded; then another opened by name
    _embed_by_clicks(qtbot, widgets, session)
    other = write_mrc(tmp_path / "other.mrc", np.zeros((32, 64, 64), np.float32))
    type_into(qtbot, widgets["Tomogram"].file, str(other))
    asked = answer_next_dialog(QMessageBox.StandardButton.Yes)
    click(qtbot, widgets["Tomogram"].open_button)  # asked once, not again as it is shown
    assert len(asked) == 1 and session.project is None and session.tomogram.name == "other"


def test_the_map_chosen_in_the_map_box_is_viewed_and_embedded(
    make_napari_viewer, qtbot, tmp_path, relion5, notifications
):
    """RELION 5's denoised map is viewed and embedded first; choosing half1 in the Map box
    views it and Embed cuts every tomogram's boxes from it (they were cut from the denoised
    map whatever was viewed). A tomogram without the map chosen says so when shown."""
    import mrcfile

    root = relion_layout(tmp_path, relion5)
    for half1 in root.glob("Tomograms/job007/tomograms/*_half1.mrc"):
        with mrcfile.open(half1, mode="r+") as mrc:
            mrc.data[:] = -mrc.data  # the denoised and half2 maps are copies of one map
    (root / "Tomograms/job007/tomograms/rec_TS_03_half2.mrc").unlink()
    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    session, dock = session_for(viewer), widgets["Project"]
    type_into(qtbot, dock.files, str(root / "Picks/job010/optimisation_set.star"))
    click(qtbot, dock.open_button)
    assert dock.kind.choices == ("denoised", "half1", "half2")
    voxel = (20, 40, 50)
    denoised = float(_project_images(viewer)[0].data[voxel])
    _embed_by_clicks(qtbot, widgets, session)
    latents, embedded = {"denoised": session.latent.copy()}, "denoised"
    for kind in ("half1", "half2"):
        dock.kind.value = kind
        said = f"The embedding was cut from the {embedded} maps: embed again to cut boxes from "
        assert messages(notifications)[-1] == f"{said}the {kind} maps"
        shown = float(_project_images(viewer)[0].data[voxel])
        assert shown == pytest.approx(-denoised if kind == "half1" else denoised)
        _embed_by_clicks(qtbot, widgets, session)
        latents[kind], embedded = session.latent.copy(), kind
    assert any(
        "Tomogram TS_03 was not embedded: its half2 map cannot" in m
        for m in messages(notifications)
    )
    assert np.abs(latents["half1"] - latents["denoised"]).max() > 0.1
    ts_03 = session.particles[TOMO_NAME].to_numpy() == "TS_03"
    np.testing.assert_allclose(latents["half2"][~ts_03], latents["denoised"][~ts_03], atol=1e-5)
    assert np.isnan(latents["half2"][ts_03]).all()
    said = len(notifications)
    dock.shown.value = "TS_02"  # the map chosen stays chosen
    assert dock.kind.value == "half2" and session.project.map == "half2"
    assert len(notifications) == said  # and what was embedded is not said again
    dock.shown.value = "TS_03"  # without it: shown in its first map, and said
    assert dock.kind.value == "denoised" and session.project.map == "half2"
    assert messages(notifications)[-1].startswith("TS_03: its half2 map cannot be read (")
    dock.kind.native.activated.emit(dock.kind.native.currentIndex())  # denoised chosen again
    assert session.project.map == "denoised"


def test_the_train_dock_counts_the_labels_of_a_tomogram_without_the_map_chosen(
    make_napari_viewer, qtbot, tmp_path, relion5
):
    """They are left out of training: the Train dock said so only once the particles changed."""
    root = relion_layout(tmp_path, relion5)
    (root / "Tomograms/job007/tomograms/rec_TS_03_half2.mrc").unlink()
    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    session, dock, train = session_for(viewer), widgets["Project"], widgets["Train"]
    type_into(qtbot, dock.files, str(root / "Picks/job010/optimisation_set.star"))
    click(qtbot, dock.open_button)
    session.set_labels(range(len(session.particles)), "alpha")
    train.labels_from.value = "label"
    left_out = "labelled in tomograms that cannot be opened (or lack the map chosen) left out"
    assert left_out not in train.classes.value
    dock.kind.value = "half2"
    ts_03 = int((session.particles[TOMO_NAME] == "TS_03").sum())
    assert f"{ts_03} particles {left_out}" in train.classes.value
    dock.kind.value = "denoised"
    assert left_out not in train.classes.value


def test_the_last_point_of_a_project_tomogram_deleted_by_hand_leaves_the_project(opened, qtbot):
    """Deleting the last point (a stray click's, which napari leaves selected) raised an
    IndexError: the point went from the layer and stayed in the project."""
    _, widgets, session = opened
    _embed_by_clicks(qtbot, widgets, session)
    points = widgets["Particles"].particles_layer
    points.selected_data = {len(points.data) - 1}
    points.remove_selected()  # as the Delete key does
    assert len(session.particles) == 20 and len(points.data) == 6
    assert _column(widgets["Project"], "particles") == [6, 7, 7]
    assert np.isfinite(session.embedding).all()  # the others keep their places
