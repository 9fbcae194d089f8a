"""Projects of many tomograms: RELION 5, RELION 4 with a folder, Dynamo with its index, a folder
of tomograms and coordinate files, one tomogram; what `avae project` says of each."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile

from conftest import RELION5_SIMULATION, relion_layout, write_mrc
from napari_affinity_vae.cli import main
from napari_affinity_vae.errors import ParticleFileError, TomogramFileError
from napari_affinity_vae.io.particles import read_particles, write_particles
from napari_affinity_vae.io.projects import open_project
from napari_affinity_vae.io.projects.relion5 import write_relion5
from napari_affinity_vae.io.projects.writing import write_project_table
from napari_affinity_vae.operations.export import DYNAMO, write_parts
from napari_affinity_vae.schema import AXES, TOMO_NAME, TOMOGRAM_MISSING
from napari_affinity_vae.simulate.tomogram import Simulation, simulate_tomogram

SMALL = RELION5_SIMULATION
XYZ = ["x", "y", "z"]


def test_a_tomogram_set_of_one_written_without_loop_opens(relion5, tmp_path):
    """Some tools write a set of one tomogram as key-value pairs, as starfile does too."""
    folder = tmp_path / "one"
    shutil.copytree(relion5, folder)
    table = starfile.read(folder / "tomograms.star", always_dict=True)["global"]
    row = table[table["rlnTomoName"] == "TS_01"].iloc[0].to_dict()
    lines = ["data_global", ""] + [f"_{key} {value}" for key, value in row.items()]
    (folder / "tomograms.star").write_text("\n".join(lines) + "\n")
    project = open_project([folder / "tomograms.star", folder / "particles.star"])
    assert list(project.tomograms) == ["TS_01"] and project.tomograms["TS_01"].shape == SMALL.shape
    assert project.counts()["TS_01"] == 6


def truth(name: str, index: int) -> pd.DataFrame:
    """The ground-truth particles of the simulated project's tomogram ``index``."""
    one = Simulation(**{**SMALL.__dict__, "seed": SMALL.seed + index, "name": name})
    return simulate_tomogram(one).particles


def test_a_relion5_project_opens_from_the_optimisation_set_with_true_positions(relion5):
    project = open_project([relion5 / "optimisation_set.star"])
    assert list(project.tomograms) == ["TS_01", "TS_02", "TS_03"]
    assert project.counts().tolist() == [6, 6, 6]
    entry = project.tomograms["TS_02"]
    assert entry.voxel_size == pytest.approx(10.0) and entry.shape == SMALL.shape
    rows = project.rows_of("TS_02")
    expected = truth("TS_02", 1)
    np.testing.assert_allclose(
        project.particles.loc[rows, list(AXES)], expected[list(AXES)], atol=1e-3
    )
    assert project.particles.loc[rows, "class_name"].tolist() == expected["class_name"].tolist()
    assert not project.particles[TOMOGRAM_MISSING].any()
    tomogram = project.open("TS_02")
    assert tomogram.shape == SMALL.shape and tomogram.voxel_size == pytest.approx(10.0)


def test_the_two_star_files_in_either_order_give_the_same_project(relion5):
    one = open_project([relion5 / "tomograms.star", relion5 / "particles.star"])
    other = open_project([relion5 / "particles.star", relion5 / "tomograms.star"])
    pd.testing.assert_frame_equal(one.particles, other.particles)


def test_particles_alone_are_counted_and_say_positions_need_the_tomograms(relion5, capsys):
    project = open_project([relion5 / "particles.star"])
    assert project.counts().to_dict() == {"TS_01": 6, "TS_02": 6, "TS_03": 6}
    assert project.particles[list(AXES)].isna().all(axis=None)
    assert main(["project", str(relion5 / "particles.star")]) == 0
    out = capsys.readouterr().out
    assert "0 tomograms, 18 particles" in out and "TS_03: 6 particles" in out
    assert "positions need the tomograms (tomograms.star)" in out


def test_relion_paths_are_found_from_the_project_folder_denoised_first(tmp_path, relion5):
    root = relion_layout(tmp_path, relion5)
    project = open_project([root / "Picks/job010/optimisation_set.star"])
    entry = project.tomograms["TS_01"]
    assert list(entry.files) == ["denoised", "half1", "half2"]
    assert entry.path == root / "Denoise/job009/tomograms/rec_TS_01.mrc"
    assert project.open("TS_01", "half2").path.name == "rec_TS_01_half2.mrc"
    expected = truth("TS_01", 0)
    rows = project.rows_of("TS_01")
    np.testing.assert_allclose(
        project.particles.loc[rows, list(AXES)], expected[list(AXES)], atol=1e-3
    )


def test_a_missing_tomogram_is_named_and_its_particles_stay_marked(tmp_path, relion5, capsys):
    root = relion_layout(tmp_path, relion5)
    (root / "Denoise/job009/tomograms/rec_TS_02.mrc").unlink()
    for half in ("half1", "half2"):
        (root / f"Tomograms/job007/tomograms/rec_TS_02_{half}.mrc").unlink()
    (root / "Denoise/job009/tomograms/rec_TS_03.mrc").write_bytes(b"not an MRC file")
    project = open_project([root / "Picks/job010/optimisation_set.star"])
    missing = project.particles.groupby(TOMO_NAME)[TOMOGRAM_MISSING].all().to_dict()
    assert missing == {"TS_01": False, "TS_02": True, "TS_03": False}
    assert len(project.particles) == 18
    entry = project.tomograms["TS_02"]
    assert "rec_TS_02.mrc: no such file" in entry.problem
    assert entry.shape == SMALL.shape  # from rlnTomoSize / binning
    rows = project.rows_of("TS_02")  # positions still known from the tomogram set
    np.testing.assert_allclose(
        project.particles.loc[rows, list(AXES)], truth("TS_02", 1)[list(AXES)], atol=1e-3
    )
    with pytest.raises(TomogramFileError, match=r"rec_TS_02\.mrc: no such file"):
        project.open("TS_02")
    # the corrupt denoised map is passed over for the halves, which open
    assert project.tomograms["TS_03"].path.name == "rec_TS_03_half1.mrc"
    assert main(["project", str(root / "Picks/job010/optimisation_set.star")]) == 0
    assert "TS_02: 6 particles, 40 x 96 x 112 voxels at 10 Å; " in capsys.readouterr().out


