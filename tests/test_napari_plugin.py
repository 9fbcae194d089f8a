"""The plugin inside napari: manifest, Plugins menu, readers, writer and the Tomogram widget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile

from conftest import write_mrc
from napari_affinity_vae.demo import add_dock_widgets
from napari_affinity_vae.io.particles import read_particles, write_particles
from napari_affinity_vae.widgets.viewer_session import session_for

PLUGIN = "napari-affinity-vae"
ROOT = Path(__file__).resolve().parents[1]


def test_npe2_loads_the_root_manifest():
    import importlib.resources

    import npe2

    from_root = npe2.PluginManifest.from_file(ROOT / "napari.yaml")
    manager = npe2.PluginManager()
    manager.discover(include_npe1=False)
    installed = manager.get_manifest(PLUGIN)
    assert installed.display_name == from_root.display_name == "Affinity-VAE"
    assert installed.contributions == from_root.contributions
    packaged = importlib.resources.files("napari_affinity_vae") / "napari.yaml"
    assert Path(str(packaged)).resolve() == (ROOT / "napari.yaml").resolve()
    npe2.PluginManifest.validate(from_root)  # raises on an invalid manifest


def _plugin_menu_titles() -> list[str]:
    from napari._app_model import get_app_model

    app = get_app_model()
    titles = []
    for item in app.menus.get_menu("napari/plugins"):
        if hasattr(item, "submenu"):
            titles += [
                f"{item.title} > {sub.command.title}" for sub in app.menus.get_menu(item.submenu)
            ]
        else:
            titles.append(item.command.title)
    return titles


def test_widget_is_in_plugins_menu_and_docks(make_napari_viewer):
    viewer = make_napari_viewer()
    from napari_affinity_vae.demo import DOCK_WIDGETS

    titles = _plugin_menu_titles()
    for name in DOCK_WIDGETS:
        assert any(t.endswith(f"> {name}") and "Affinity-VAE" in t for t in titles), name
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Tomogram")
    assert dock.isVisible() or dock.parent() is not None
    assert type(widget).__name__ == "TomogramWidget"


def test_open_mrc_through_viewer(make_napari_viewer, tomogram_file):
    viewer = make_napari_viewer()
    [layer] = viewer.open(tomogram_file, plugin=PLUGIN)
    assert layer.data.shape == (20, 30, 40)
    assert isinstance(layer.data, np.memmap)
    np.testing.assert_allclose(layer.scale, [7.5, 7.5, 7.5])
    assert layer.metadata["voxel_size"] == pytest.approx(7.5)
    assert layer.metadata["path"] == str(tomogram_file)
    low, high = layer.contrast_limits
    assert -4 < low < -1 and 1 < high < 4


def test_open_star_scaled_to_the_open_tomogram(make_napari_viewer, tomogram_file, particles):
    viewer = make_napari_viewer()
    viewer.open(tomogram_file, plugin=PLUGIN)
    star = write_particles(
        particles.assign(tomo_name="tomo_01"), tomogram_file.with_suffix(".star")
    )
    [points] = viewer.open(star, plugin=PLUGIN)
    np.testing.assert_allclose(points.data, particles[["z", "y", "x"]].to_numpy(), atol=1e-5)
    np.testing.assert_allclose(points.scale, [7.5, 7.5, 7.5])
    assert list(points.features["score"]) == list(particles["score"])


def test_a_relion4_star_in_unbinned_pixels_opens_on_a_binned_tomogram(
    make_napari_viewer, tomogram_file
):
    """RELION 4 tomography counts coordinates in tilt-series pixels (data_optics): on the
    7.5 A tomogram, 1.875 A pixels are a quarter voxel each."""
    viewer = make_napari_viewer()
    viewer.open(tomogram_file, plugin=PLUGIN)
    star = tomogram_file.with_name("particles.star")
    optics = {"rlnOpticsGroup": [1], "rlnTomoTiltSeriesPixelSize": [1.875]}
    block = {
        "rlnTomoName": ["tomo_01", "tomo_01"],
        "rlnCoordinateX": [12.0, 156.0],
        "rlnCoordinateY": [8.0, 116.0],
        "rlnCoordinateZ": [4.0, 76.0],
        "rlnOpticsGroup": [1, 1],
    }
    starfile.write({"optics": pd.DataFrame(optics), "particles": pd.DataFrame(block)}, star)
    [points] = viewer.open(star, plugin=PLUGIN)
    np.testing.assert_allclose(points.data, [[1, 2, 3], [19, 29, 39]])
    saved = star.with_name("saved.star")  # File > Save Selected Layers: as RELION reads them
    viewer.layers.selection = {points}
    viewer.layers.save(str(saved), selected=True, plugin=PLUGIN)
    back = starfile.read(saved)
    assert back["optics"].to_dict(orient="list") == optics
    np.testing.assert_allclose(back["particles"]["rlnCoordinateX"], block["rlnCoordinateX"])


def test_open_star_with_several_tomograms_picks_the_open_one(
    make_napari_viewer, tomogram_file, particles
):
    viewer = make_napari_viewer()
    viewer.open(tomogram_file, plugin=PLUGIN)
    both = pd.concat(
        [particles.assign(tomo_name="other"), particles.head(2).assign(tomo_name="tomo_01")]
    )
    star = write_particles(both.reset_index(drop=True), tomogram_file.parent / "both.star")
    [points] = viewer.open(star, plugin=PLUGIN)
    assert len(points.data) == 2 and points.metadata["tomo_name"] == "tomo_01"


def test_a_star_naming_tomograms_as_warp_does_gives_the_open_one_s(
    make_napari_viewer, tomogram_file, particles
):
    """TS_01.tomostar was not taken for the open TS_01: both tomograms' layers lay over it."""
    viewer = make_napari_viewer()
    viewer.open(tomogram_file, plugin=PLUGIN)  # tomo_01
    both = pd.concat(
        [
            particles.assign(tomo_name="tomo_02.tomostar"),
            particles.head(2).assign(tomo_name="tomo_01.tomostar"),
        ]
    )
    star = write_particles(both.reset_index(drop=True), tomogram_file.parent / "warp.star")
    [points] = viewer.open(star, plugin=PLUGIN)
    assert len(points.data) == 2 and points.metadata["tomo_name"] == "tomo_01"
    assert points.features["tomo_name"].tolist() == ["tomo_01.tomostar"] * 2  # written back so


