"""CryoET Data Portal downloads, laid out here as the Portal's client writes them (the current
layout and the older one), opened without the network in the command line and in napari."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_affinity_vae.cli import main
from napari_affinity_vae.io.particles import read_particles
from napari_affinity_vae.io.projects import open_project
from napari_affinity_vae.io.projects.copick import PickSetChoice
from napari_affinity_vae.io.tomogram import write_tomogram
from napari_affinity_vae.schema import ANGLES, AXES, CLASS_NAME, TOMO_NAME, latent_columns
from napari_affinity_vae.simulate.geometry import relion_matrix
from napari_affinity_vae.simulate.tomogram import Simulation, simulate_tomogram
from test_clicks import click, shown, type_into
from zarr_files import portal_style_zarr

pytestmark = pytest.mark.zarr


@pytest.fixture(scope="module")
def simulated():
    return {
        name: simulate_tomogram(Simulation(shape=(48, 128, 128), particles=10, seed=s, name=name))
        for s, name in ((4, "TS_01"), (5, "TS_02"))
    }


def write_points(path, particles, oriented: bool) -> None:
    """Points as the Portal writes them: one JSON object per line, x, y, z voxels."""
    lines = []
    for _, row in particles.iterrows():
        record = {"type": "orientedPoint" if oriented else "point"}
        record["location"] = {a: float(row[a]) for a in ("x", "y", "z")}
        if oriented:
            matrix = np.linalg.inv(relion_matrix(row[list(ANGLES)].to_numpy(dtype=float)))
            record["xyz_rotation_matrix"] = matrix.tolist()
        lines.append(json.dumps(record))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def download(tmp_path, simulated):
    """Dataset 10001 with run TS_01 in the current layout (ribosomes as oriented points with
    their metadata, three membrane points without) and run TS_02 in the older layout."""
    root = tmp_path / "data" / "10001"
    truth = simulated["TS_01"].particles
    spacing = root / "TS_01" / "Reconstructions" / "VoxelSpacing10.000"
    portal_style_zarr(
        spacing / "Tomograms" / "100" / "TS_01.zarr", simulated["TS_01"].tomogram, 1.0
    )
    ribosomes = spacing / "Annotations" / "101" / "cytosolic_ribosome-1.0_orientedpoint.ndjson"
    write_points(ribosomes, truth[truth[CLASS_NAME] == "ribosome"], oriented=True)
    metadata = {"annotation_object": {"id": "GO:0022626", "name": "cytosolic ribosome"}}
    ribosomes.with_name("cytosolic_ribosome-1.0.json").write_text(json.dumps(metadata))
    write_points(spacing / "Annotations" / "102" / "membrane-1.0_point.ndjson", truth[:3], False)

    old = root / "TS_02" / "Tomograms" / "VoxelSpacing10.000"
    portal_style_zarr(old / "CanonicalTomogram" / "TS_02.zarr", simulated["TS_02"].tomogram, 1.0)
    truth = simulated["TS_02"].particles
    write_points(old / "Annotations" / "103-ribosome-1.0_point.ndjson", truth, oriented=False)
    return tmp_path / "data"


def test_avae_project_lists_the_runs_and_annotations(download, capsys):
    assert main(["project", str(download)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("2 tomograms, 15 particles")
    assert "TS_01: 5 particles, 48 x 128 x 128 voxels at 10 Å" in printed
    assert "TS_01.zarr" in printed and "CanonicalTomogram/TS_02.zarr" in printed
    assert "cytosolic ribosome by portal, session 101: 2 picks" in printed
    assert "membrane by portal, session 102: 3 picks" in printed
    assert "ribosome by portal, session 103: 10 picks" in printed


def test_oriented_points_keep_their_rotation(download, simulated):
    project = open_project([download], pick_sets=PickSetChoice(object_name="cytosolic ribosome"))
    table = project.particles
    truth = simulated["TS_01"].particles
    truth = truth[truth[CLASS_NAME] == "ribosome"].reset_index(drop=True)
    assert list(table[TOMO_NAME]) == ["TS_01"] * len(truth)
    np.testing.assert_allclose(table[list(AXES)], truth[list(AXES)], atol=1e-6)
    np.testing.assert_allclose(
        relion_matrix(table[list(ANGLES)].to_numpy()),
        relion_matrix(truth[list(ANGLES)].to_numpy()),
        atol=1e-6,
    )


def test_annotations_of_another_voxel_spacing_land_on_the_tomograms_voxels(download, simulated):
    """An annotator may pick on a binned tomogram: its points, in that spacing's voxels, were
    neither read nor counted beside the finest spacing's tomogram."""
    truth = simulated["TS_01"].particles[:4]
    run = download / "10001" / "TS_01" / "Reconstructions"
    coarse = run / "VoxelSpacing20.000" / "Annotations" / "104" / "membrane-2.0_point.ndjson"
    write_points(coarse, truth.assign(**{a: truth[a] / 2 for a in AXES}), oriented=False)
    project = open_project([download], pick_sets=PickSetChoice(session="104"))
    assert project.pick_sets[("membrane", "portal", "104")] == 4
    np.testing.assert_allclose(project.particles[list(AXES)], truth[list(AXES)], atol=1e-6)


def test_avae_embed_on_a_download_gives_the_latents_of_the_same_tomogram_in_mrc(
    download, simulated, tmp_path
):
    out = tmp_path / "embedded.csv"
    assert main(["embed", str(download), "--session", "103", "--out", str(out)]) == 0
    embedded = read_particles(out)
    assert len(embedded) == 10 and set(embedded[TOMO_NAME]) == {"TS_02"}
    result = simulated["TS_02"]
    mrc = write_tomogram(tmp_path / "TS_02.mrc", result.tomogram, 10.0)
    coordinates = tmp_path / "TS_02.csv"
    result.particles.to_csv(coordinates, index=False)
    reference = tmp_path / "reference.csv"
    assert main(["embed", str(mrc), str(coordinates), "--out", str(reference)]) == 0
    expected = read_particles(reference)
    columns = latent_columns(expected)
    np.testing.assert_allclose(embedded[columns], expected[columns], atol=1e-4)


def test_a_download_folder_opens_in_the_project_dock(explorer, qtbot, download):
    viewer, widgets, session = explorer
    dock = widgets["Project"]
    type_into(qtbot, dock.folder, str(download))
    click(qtbot, dock.open_button)
    assert len(session.particles) == 15 and session.tomogram.name == "TS_01"
    assert viewer.layers["TS_01"].multiscale
    assert shown(dock.picks)
    dock.picks.value = "ribosome by portal, session 103"
    assert len(session.particles) == 10 and session.tomogram.name == "TS_02"
