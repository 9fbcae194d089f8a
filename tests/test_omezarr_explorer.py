"""An OME-Zarr tomogram in napari: opened from the Tomogram dock or dropped on the viewer as a
multiscale layer in Angstrom, and picked on the level the picker needs."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtWidgets import QFileDialog

from napari_affinity_vae.io.omezarr import write_ome_zarr
from napari_affinity_vae.io.tomogram import contrast_limits, open_tomogram, write_tomogram
from napari_affinity_vae.operations.defaults import DIAMETERS
from napari_affinity_vae.particles.picking import PickSettings, pick
from napari_affinity_vae.schema import AXES
from test_clicks import WAIT_MS, click, type_into

pytestmark = pytest.mark.zarr


@pytest.fixture(scope="module")
def sample_zarr(sample_simulation, tmp_path_factory):
    folder = tmp_path_factory.mktemp("zarr")
    return write_ome_zarr(folder / "sample.zarr", sample_simulation.tomogram, 10.0, chunks=64)


def test_a_zarr_folder_typed_and_opened_is_a_multiscale_layer_picked_on_its_binned_level(
    explorer, qtbot, sample_zarr, sample_simulation, tmp_path
):
    viewer, widgets, session = explorer
    tomogram_widget = widgets["Tomogram"]
    type_into(qtbot, tomogram_widget.file, str(sample_zarr))
    click(qtbot, tomogram_widget.open_button)
    layer = viewer.layers["sample"]
    assert layer.multiscale and len(layer.data) == 3
    assert tuple(layer.scale) == (10.0, 10.0, 10.0)
    assert tomogram_widget.info.value == "200 x 400 x 400 voxels (z, y, x); levels of 10, 20, 40 Å"
    assert session.tomogram.name == "sample" and session.tomogram.shape == (200, 400, 400)

    particles = widgets["Particles"]
    click(qtbot, particles.pick_button)
    qtbot.waitUntil(lambda: not particles.task.running, timeout=WAIT_MS)
    picks = session.particles
    # the picker bins 10 A data to 20 A itself: picking the 20 A level gives the same picks
    mrc = open_tomogram(write_tomogram(tmp_path / "sample.mrc", sample_simulation.tomogram, 10.0))
    expected = pick(mrc.data, PickSettings(*DIAMETERS, voxel_size=10.0))
    assert len(picks) == len(expected) > 200
    np.testing.assert_allclose(picks[list(AXES)], expected[list(AXES)], atol=0.01)
    np.testing.assert_allclose(viewer.layers["sample picks"].data, picks[list(AXES)])


def test_the_folder_button_and_a_drop_on_the_viewer_open_a_zarr_tomogram(
    explorer, qtbot, sample_zarr, sample_simulation, monkeypatch
):
    viewer, widgets, _ = explorer
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *_: str(sample_zarr))
    click(qtbot, widgets["Tomogram"].open_folder_button)
    assert viewer.layers[-1].name == "sample" and viewer.layers[-1].multiscale

    dropped = viewer.open(sample_zarr, plugin="napari-affinity-vae")
    assert dropped[0].multiscale and tuple(dropped[0].scale) == (10.0, 10.0, 10.0)
    # the range of the full-resolution voxels, not of an averaged level's (less noisy) ones
    full = contrast_limits(sample_simulation.tomogram)
    np.testing.assert_allclose(dropped[0].contrast_limits, full, rtol=0.25)