def test_origin_shifts_are_applied_through_the_subtomogram_rotation(tmp_path):
    tomogram = write_mrc(tmp_path / "TS_01.mrc", np.zeros((40, 60, 80), np.float32))
    starfile.write(
        {
            "global": pd.DataFrame(
                {
                    "rlnTomoName": ["TS_01"],
                    "rlnTomoTiltSeriesPixelSize": [2.5],
                    "rlnTomoTomogramBinning": [4.0],
                    "rlnTomoSizeX": [320],
                    "rlnTomoSizeY": [240],
                    "rlnTomoSizeZ": [160],
                    "rlnTomoReconstructedTomogram": [tomogram.name],
                }
            )
        },
        tmp_path / "tomograms.star",
    )
    particles = pd.DataFrame(
        {
            "rlnTomoName": ["TS_01"] * 3,
            "rlnCenteredCoordinateXAngst": [0.0, 100.0, 100.0],
            "rlnCenteredCoordinateYAngst": [0.0, -50.0, -50.0],
            "rlnCenteredCoordinateZAngst": [0.0, 20.0, 20.0],
            "rlnOriginXAngst": [0.0, 10.0, 10.0],
            "rlnOriginYAngst": [0.0, 0.0, 0.0],
            "rlnOriginZAngst": [0.0, 0.0, 0.0],
            "rlnTomoSubtomogramRot": [0.0, 0.0, 0.0],
            "rlnTomoSubtomogramTilt": [0.0, 0.0, 90.0],  # turns the x shift onto z
            "rlnTomoSubtomogramPsi": [0.0, 0.0, 0.0],
        }
    )
    starfile.write({"particles": particles}, tmp_path / "particles.star")
    project = open_project([tmp_path / "tomograms.star", tmp_path / "particles.star"])
    # centre at unbinned size / 2 = (80, 120, 160) pixels, (20, 30, 40) voxels of 10 A
    expected = [[20, 30, 40], [22, 25, 49], [21, 25, 50]]
    np.testing.assert_allclose(project.particles[list(AXES)], expected, atol=1e-9)
    alone = read_particles(
        tmp_path / "particles.star", voxel_size=10.0, tomogram_shape=(40, 60, 80)
    )  # the same file read alone, as for a single tomogram
    np.testing.assert_allclose(alone[list(AXES)], expected, atol=1e-9)
    single = open_project([tomogram, tmp_path / "particles.star"])
    np.testing.assert_allclose(single.particles[list(AXES)], expected, atol=1e-9)


def test_an_export_across_tomograms_reads_back_to_the_same_particles(relion5, tmp_path):
    project = open_project([relion5 / "optimisation_set.star"])
    chosen = project.particles.iloc[[1, 7, 8, 16]].assign(cluster=[3, 1, 1, 0])
    out = write_relion5(project, chosen, tmp_path / "chosen.star")
    blocks = starfile.read(out, always_dict=True)
    assert list(blocks) == ["optics", "particles"]  # the file's other blocks kept
    assert "rlnOpticsGroup" in blocks["particles"]  # and its columns
    back = open_project([relion5 / "tomograms.star", out])
    assert back.particles[TOMO_NAME].tolist() == ["TS_01", "TS_02", "TS_02", "TS_03"]
    np.testing.assert_allclose(back.particles[list(AXES)], chosen[list(AXES)], atol=1e-4)
    assert back.particles["cluster"].tolist() == [3, 1, 1, 0]


def test_a_hand_pick_exported_to_relion5_joins_the_optics_group_the_others_share(relion5, tmp_path):
    """A point added by hand where the project's particles share one optics group was written
    in group 0, which RELION cannot find in data_optics (RELION 4 exports joined the group)."""
    project = open_project([relion5 / "optimisation_set.star"])
    rows = project.particles.iloc[[1, 16]].copy()
    shared = rows["rlnOpticsGroup"].iloc[0]
    rows.loc[rows.index[1], "rlnOpticsGroup"] = np.nan  # as a hand pick has none
    out = write_relion5(project, rows, tmp_path / "picked.star")
    assert starfile.read(out)["particles"]["rlnOpticsGroup"].tolist() == [shared, shared]


@pytest.mark.parametrize(
    ("optics", "binning"), [(False, 2), (True, 1), (True, 2)], ids=["binning", "optics", "both"]
)
def test_a_relion4_star_with_a_folder_matches_tomograms_by_name_and_bins(tmp_path, optics, binning):
    """Coordinates in unbinned 4 A pixels of 8 A tomograms: the binning says so, or data_optics'
    tilt-series pixel size (a tomogram not found keeps its pixels, unless a binning is given)."""
    folder = tmp_path / "tomograms"
    folder.mkdir()
    write_mrc(folder / "TS_01_rec.mrc", np.zeros((30, 40, 50), np.float32), voxel_size=8.0)
    write_mrc(folder / "TS_02.mrc", np.zeros((20, 40, 50), np.float32), voxel_size=8.0)
    for name in ("TS_03a", "TS_03b"):  # two files start with TS_03: which is meant is unknown
        write_mrc(folder / f"{name}.mrc", np.zeros((20, 20, 20), np.float32), voxel_size=8.0)
    particles = pd.DataFrame(
        {
            "rlnTomoName": ["TS_01", "TS_02", "TS_02", "TS_03"],
            "rlnCoordinateX": [40.0, 80.0, 120.0, 8.0],  # unbinned: 2 x the tomograms' voxels
            "rlnCoordinateY": [20.0, 40.0, 60.0, 8.0],
            "rlnCoordinateZ": [10.0, 20.0, 30.0, 8.0],
            "rlnOriginXAngst": [8.0, 0.0, 0.0, 0.0],
            "rlnAngleRot": [10.0, 20.0, 30.0, 40.0],
        }
    )
    star = tmp_path / "particles.star"
    blocks = {"particles": particles}
    if optics:
        blocks = {"optics": pd.DataFrame({"rlnTomoTiltSeriesPixelSize": [4.0]})} | blocks
    starfile.write(blocks, star)
    project = open_project([star, folder], binning=binning)
    assert project.tomograms["TS_01"].path.name == "TS_01_rec.mrc"
    assert project.tomograms["TS_02"].path.name == "TS_02.mrc"
    assert "no tomogram file" in project.tomograms["TS_03"].problem
    missing = [4, 4, 4] if binning == 2 else [8, 8, 8]
    np.testing.assert_allclose(
        project.particles[XYZ], [[19, 10, 5], [40, 20, 10], [60, 30, 15], missing]
    )
    assert project.particles["rot"].tolist() == [10.0, 20.0, 30.0, 40.0]
    assert project.particles[TOMOGRAM_MISSING].tolist() == [False, False, False, True]
    assert project.binning == (1 if optics else binning)  # exports follow the optics, if any


