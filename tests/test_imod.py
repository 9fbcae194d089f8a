"""IMOD models (.mod): points picked in 3dmod open on their voxels, and particles exported as a
model open in 3dmod where they are."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from imodmodel.models import Contour, ImodModel, Object

from conftest import write_mrc
from napari_affinity_vae.errors import ParticleFileError
from napari_affinity_vae.io.particles import read_particles, write_particles
from test_clicks import click, open_and_import, three_picks, type_into

COORDS = ["z", "y", "x"]


def _model_as_3dmod_saves_it(path, objects: list[list[np.ndarray]], size=(64, 64, 40)):
    """A model of scattered points (x, y, z per row), an object per list, a contour per array,
    made on an image of ``size`` (x, y, z)."""
    model = ImodModel()
    for contours in objects:
        model.objects.append(Object(contours=[Contour(points=c) for c in contours]))
        model.objects[-1].header.flags.scattered = True
        model.objects[-1].update_sizes()
    model.update_sizes()
    model.header.xmax, model.header.ymax, model.header.zmax = size
    model.to_file(path)
    return path


def test_points_clicked_in_3dmod_land_on_their_voxels(tmp_path):
    """3dmod puts the centre of pixel (i, j) at x = i + 0.5, y = j + 0.5 and section k at z = k:
    a point clicked on voxel (z 7, y 20, x 10) is model point (10.5, 20.5, 7)."""
    clicked = np.array([[10.5, 20.5, 7.0], [30.5, 5.5, 0.0]])
    other = np.array([[1.5, 2.5, 3.0]])
    path = _model_as_3dmod_saves_it(tmp_path / "TS_01.mod", [[clicked], [], [other[:0], other]])
    particles = read_particles(path, voxel_size=10.0, tomogram_shape=(40, 64, 64))
    assert particles[COORDS].to_numpy().tolist() == [[7, 20, 10], [0, 5, 30], [3, 2, 1]]
    assert particles["imod_object"].tolist() == [1, 1, 3]  # as 3dmod numbers them
    assert particles["imod_contour"].tolist() == [1, 1, 2]


def test_a_model_round_trips_with_its_objects_and_contours(tmp_path):
    table = pd.DataFrame({"z": [0.0, 3.25, 39.0], "y": [1.0, 2.0, 63.0], "x": [2.0, 3.5, 0.0]})
    table["imod_object"] = [1, 3, 3]
    table["imod_contour"] = [1, 1, 2]
    path = write_particles(table, tmp_path / "p.mod", voxel_size=10.0, tomogram_shape=(40, 64, 64))
    model = ImodModel.from_file(path)
    assert (model.header.xmax, model.header.ymax, model.header.zmax) == (64, 64, 40)
    assert model.header.flags.z_coordinates_start_from_negative_half  # IMOD's own convention
    assert [len(o.contours) for o in model.objects] == [1, 0, 2]
    assert np.asarray(model.objects[2].contours[1].points).tolist() == [[0.5, 63.5, 39.0]]
    back = read_particles(path, voxel_size=10.0, tomogram_shape=(40, 64, 64))
    pd.testing.assert_frame_equal(back[table.columns], table, check_dtype=False)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_zero_one_and_two_particles_round_trip(tmp_path, n):
    table = pd.DataFrame({"z": [5.0, 6.0][:n], "y": [7.0, 8.0][:n], "x": [9.0, 10.0][:n]})
    back = read_particles(write_particles(table, tmp_path / "p.mod"))
    assert back[COORDS].to_numpy().tolist() == table[COORDS].to_numpy().tolist()


def test_a_model_made_on_a_binned_tomogram_says_so_and_a_binning_places_it(tmp_path):
    path = _model_as_3dmod_saves_it(
        tmp_path / "bin4.mod", [[np.array([[10.5, 8.5, 5.0]])]], (16, 16, 10)
    )
    with pytest.warns(UserWarning, match=r"made on an image of 16 x 16 x 10 voxels .*binning"):
        read_particles(path, voxel_size=10.0, tomogram_shape=(40, 64, 64))
    binned = read_particles(path, voxel_size=10.0, tomogram_shape=(40, 64, 64), pixel_size=40.0)
    assert binned[COORDS].to_numpy().tolist() == [[20, 32, 40]]


def test_a_damaged_model_is_named_with_its_problem(tmp_path):
    path = write_particles(pd.DataFrame({"z": [1.0], "y": [2.0], "x": [3.0]}), tmp_path / "p.mod")
    truncated = tmp_path / "truncated.mod"
    truncated.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(
        ParticleFileError, match=r"truncated.mod: a truncated or damaged IMOD model"
    ):
        read_particles(truncated)
    text = tmp_path / "points.mod"
    text.write_text("10 20 7\n")  # model2point's text, named as the model
    with pytest.raises(ParticleFileError, match=r"points.mod: not an IMOD model"):
        read_particles(text)


def test_the_export_dock_writes_an_imod_model_3dmod_opens_on_the_tomogram(
    explorer, qtbot, tmp_path, small_tomogram
):
    viewer, widgets, _session = explorer
    layer = open_and_import(qtbot, widgets, small_tomogram, three_picks(tmp_path / "picks"))
    layer.selected_data = {0, 2}
    export = widgets["Export"]
    type_into(qtbot, export.file, str(tmp_path / "keep.mod"))
    assert export.format.value == "IMOD model"
    click(qtbot, export.export_button)
    model = ImodModel.from_file(tmp_path / "keep.mod")
    points = np.asarray(model.objects[0].contours[0].points)
    assert points.tolist() == [[20.5, 20.5, 20.0], [40.5, 20.5, 20.0]]  # x, y, z as 3dmod's
    shape = viewer.layers[0].data.shape
    assert (model.header.zmax, model.header.ymax, model.header.xmax) == shape
    assert export.status.value == "wrote 1 file: keep.mod"

    type_into(qtbot, widgets["Particles"].file, str(tmp_path / "keep.mod"))
    click(qtbot, widgets["Particles"].import_button)  # read back in the dock
    assert widgets["Particles"].particles_layer.data.tolist() == [[20, 20, 20], [20, 20, 40]]


def test_a_model_opened_with_file_open_lies_on_the_open_tomogram(make_napari_viewer, tmp_path):
    tomogram = tmp_path / "TS_01.mrc"
    write_mrc(tomogram, np.zeros((40, 64, 64), np.float32), voxel_size=7.5)
    model = _model_as_3dmod_saves_it(tmp_path / "TS_01.mod", [[np.array([[10.5, 20.5, 7.0]])]])
    viewer = make_napari_viewer()
    viewer.open(tomogram, plugin="napari-affinity-vae")
    [points] = viewer.open(model, plugin="napari-affinity-vae")
    assert points.data.tolist() == [[7, 20, 10]]
    np.testing.assert_allclose(points.scale, [7.5, 7.5, 7.5])