def test_particles_of_another_tomogram_are_placed_on_the_open_one_with_a_warning(
    make_napari_viewer, tomogram_file, particles
):
    viewer = make_napari_viewer()
    viewer.open(tomogram_file, plugin=PLUGIN)
    star = write_particles(particles.assign(tomo_name="TS_02"), tomogram_file.parent / "p.star")
    with pytest.warns(UserWarning, match="its particles are of TS_02, not of the open tomogram"):
        [points] = viewer.open(star, plugin=PLUGIN)
    assert len(points.data) == 5


def test_particles_dropped_with_their_tomogram_lie_on_it(
    make_napari_viewer, tomogram_file, particles
):
    """Read first, before any tomogram was open, they were drawn at 1 Å a voxel: 7.5 x off."""
    viewer = make_napari_viewer()  # no dock
    star = write_particles(particles.assign(tomo_name="tomo_01"), tomogram_file.parent / "p.star")
    points, image = viewer.open([star, tomogram_file], plugin=PLUGIN)
    np.testing.assert_allclose(points.scale, image.scale)
    np.testing.assert_allclose(points.scale, [7.5, 7.5, 7.5])


def test_open_star_takes_the_newest_tomogram_still_open(
    make_napari_viewer, tomogram_file, particles
):
    viewer = make_napari_viewer()  # napari's File menu alone, no dock
    other = write_mrc(tomogram_file.parent / "other.mrc", np.zeros((20, 30, 40), np.float32))
    both = pd.concat(
        [particles.assign(tomo_name="other"), particles.head(2).assign(tomo_name="tomo_01")]
    )
    star = write_particles(both.reset_index(drop=True), tomogram_file.parent / "both.star")
    viewer.open(tomogram_file, plugin=PLUGIN)
    viewer.open(star, plugin=PLUGIN)
    viewer.open(other, plugin=PLUGIN)
    [points] = viewer.open(star, plugin=PLUGIN)
    assert points.metadata["tomo_name"] == "other" and len(points.data) == 5
    viewer.layers.clear()
    viewer.open(tomogram_file, plugin=PLUGIN)  # the first again, alone
    [points] = viewer.open(star, plugin=PLUGIN)
    assert points.metadata["tomo_name"] == "tomo_01" and len(points.data) == 2