def test_a_corrected_voxel_size_moves_the_particles_a_file_placed_in_angstrom(tmp_path):
    """Pixels of a stated size (RELION 4 optics) and RELION 5 centred Ångström are Ångström:
    at a corrected voxel size their particles move, about the corner or the centre; pixels
    of no stated size, and another tomogram's particles, stay on their voxels."""
    folder = tmp_path / "tomograms"
    folder.mkdir()
    for name in ("TS_01", "TS_02"):
        write_mrc(folder / f"{name}.mrc", np.zeros((20, 40, 50), np.float32), voxel_size=8.0)
    particles = pd.DataFrame(
        {
            "rlnTomoName": ["TS_01", "TS_02"],
            "rlnCoordinateX": [80.0, 80.0],
            "rlnCoordinateY": [40.0, 40.0],
            "rlnCoordinateZ": [20.0, 20.0],
        }
    )
    optics = {"optics": pd.DataFrame({"rlnTomoTiltSeriesPixelSize": [4.0]})}
    starfile.write(optics | {"particles": particles}, tmp_path / "optics.star")
    project = open_project([tmp_path / "optics.star", folder])
    pasted = project.particles.iloc[[0]]  # a hand pick exactly on the first particle
    project.set_particles(pd.concat([project.particles, pasted], ignore_index=True))
    assert project.correct_voxel_size("TS_01", 16.0) == 1  # that one stayed
    np.testing.assert_allclose(project.particles[XYZ], [[20, 10, 5], [40, 20, 10], [40, 20, 10]])
    assert project.tomograms["TS_01"].voxel_size == 16.0
    starfile.write({"particles": particles}, tmp_path / "binned.star")
    binned = open_project([tmp_path / "binned.star", folder], binning=2)
    assert binned.correct_voxel_size("TS_01", 16.0) is None
    np.testing.assert_allclose(binned.particles[XYZ], [[40, 20, 10], [40, 20, 10]])
    centred = pd.DataFrame({"z": [10.0], "y": [30.0], "x": [45.0]})
    write_particles(
        centred,
        folder / "TS_01.star",
        voxel_size=8.0,
        tomogram_shape=(20, 40, 50),
        star_flavour="relion5",
    )
    write_particles(centred, folder / "TS_02.csv")
    own = open_project([folder])
    assert own.correct_voxel_size("TS_01", 4.0) == 0
    assert own.correct_voxel_size("TS_02", 4.0) is None
    np.testing.assert_allclose(own.particles[XYZ], [[65, 40, 10], [45, 30, 10]])  # about x 25, y 20


def test_warptools_fractions_with_a_folder_scale_by_each_tomograms_size(tmp_path):
    """WarpTools 2 template matching across tomograms (named by rlnMicrographName): each
    particle's fractions of its own tomogram's size, whatever binning is typed."""
    folder = tmp_path / "tomograms"
    folder.mkdir()
    write_mrc(folder / "TS_01.mrc", np.zeros((30, 40, 50), np.float32), voxel_size=8.0)
    write_mrc(folder / "TS_02.mrc", np.zeros((20, 60, 80), np.float32), voxel_size=8.0)
    particles = pd.DataFrame(
        {
            "rlnCoordinateX": [0.5, 0.25],
            "rlnCoordinateY": [0.5, 0.5],
            "rlnCoordinateZ": [0.1, 0.5],
            "rlnMicrographName": ["TS_01.tomostar", "TS_02.tomostar"],
        }
    )
    starfile.write({"particles": particles}, tmp_path / "matches.star")
    project = open_project([tmp_path / "matches.star", folder], binning=4)
    np.testing.assert_allclose(project.particles[XYZ], [[25, 20, 3], [20, 30, 10]])
    assert project.binning == 1  # exports are in the tomograms' pixels, not the fractions'
    one = particles.iloc[:1].assign(rlnCoordinateX=[0.5])  # a tomogram's own file in the folder
    starfile.write({"particles": one}, folder / "TS_01.star")
    alone = open_project([folder / "TS_01.mrc", folder / "TS_01.star"], binning=4)
    np.testing.assert_allclose(alone.particles[XYZ], [[25, 20, 3]])
    assert alone.binning == 1


def test_a_dynamo_table_with_its_doc_or_vll_index(tmp_path):
    for number, shape in ((1, (30, 40, 50)), (2, (20, 40, 50))):
        write_mrc(tmp_path / f"tomo{number}.mrc", np.zeros(shape, np.float32), voxel_size=7.0)
    table = np.zeros((3, 35))
    table[:, 0] = [1, 2, 3]
    table[:, 19] = [1, 2, 2]  # tomogram numbers
    table[:, 23:26] = [[11, 21, 6], [31, 11, 3], [41, 31, 11]]  # x, y, z counted from 1
    table[2, 3] = 0.5  # a dx shift
    np.savetxt(tmp_path / "particles.tbl", table, fmt="%g")
    (tmp_path / "index.doc").write_text("1 tomo1.mrc\n2\ttomo2.mrc\n")
    (tmp_path / "index.vll").write_text(
        f"{tmp_path / 'tomo2.mrc'}\n* index = 2\n* apix = 14\n\ntomo1.mrc\n* index = 1\n"
    )
    expected = [[10, 20, 5], [30, 10, 2], [40.5, 30, 10]]
    doc = open_project([tmp_path / "particles.tbl", tmp_path / "index.doc"])
    assert doc.counts().to_dict() == {"1": 1, "2": 2}
    assert doc.tomograms["2"].shape == (20, 40, 50) and doc.tomograms["2"].voxel_size == 7.0
    np.testing.assert_allclose(doc.particles[XYZ], expected)
    vll = open_project([tmp_path / "index.vll", tmp_path / "particles.tbl"])
    assert vll.tomograms["1"].path == tmp_path / "tomo1.mrc"
    assert vll.tomograms["2"].voxel_size == 14.0  # the list's apix overrides the header
    np.testing.assert_allclose(vll.particles[XYZ], expected)
    # picked twice as finely as the tomograms are binned: --binning was ignored for a project
    binned = open_project([tmp_path / "particles.tbl", tmp_path / "index.doc"], binning=2.0)
    np.testing.assert_allclose(binned.particles[XYZ], np.array(expected) / 2)


def test_particles_of_a_missing_tomogram_are_never_written_without_a_place(tmp_path, capsys):
    """A Dynamo project whose tomogram 2 is missing: RELION 5 cannot place its particles (no
    voxel size, no size), so a .star is refused before any embedding; a .csv keeps them."""
    write_mrc(tmp_path / "tomo1.mrc", np.zeros((30, 40, 50), np.float32), voxel_size=7.0)
    table = np.zeros((2, 35))
    table[:, 19] = [1, 2]
    table[:, 23:26] = [[11, 21, 6], [31, 11, 3]]
    np.savetxt(tmp_path / "particles.tbl", table, fmt="%g")
    (tmp_path / "index.doc").write_text("1 tomo1.mrc\n2 tomo2.mrc\n")
    sources = [str(tmp_path / "particles.tbl"), str(tmp_path / "index.doc")]
    out = tmp_path / "embedded.star"
    assert main(["embed", *sources, "--out", str(out), "--pca"]) == 2
    error = capsys.readouterr().err
    assert f"{out}: the particles of 2 cannot be given in RELION 5's centred Angstrom" in error
    assert "embedding" not in error and not out.exists()
    project = open_project([Path(s) for s in sources])
    with pytest.raises(ParticleFileError, match="particles of 2 cannot"):
        write_relion5(project, project.particles, out)
    assert not out.exists()
    write_relion5(project, project.particles[project.particles[TOMO_NAME] == "1"], out)
    assert starfile.read(out)["rlnCenteredCoordinateXAngst"].notna().all()


def test_a_folder_of_tomograms_with_coordinate_files_of_the_same_stem(tmp_path):
    for name in ("a", "b", "c"):
        write_mrc(tmp_path / f"{name}.mrc", np.zeros((20, 30, 40), np.float32))
    picks = pd.DataFrame({"z": [5.0, 6.0], "y": [10.0, 11.0], "x": [20.0, 21.0]})
    write_particles(picks, tmp_path / "a.csv")
    write_particles(picks.head(1), tmp_path / "c.star")
    project = open_project([tmp_path])
    assert project.counts().to_dict() == {"a": 2, "b": 0, "c": 1}
    np.testing.assert_allclose(project.particles[list(AXES)], picks.iloc[[0, 1, 0]], atol=1e-4)
    one = open_project([tmp_path / "a.mrc", tmp_path / "a.csv"])
    assert list(one.tomograms) == ["a"] and len(one.particles) == 2


def test_a_csv_naming_its_tomograms_opens_with_their_folder(tmp_path):
    """A project's CSV export could not be opened again with the folder of its tomograms, as
    its STAR and Parquet exports can."""
    folder = tmp_path / "tomograms"
    folder.mkdir()
    for name in ("TS_1_rec", "TS_2", "TS_3"):
        write_mrc(folder / f"{name}.mrc", np.zeros((20, 30, 40), np.float32), voxel_size=10.0)
    picks = pd.DataFrame({"z": [5.0, 6.0, 7.0], "y": [10.0, 11.0, 12.0], "x": [20.0, 21.0, 22.0]})
    picks["tomo_name"] = ["TS_1", "TS_2", "TS_9"]  # TS_9's file is missing
    write_particles(picks, tmp_path / "export.csv")
    project = open_project([tmp_path / "export.csv", folder])
    assert project.tomograms["TS_1"].path.name == "TS_1_rec.mrc"
    assert project.counts().to_dict() == {"TS_1": 1, "TS_2": 1, "TS_3": 0, "TS_9": 1}
    assert project.particles[TOMOGRAM_MISSING].tolist() == [False, False, True]
    np.testing.assert_allclose(project.particles[list(AXES)], picks[list(AXES)], atol=1e-6)
    write_particles(picks.drop(columns="tomo_name"), tmp_path / "nameless.csv")
    with pytest.raises(ParticleFileError, match=r"nameless\.csv: names no tomograms"):
        open_project([tmp_path / "nameless.csv", folder])


def _simulate_project(out, particles: int, *classes: str) -> int:
    """``avae simulate`` of two 32 x 64 x 64 tomograms of ``particles`` each."""
    shape = ["--shape", "32", "64", "64"]
    options = ["--tomograms", "2", "--particles", str(particles), *shape, "--classes", *classes]
    return main(["simulate", str(out), *options])