def test_a_particle_file_opened_before_its_tomogram_is_taken_up_when_it_opens(
    make_napari_viewer, tomogram_file, particles
):
    viewer = make_napari_viewer()
    widgets, _ = add_dock_widgets(viewer)
    star = write_particles(particles.assign(tomo_name="tomo_01"), tomogram_file.parent / "p.star")
    [points] = viewer.open(star, plugin=PLUGIN)  # dropped first: no tomogram to scale by
    viewer.open(tomogram_file, plugin=PLUGIN)
    assert widgets["Particles"].particles_layer is points
    np.testing.assert_allclose(points.scale, [7.5, 7.5, 7.5])  # on the tomogram's voxels
    assert len(session_for(viewer).particles) == 5


def test_save_points_layer_to_star_and_csv(make_napari_viewer, tmp_path, particles):
    viewer = make_napari_viewer()
    features = particles[["score"]].assign(x=-1.0)  # a stale position among the features
    features["tomogram_missing"] = False  # a project's bookkeeping, no particle's
    viewer.add_points(
        particles[["z", "y", "x"]].to_numpy(),
        scale=(4.0, 4.0, 4.0),
        features=features,
        name="picks",
    )
    for suffix in (".star", ".csv", ".tbl", ".coords", ".mod"):
        path = tmp_path / f"saved{suffix}"
        viewer.layers.save(str(path), selected=False, plugin=PLUGIN)
        back = read_particles(path)
        np.testing.assert_allclose(back[["z", "y", "x"]], particles[["z", "y", "x"]], atol=1e-2)
        assert "x.1" not in back and (back["x"] > 0).all()  # one x: the points'
        assert "tomogram_missing" not in back
        if suffix in (".star", ".csv"):
            assert list(back["score"]) == list(particles["score"])


@pytest.mark.parametrize("plugin", [PLUGIN, None])
def test_a_layer_that_cannot_be_saved_says_why(make_napari_viewer, tmp_path, plugin):
    """napari took the writer's ValueError for 'not my format': File > Save said only that no
    writer was found, never which label a STAR file cannot hold."""
    from napari_affinity_vae.errors import SaveError

    viewer = make_napari_viewer()
    features = pd.DataFrame({"label": ["it's"]})
    viewer.add_points(np.array([[1.0, 2.0, 3.0]]), features=features, name="quoted")
    path = tmp_path / "quoted.star"
    with pytest.raises(SaveError, match=r"quoted.star: label \"it's\" holds a quote"):
        viewer.layers.save(str(path), selected=False, plugin=plugin)
    assert not path.exists()


def test_points_that_are_no_particles_are_saved_as_napari_saves_them(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_points(np.array([[1.0, 2.0], [3.0, 4.0]]), name="flat")
    [written] = viewer.layers.save(str(tmp_path / "flat.csv"), selected=False)  # napari's choice
    np.testing.assert_allclose(viewer.open(written, plugin="napari")[0].data, [[1, 2], [3, 4]])


def test_widget_opens_file_and_sets_views(make_napari_viewer, tomogram_file):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Tomogram")
    widget.file.value = tomogram_file
    widget.open_button.native.click()
    layer = viewer.layers[-1]
    assert widget.tomogram_layer == layer  # plugin widgets see layers through a proxy
    assert widget.info.value == "20 x 30 x 40 voxels (z, y, x)"
    assert widget.voxel_size.value == pytest.approx(7.5)
    assert widget.voxel_size.enabled and "header" in widget.voxel_size.tooltip  # correctable
    widget.slab.value = 75.0  # Angstrom: ten 7.5 A planes averaged
    assert viewer.dims.thickness[0] == pytest.approx(75.0)
    assert layer.projection_mode == "mean"
    viewer.dims.roll()  # napari's button: looking along another axis, the slab follows
    assert viewer.dims.not_displayed[0] != 0
    assert viewer.dims.thickness[viewer.dims.not_displayed[0]] == pytest.approx(75.0)
    widget.rendering.value = "Volume"
    assert viewer.dims.ndisplay == 3 and not widget.slab.enabled
    widget.rendering.value = "Plane"
    assert viewer.dims.ndisplay == 2


@pytest.mark.parametrize("header", [0.0, float("inf")])
def test_a_dropped_mrc_without_voxel_size_opens_and_its_size_can_be_set(
    make_napari_viewer, tmp_path, header
):
    """Dropped on napari, it opens at 1 A/voxel with a warning (the Tomogram widget's Open asks
    for the voxel size instead: test_clicks). A header of infinite voxels (a broken cell) was
    taken as a size: the layer's infinite scale crashed napari's renderer."""
    data = np.zeros((4, 5, 6), np.float32)
    path = write_mrc(tmp_path / "nosize.mrc", data, voxel_size=header)
    viewer = make_napari_viewer()
    with pytest.warns(UserWarning, match="no voxel size; the layer uses 1 A/voxel"):
        [layer] = viewer.open(path, plugin=PLUGIN)
    np.testing.assert_allclose(layer.scale, [1.0] * 3)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Tomogram")
    assert widget.tomogram_layer == layer
    assert widget.voxel_size.enabled and widget.voxel_size.value == 0
    widget.voxel_size.value = 12.5
    np.testing.assert_allclose(layer.scale, [12.5] * 3)
    assert layer.metadata["voxel_size"] == 12.5


def test_widget_reports_bad_file_as_notification(make_napari_viewer, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr("napari_affinity_vae.widgets.notify.show_error", shown.append)
    bad = tmp_path / "broken.mrc"
    bad.write_bytes(b"\0" * 50)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Tomogram")
    widget.file.value = bad
    widget.open_button.native.click()
    assert len(shown) == 1 and "broken.mrc" in shown[0] and "header" in shown[0]
    assert len(viewer.layers) == 0
    widget.file.value = write_mrc(tmp_path / "fine.mrc", np.ones((3, 4, 5), np.float32))
    widget.open_button.native.click()
    assert len(viewer.layers) == 1  # napari carries on


def test_widget_lists_image_layers_already_open(make_napari_viewer, tomogram_file):
    viewer = make_napari_viewer()
    viewer.open(tomogram_file, plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Tomogram")
    assert widget.tomogram_layer == viewer.layers[0]
    viewer.layers.clear()
    assert widget.tomogram_layer is None and widget.info.value == "no tomogram"


def test_sample_tomogram_from_file_open_sample(make_napari_viewer):
    from napari._app_model import get_app_model

    viewer = make_napari_viewer()
    samples = get_app_model().menus.get_menu("napari/file/samples")
    titles = [getattr(getattr(item, "command", None), "title", "") for item in samples]
    assert any("Simulated tomogram" in t and "Affinity-VAE" in t for t in titles)
    viewer.open_sample(PLUGIN, "simulated_tomogram")
    image, truth = viewer.layers
    assert image.data.shape == (200, 400, 400)
    np.testing.assert_allclose(image.scale, [10.0] * 3)
    assert image.metadata["voxel_size"] == 10.0
    assert not truth.visible and len(truth.data) == 300
    classes = truth.features["class_name"]
    assert classes.nunique() >= 8
    colours = {tuple(c) for c in truth.border_color[classes.to_numpy() == classes.iloc[0]]}
    assert len(colours) == 1  # one colour per class ...
    assert len({tuple(c) for c in truth.border_color}) == classes.nunique()  # ... and distinct