def test_simulate_writes_a_project_that_avae_project_lists(tmp_path, capsys):
    out = tmp_path / "sim"
    assert _simulate_project(out, 3, "globular", "ribosome") == 0
    capsys.readouterr()
    assert main(["project", str(out / "optimisation_set.star")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "2 tomograms, 6 particles"
    assert (
        lines[1] == f"  TS_01: 3 particles, 32 x 64 x 64 voxels at 10 Å ({out}/tomograms/TS_01.mrc)"
    )


def test_a_project_whose_particles_do_not_fit_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "crowded"
    assert _simulate_project(out, 60, "ribosome") == 2
    assert "particles fit" in capsys.readouterr().err and not out.exists()


def test_origin_shifts_place_a_particle_alike_with_tomograms_star_or_a_folder(relion5, tmp_path):
    blocks = starfile.read(relion5 / "particles.star", always_dict=True)
    blocks["particles"]["rlnOriginXAngst"] = 20.0
    shifted = tmp_path / "shifted.star"
    starfile.write(blocks, shifted)
    by_set = open_project([shifted, relion5 / "tomograms.star"]).particles
    by_folder = open_project([shifted, relion5 / "tomograms"]).particles
    np.testing.assert_allclose(by_folder[list(AXES)], by_set[list(AXES)], atol=1e-6)
    plain = open_project([relion5 / "optimisation_set.star"]).particles
    np.testing.assert_allclose(by_set["x"], plain["x"] - 2.0, atol=1e-6)  # 20 A at 10 A/voxel


def test_a_name_never_takes_the_file_of_a_longer_name(tmp_path):
    folder = tmp_path / "tomograms"
    folder.mkdir()
    write_mrc(folder / "TS_10.mrc", np.zeros((10, 10, 10), np.float32))
    write_mrc(folder / "TS_2_rec.mrc", np.zeros((10, 10, 10), np.float32))
    particles = pd.DataFrame(
        {
            "rlnTomoName": ["TS_1", "TS_2", "TS_10"],
            "rlnCoordinateX": [5.0] * 3,
            "rlnCoordinateY": [5.0] * 3,
            "rlnCoordinateZ": [5.0] * 3,
        }
    )
    starfile.write({"particles": particles}, tmp_path / "p.star")
    project = open_project([tmp_path / "p.star", folder])
    assert project.tomograms["TS_1"].path is None  # TS_1.mrc is missing; TS_10 is not it
    assert project.tomograms["TS_2"].path.name == "TS_2_rec.mrc"
    assert project.tomograms["TS_10"].path.name == "TS_10.mrc"


def test_warp_tomostar_names_take_the_tomogram_of_their_stem(tmp_path):
    """Warp names a particle's tomogram by its tilt series' settings, ``TS_1.tomostar``: that
    is ``TS_1.mrc`` or WarpTools' ``TS_2_10.00Apx.mrc``, and the name is written back as read."""
    folder = tmp_path / "tomograms"
    folder.mkdir()
    write_mrc(folder / "TS_1.mrc", np.zeros((10, 10, 10), np.float32), voxel_size=10.0)
    write_mrc(folder / "TS_2_10.00Apx.mrc", np.zeros((10, 10, 10), np.float32), voxel_size=10.0)
    particles = pd.DataFrame(
        {
            "rlnTomoName": ["TS_1.tomostar", "TS_2.tomostar"],
            "rlnCoordinateX": [5.0] * 2,
            "rlnCoordinateY": [4.0] * 2,
            "rlnCoordinateZ": [3.0] * 2,
        }
    )
    starfile.write({"particles": particles}, tmp_path / "p.star")
    project = open_project([tmp_path / "p.star", folder])
    assert project.tomograms["TS_1.tomostar"].path.name == "TS_1.mrc"
    assert project.tomograms["TS_2.tomostar"].path.name == "TS_2_10.00Apx.mrc"
    assert len(project.particles) == 2


def test_a_voxel_size_given_replaces_headers_that_have_none(tmp_path, capsys):
    for name in ("a", "b"):
        write_mrc(tmp_path / f"{name}.mrc", np.zeros((20, 30, 40), np.float32), voxel_size=0.0)
    write_mrc(tmp_path / "a.rec", np.zeros((5, 5, 5), np.float32))  # .mrc is taken before .rec
    write_particles(pd.DataFrame({"z": [5.0], "y": [6.0], "x": [7.0]}), tmp_path / "a.csv")
    unknown = open_project([tmp_path])
    assert "gives no voxel size (0, infinite or not a number)" in unknown.tomograms["a"].problem
    assert unknown.particles[TOMOGRAM_MISSING].all()
    given = open_project([tmp_path], voxel_size=8.0)
    assert [e.voxel_size for e in given.tomograms.values()] == [8.0, 8.0]
    assert given.tomograms["a"].problem is None and given.tomograms["a"].shape == (20, 30, 40)
    assert given.open("a").voxel_size == 8.0 and not given.particles[TOMOGRAM_MISSING].any()
    assert main(["project", str(tmp_path), "--voxel-size", "8"]) == 0
    assert "a: 1 particle, 20 x 30 x 40 voxels at 8 Å" in capsys.readouterr().out


def test_a_tomogram_named_twice_is_refused(relion5, tmp_path):
    table = starfile.read(relion5 / "tomograms.star", always_dict=True)["global"]
    table.loc[2, "rlnTomoName"] = "TS_01"
    starfile.write({"global": table}, tmp_path / "tomograms.star")
    with pytest.raises(ParticleFileError, match="names tomogram\\(s\\) TS_01 more than once"):
        open_project([tmp_path / "tomograms.star"])


def test_a_vll_with_comments_and_directives_numbers_only_its_tomograms(tmp_path, capsys):
    write_mrc(tmp_path / "tomoA.mrc", np.zeros((32, 64, 64), np.float32))
    write_mrc(tmp_path / "tomoB.mrc", np.zeros((40, 80, 80), np.float32))
    (tmp_path / "list.vll").write_text(  # as Dynamo writes a volume list
        "# tomograms of the 2024 session\ntomoA.mrc\n* label = A\n* apix = 10\n> picksA.tbl\n"
        "! note\ntomoB.mrc\n* label = B\n* apix = 10\n"
    )
    table = np.zeros((3, 35))
    table[:, 0] = [1, 2, 3]
    table[:, 19] = [1, 1, 2]
    table[:, 23:26] = [[10, 20, 5], [300, 30, 10], [70, 70, 35]]  # the second: outside A
    np.savetxt(tmp_path / "picks.tbl", table, fmt="%g")
    project = open_project([tmp_path / "picks.tbl", tmp_path / "list.vll"])
    assert {n: e.path.name for n, e in project.tomograms.items()} == {
        "1": "tomoA.mrc",
        "2": "tomoB.mrc",
    }
    np.testing.assert_allclose(project.particles[XYZ], [[9, 19, 4], [299, 29, 9], [69, 69, 34]])
    assert main(["project", str(tmp_path / "picks.tbl"), str(tmp_path / "list.vll")]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == "2 tomograms, 3 particles"
    assert listed[1].endswith(
        "tomoA.mrc); 1 of 2 particles lie outside the tomogram (z, y, x shape (32, 64, 64)); "
        "is it the right tomogram and binning?"
    )
    assert listed[2].endswith("tomoB.mrc)")


def test_a_project_export_holds_the_particles_columns_only(relion5, tmp_path):
    project = open_project([relion5 / "optimisation_set.star"])
    out = tmp_path / "all.csv"
    assert write_project_table(project, project.particles, out, parquet=True) == [
        out,
        out.with_suffix(".parquet"),
    ]
    for table in (pd.read_csv(out), pd.read_parquet(out.with_suffix(".parquet"))):
        assert TOMOGRAM_MISSING not in table and len(table) == len(project.particles)


def test_avae_project_takes_tomo_name_for_a_tomogram_with_a_file_of_several(tmp_path, capsys):
    tomogram = write_mrc(tmp_path / "tomo.mrc", np.zeros((32, 64, 64), np.float32))
    star = tmp_path / "picks.star"
    starfile.write(
        {
            "particles": pd.DataFrame(
                {
                    "rlnTomoName": ["tomo", "TS_02", "TS_02"],
                    "rlnCoordinateX": [10.0, 30.0, 40.0],
                    "rlnCoordinateY": [20.0, 30.0, 30.0],
                    "rlnCoordinateZ": [5.0, 10.0, 10.0],
                }
            )
        },
        star,
    )
    assert main(["project", str(tomogram), str(star)]) == 2
    assert "choose one (--tomo-name on the command line)" in capsys.readouterr().err
    assert main(["project", str(tomogram), str(star), "--tomo-name", "TS_02"]) == 0
    assert capsys.readouterr().out.startswith("1 tomogram, 2 particles")


def test_a_truncated_tomogram_is_named_by_avae_project_before_it_is_opened(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name in ("TS_01", "TS_02"):
        write_mrc(tmp_path / f"{name}.mrc", rng.normal(size=(20, 40, 40)).astype(np.float32))
        (tmp_path / f"{name}.csv").write_text("x,y,z\n20,20,10\n")
    cut = tmp_path / "TS_02.mrc"
    cut.write_bytes(cut.read_bytes()[:-4000])  # a copy that stopped early: the header is whole
    assert main(["project", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "TS_01: 1 particle, 20 x 40 x 40 voxels" in out
    assert f"TS_02: 1 particle, ? voxels at ?; {cut}: the file is truncated" in out


def test_a_folder_s_coordinate_file_of_several_tomograms_gives_each_its_own(tmp_path):
    """A pytom or Warp file beside its tomogram may hold other tomograms' picks too (named by
    rlnMicrographName): the tomogram takes its own, none of the others'."""
    folder = tmp_path / "run"
    folder.mkdir()
    write_mrc(folder / "TS_01.mrc", np.zeros((20, 30, 40), np.float32), voxel_size=10.0)
    picks = pd.DataFrame(
        {
            "rlnCoordinateX": [10.0, 30.0],
            "rlnCoordinateY": [20.0, 12.0],
            "rlnCoordinateZ": [5.0, 7.0],
            "rlnMicrographName": ["TS_01.mrc", "TS_02.mrc"],
        }
    )
    starfile.write({"": picks}, folder / "TS_01.star")
    project = open_project([folder])
    assert project.particles[XYZ].to_numpy().tolist() == [[10, 20, 5]]
    assert project.particles[TOMO_NAME].tolist() == ["TS_01"]


def test_a_particle_added_by_hand_to_an_empty_tomogram_of_an_embedded_project():
    """A tomogram without particles takes one added by hand: its name, no other particle's
    class or angles, not embedded (cluster -1, no latent), the others' results kept."""
    from napari_affinity_vae.operations.hand_edits import added, kept_rows, removed

    table = pd.DataFrame(
        {
            "z": [1.0, 2.0],
            "y": [1.0, 2.0],
            "x": [1.0, 2.0],
            TOMO_NAME: ["TS_01", "TS_01"],
            "rlnClassNumber": [3, 3],
            "rot": [10.0, 10.0],
            "rlnOpticsGroup": [1, 1],
            "copick_user": ["curator", "curator"],
            "latent_0": [0.5, 0.7],
            "cluster": [0, 0],
            "cluster_centre": [True, False],
        }
    )
    grown = added(table, np.zeros(0, dtype=np.int64), np.array([[5.0, 6.0, 7.0]]), "TS_02")
    new = grown.iloc[2]
    assert new[TOMO_NAME] == "TS_02" and new[["z", "y", "x"]].tolist() == [5.0, 6.0, 7.0]
    assert np.isnan(new["rlnClassNumber"]) and np.isnan(new["rot"]) and np.isnan(new["latent_0"])
    assert pd.isna(new["copick_user"])  # not picked by the curator
    # the project's one optics group, as an integer RELION reads (not 1.000000)
    assert grown["rlnOpticsGroup"].tolist() == [1, 1, 1]
    assert grown["rlnOpticsGroup"].dtype == np.int64
    assert grown["cluster"].tolist() == [0, 0, -1] and grown["cluster"].dtype == np.int64
    assert grown["cluster_centre"].tolist() == [True, False, False]
    assert removed(grown, np.array([0]))["latent_0"].tolist()[0] == 0.7
    assert kept_rows(np.array([0, 2, 5, 7]), np.array([2, 4])).tolist() == [0, 3, 5]


def test_a_project_star_of_two_coordinate_blocks_is_refused_not_half_read(tmp_path):
    write_mrc(tmp_path / "TS_01.mrc", np.zeros((16, 32, 32), np.float32))
    rows = pd.DataFrame(
        {"rlnTomoName": "TS_01", "rlnCoordinateX": [1.0, 2.0], "rlnCoordinateY": 3.0}
    ).assign(rlnCoordinateZ=4.0)
    star = tmp_path / "picks.star"
    starfile.write({"first": rows, "second": pd.concat([rows] * 6)}, star)
    with pytest.raises(ParticleFileError, match=r"2 blocks \(data_first \(2 rows\)"):
        open_project([star, tmp_path])


def test_an_imod_folder_pairs_picks_with_the_reconstruction_not_the_tilt_series(tmp_path):
    """etomo leaves TS_01.st (the tilt series), TS_01_ali.mrc and TS_01_rec.mrc: the tilt series
    was taken for the tomogram of TS_01.csv, and its boxes embedded."""
    folder = tmp_path / "imod"
    folder.mkdir()
    for name, shape in (("TS_01.st", (41, 64, 64)), ("TS_01_ali.mrc", (41, 64, 64))):
        write_mrc(folder / name, np.zeros(shape, np.float32), voxel_size=10.0)
    write_mrc(folder / "TS_01_rec.mrc", np.zeros((20, 64, 64), np.float32), voxel_size=10.0)
    (folder / "TS_01.csv").write_text("x,y,z\n30,30,10\n")
    project = open_project([folder])
    assert list(project.tomograms) == ["TS_01"]
    assert project.tomograms["TS_01"].files["tomogram"].name == "TS_01_rec.mrc"
    assert project.tomograms["TS_01"].shape == (20, 64, 64) and len(project.particles) == 1


def test_a_folder_says_which_coordinate_files_it_cannot_use(tmp_path):
    """Picks of a tomogram not in the folder, and two files of one tomogram's picks, were left
    out without a word; a name two files could be was called missing."""
    folder = tmp_path / "run"
    folder.mkdir()
    write_mrc(folder / "TS_01.mrc", np.zeros((20, 40, 40), np.float32), voxel_size=10.0)
    (folder / "TS_01.csv").write_text("x,y,z\n20,20,10\n")
    (folder / "TS_02.csv").write_text("x,y,z\n20,20,10\n")
    with pytest.warns(UserWarning, match="no tomogram of the name of TS_02.csv; their particles"):
        assert len(open_project([folder]).particles) == 1
    (folder / "TS_01.coords").write_text("20 20 10\n")
    with pytest.raises(ParticleFileError, match=r"TS_01\.coords and TS_01\.csv both give TS_01's"):
        open_project([folder])
    for name in ("TS_1_rec.mrc", "TS_1_den.mrc"):
        write_mrc(tmp_path / name, np.zeros((20, 40, 40), np.float32), voxel_size=10.0)
    star = tmp_path / "picks.star"
    starfile.write(
        {
            "particles": pd.DataFrame(
                {
                    "rlnTomoName": ["TS_1"],
                    "rlnCoordinateX": [20.0],
                    "rlnCoordinateY": [20.0],
                    "rlnCoordinateZ": [10.0],
                }
            )
        },
        star,
    )
    problem = open_project([star, tmp_path]).tomograms["TS_1"].problem
    assert problem == (
        "2 tomogram files could be it (TS_1_den.mrc, TS_1_rec.mrc): rename all but one"
    )
    relion = tmp_path / "Tomograms"  # RELION 5 names them rec_TS_1.mrc
    relion.mkdir()
    write_mrc(relion / "rec_TS_1.mrc", np.zeros((20, 40, 40), np.float32), voxel_size=10.0)
    write_mrc(relion / "rec_TS_10.mrc", np.zeros((20, 40, 40), np.float32), voxel_size=10.0)
    found = open_project([star, relion]).tomograms["TS_1"]
    assert found.problem is None and found.files["tomogram"].name == "rec_TS_1.mrc"


def test_particles_of_a_tomogram_the_set_does_not_list_are_not_sent_to_csv(
    relion5, tmp_path, capsys
):
    """Their RELION 5 centred coordinates need the tomogram's size: CSV, which the refusal
    advised, writes them without a place."""
    folder = tmp_path / "more"
    shutil.copytree(relion5, folder)
    particles = starfile.read(folder / "particles.star", always_dict=True)
    block = particles["particles"]
    block.loc[block.index[:2], "rlnTomoName"] = "TS_04"  # not in tomograms.star
    starfile.write(particles, folder / "particles.star", overwrite=True)
    sources = [str(folder / "tomograms.star"), str(folder / "particles.star")]
    assert main(["embed", *sources, "--out", str(tmp_path / "x.star"), "--pca"]) == 2
    err = capsys.readouterr().err
    assert "the particles of TS_04 cannot be given" in err
    assert "their voxels are unknown too: list the tomogram in tomograms.star" in err
    assert ".csv" not in err
    out = tmp_path / "x.csv"
    assert main(["embed", *sources, "--out", str(out), "--pca"]) == 3
    assert f"{out}: 16 of 18 particles embedded, of 4 tomograms (1 not embedded)" in (
        capsys.readouterr().out
    )


def test_the_parquet_twin_of_a_folder_project_opens_with_the_folder(tmp_path, capsys):
    """avae embed FOLDER --out x.parquet wrote a file that only a tomograms.star reopened."""
    folder = tmp_path / "run"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("TS_01", "TS_02"):
        write_mrc(folder / f"{name}_rec.mrc", rng.normal(size=(20, 40, 40)).astype(np.float32))
        (folder / f"{name}.csv").write_text("x,y,z\n20,20,10\n18,22,9\n")
    out = tmp_path / "embedded.parquet"
    assert main(["embed", str(folder), "--out", str(out), "--pca"]) == 0
    project = open_project([out, folder])
    assert sorted(project.tomograms) == ["TS_01", "TS_02"] and len(project.particles) == 4
    assert project.tomograms["TS_02"].files["tomogram"].name == "TS_02_rec.mrc"
    assert "latent_0" in project.particles and project.outside("TS_01") is None


def test_a_tomogram_whose_header_disagrees_with_tomograms_star_is_named(relion5, tmp_path):
    """Reconstructed at another binning than tomograms.star says: only 'particles lie outside'
    was said."""
    import mrcfile

    folder = tmp_path / "binned"
    shutil.copytree(relion5, folder)
    [path] = [p for p in folder.rglob("*.mrc") if "TS_02" in p.name]
    with mrcfile.open(path, "r+") as mrc:
        mrc.voxel_size = 20.0
    with pytest.warns(UserWarning, match=r"its header gives 20 Å voxels, tomograms.star 10 Å"):
        project = open_project([folder / "optimisation_set.star"])
    assert project.tomograms["TS_02"].voxel_size == pytest.approx(10.0)


@pytest.mark.parametrize("optics", [True, False])
def test_pixel_picks_open_with_a_tomograms_star(relion5, tmp_path, capsys, optics):
    """Picks in pixels (RELION 4, Warp, pytom) of a RELION 5 project's tomograms, with its
    tomograms.star: refused before as 'cannot make a project', though the folder route read them.
    In unbinned 2.5 A pixels with optics saying so, or in the tomograms' 10 A voxels."""
    plain = open_project([relion5 / "optimisation_set.star"]).particles
    xyz = plain[XYZ].to_numpy() * (4 if optics else 1)
    picks = pd.DataFrame(
        {
            "rlnTomoName": [*plain[TOMO_NAME], "TS_09"],  # TS_09: not in tomograms.star
            **{f"rlnCoordinate{a.upper()}": [*xyz[:, i], 5.0] for i, a in enumerate(XYZ)},
        }
    )
    blocks = {"particles": picks}
    if optics:
        blocks = {"optics": pd.DataFrame({"rlnTomoTiltSeriesPixelSize": [2.5]})} | blocks
    star = tmp_path / "picks.star"
    starfile.write(blocks, star)
    sources = [str(relion5 / "tomograms.star"), str(star)]
    project = open_project([Path(s) for s in sources])
    np.testing.assert_allclose(project.particles[XYZ].to_numpy()[:-1], plain[XYZ], atol=1e-6)
    assert project.particles[TOMOGRAM_MISSING].tolist() == [False] * len(plain) + [True]
    assert project.tomograms["TS_09"].problem == f"not in {relion5 / 'tomograms.star'}"
    assert main(["project", *sources]) == 0
    assert "TS_09" in capsys.readouterr().out
    out = tmp_path / "listed.star"  # the listed tomograms' picks, as RELION 5 gives them
    write_project_table(project, project.particles[~project.particles[TOMOGRAM_MISSING]], out)
    back = open_project([relion5 / "tomograms.star", out]).particles
    np.testing.assert_allclose(back[XYZ], plain[XYZ], atol=1e-4)


def test_a_subtomogram_orientation_goes_into_a_dynamo_table_s_angles(tmp_path):
    """RELION 5 gives rlnAngle* in the frame of rlnTomoSubtomogramRot/Tilt/Psi and composes the
    two (A = A_sub · A_part); a Dynamo table kept rlnAngle* alone: 0 0 0 for a particle turned
    by its subtomogram angles."""
    from napari_affinity_vae.io.orientation import angles_to_matrices

    sub, own = np.array([[30.0, 60.0, 90.0], [0.0, 0.0, 0.0]]), np.array([[0, 0, 0], [10, 20, 30]])
    block = pd.DataFrame(
        {
            "rlnTomoName": ["TS_01"] * 2,
            **{f"rlnCenteredCoordinate{a}Angst": [0.0, 10.0] for a in "XYZ"},
            **{f"rlnTomoSubtomogram{n}": sub[:, i] for i, n in enumerate(("Rot", "Tilt", "Psi"))},
            **{f"rlnAngle{n}": own[:, i] for i, n in enumerate(("Rot", "Tilt", "Psi"))},
        }
    )
    starfile.write({"particles": block}, tmp_path / "r5.star")
    particles = read_particles(tmp_path / "r5.star", voxel_size=10.0, tomogram_shape=(40, 40, 40))
    back = read_particles(write_particles(particles, tmp_path / "out.tbl"))
    composed = angles_to_matrices(sub) @ angles_to_matrices(own)
    written = angles_to_matrices(back[["rot", "tilt", "psi"]].to_numpy())
    np.testing.assert_allclose(written, composed, atol=1e-6)


def test_boxes_are_cut_from_the_map_chosen_for_every_tomogram(tmp_path, relion5, capsys):
    """Embed and training cut boxes from each tomogram's first map (denoised) unless another
    kind is chosen (``--map``; the Project dock's Map box): then from that kind in every one,
    and a tomogram without it is named, not embedded from another kind."""
    import mrcfile

    root = relion_layout(tmp_path, relion5)
    for half1 in root.glob("Tomograms/job007/tomograms/*_half1.mrc"):
        with mrcfile.open(half1, mode="r+") as mrc:
            mrc.data[:] = -mrc.data  # unlike the denoised and half2 maps, copies of one map
    source = root / "Picks/job010/optimisation_set.star"
    project = open_project([source])
    assert "maps denoised, half1, half2 (--map)" in project.describe()
    assert project.boxes_from("TS_01").path.name == "rec_TS_01.mrc"
    project.map = "half1"
    assert project.boxes_from("TS_01").path.name == "rec_TS_01_half1.mrc"
    table = tmp_path / "picks.tbl"  # Dynamo's index names the maps chosen
    index = table.with_suffix(".doc")
    write_parts(
        {table: project.particles},
        DYNAMO,
        voxel_size=None,
        tomogram_shape=None,
        project=project,
        index=index,
    )
    listed = [Path(line.split()[1]).name for line in index.read_text().splitlines()]
    assert listed == [f"rec_TS_0{i}_half1.mrc" for i in (1, 2, 3)]
    with pytest.raises(TomogramFileError, match=r"TS_01: no reconstructed map \(it has denoised"):
        project.open("TS_01", "reconstructed")

    latents = {}
    for kind in (None, "half1", "half2"):
        out = tmp_path / f"{kind}.csv"
        chosen = ["--map", kind] if kind else []
        assert main(["embed", str(source), "--out", str(out), "--pca", *chosen]) == 0
        table = pd.read_csv(out)
        latents[kind] = table.filter(like="latent_").to_numpy()
        assert len(table) == 18 and np.isfinite(latents[kind]).all()
    np.testing.assert_allclose(latents["half2"], latents[None], atol=1e-5)  # the same voxels
    assert np.abs(latents["half1"] - latents[None]).max() > 0.1  # another map's
    out = tmp_path / "workers.csv"  # in Dask's worker processes too
    assert main(["embed", str(source), "--out", str(out), "--map", "half1", "--workers", "1"]) == 0
    on_workers = pd.read_csv(out).filter(like="latent_").to_numpy()
    np.testing.assert_allclose(on_workers, latents["half1"], atol=1e-5)
    out = tmp_path / "none.csv"
    assert main(["embed", str(source), "--out", str(out), "--pca", "--map", "reconstructed"]) == 2
    err = capsys.readouterr().err
    assert (
        "--map reconstructed: no tomogram has such a map (they have denoised, half1, half2)" in err
    )
    assert not out.exists()
    (root / "Tomograms/job007/tomograms/rec_TS_02_half1.mrc").write_bytes(b"not an MRC file")
    assert "its half1 map cannot be read (" in open_project([source]).describe()
    assert main(["embed", str(source), "--out", str(out), "--pca", "--map", "half1"]) == 3
    err = capsys.readouterr().err
    assert "TS_02 not embedded: its half1 map cannot be read (" in err  # not "no half1 map"
    assert len(pd.read_csv(out)) == 18  # TS_02's rows without latents
    half2 = root / "Tomograms/job007/tomograms/rec_TS_01_half2.mrc"
    with mrcfile.open(half2) as mrc:
        binned = mrc.data[::2, ::2, ::2].copy()  # binned otherwise: its particles do not fit
    with mrcfile.new(half2, overwrite=True) as mrc:
        mrc.set_data(binned)
    out = tmp_path / "binned.csv"
    assert main(["embed", str(source), "--out", str(out), "--pca", "--map", "half2"]) == 3
    err = capsys.readouterr().err
    size = " x ".join(map(str, binned.shape))
    assert f"TS_01 not embedded: {half2}: its half2 map is {size} voxels where its denoised" in err


@pytest.mark.parametrize("pixel", ["0", "nan"])
def test_a_tomogram_without_a_pixel_size_in_tomograms_star_takes_its_header_s(
    relion5, tmp_path, pixel
):
    """TS_02's pixel size 0 (or nan) was used: its particles were NaN, it could not be shown,
    and a RELION 5 export wrote NaN; its header knows 10 Å."""
    import mrcfile

    folder = tmp_path / "project"
    shutil.copytree(relion5, folder)
    star = starfile.read(folder / "tomograms.star", always_dict=True)
    table = star["global"]
    table["rlnTomoTiltSeriesPixelSize"] = table["rlnTomoTiltSeriesPixelSize"].astype(object)
    table.loc[table["rlnTomoName"] == "TS_02", "rlnTomoTiltSeriesPixelSize"] = pixel
    starfile.write(star, folder / "tomograms.star")
    before = open_project([relion5 / "optimisation_set.star"])
    with pytest.warns(UserWarning, match="TS_02 a pixel size of .* its header's 10 Å voxels"):
        project = open_project([folder / "optimisation_set.star"])
    assert project.tomograms["TS_02"].voxel_size == 10.0
    rows = project.rows_of("TS_02")
    placed = project.particles[list(AXES)].to_numpy()[rows]
    np.testing.assert_allclose(placed, before.particles[list(AXES)].to_numpy()[rows], atol=0.6)
    assert project.open("TS_02").voxel_size == 10.0
    write_relion5(project, project.particles, tmp_path / "out.star")
    assert starfile.read(tmp_path / "out.star", always_dict=True)["particles"].notna().all(None)

    with mrcfile.open(folder / "tomograms/TS_02.mrc", mode="r+") as mrc:
        mrc.voxel_size = 0.0  # nor its header
    project = open_project([folder / "optimisation_set.star"])
    assert "and its header gives no voxel size" in project.tomograms["TS_02"].problem
    with pytest.raises(ParticleFileError, match="the particles of TS_02 cannot be given"):
        write_relion5(project, project.particles, tmp_path / "out.star")


def test_a_csv_of_several_tomograms_is_read_once_and_split(tmp_path):
    """Every tomogram read the whole file again (100 tomograms of 200,000 particles took 40 s,
    napari frozen) and said again that its blank rows name no tomogram."""
    folder = tmp_path / "tomograms"
    folder.mkdir()
    for name in ("TS_1", "TS_2", "TS_3"):
        write_mrc(folder / f"{name}.mrc", np.zeros((16, 32, 32), np.float32))
    path = tmp_path / "particles.csv"
    rows = ["TS_1,1,5,6", "TS_2,4,5,6", "TS_3,7,5,6", "TS_2,10,5,6", ",20,5,6", "TS_1,13,5,6"]
    path.write_text("tomo_name,x,y,z\n" + "\n".join(rows) + "\n")  # one row names none
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        project = open_project([path, folder])
    blank = [str(w.message) for w in caught if "name no tomogram" in str(w.message)]
    assert blank == [f"{path}: 1 of 6 rows name no tomogram; they were left out"]
    assert project.counts().to_dict() == {"TS_1": 2, "TS_2": 2, "TS_3": 1}
    for name, xs in (("TS_1", [1, 13]), ("TS_2", [4, 10]), ("TS_3", [7])):
        assert project.particles.loc[project.rows_of(name), "x"].tolist() == xs
