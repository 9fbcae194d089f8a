"""Particle coordinate files: round trips for every format, RELION 5 centring, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import starfile

from napari_affinity_vae.errors import ParticleFileError
from napari_affinity_vae.io.particles import read_particles, tomogram_names, write_particles
from napari_affinity_vae.io.star import star_layout
from napari_affinity_vae.io.tables import dynamo_to_relion, relion_to_dynamo
from napari_affinity_vae.operations.hand_edits import hand_picked

SHAPE = (20, 30, 40)
COORDS = ["z", "y", "x"]


def assert_same_coordinates(a: pd.DataFrame, b: pd.DataFrame, decimals: int = 4) -> None:
    np.testing.assert_allclose(a[COORDS].to_numpy(), b[COORDS].to_numpy(), atol=10**-decimals)


def assert_same_rotations(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Euler triplets may differ at gimbal lock; the rotations they describe must not."""
    from scipy.spatial.transform import Rotation

    ra = Rotation.from_euler("ZYZ", a[["rot", "tilt", "psi"]].to_numpy(), degrees=True)
    rb = Rotation.from_euler("ZYZ", b[["rot", "tilt", "psi"]].to_numpy(), degrees=True)
    assert np.all((ra.inv() * rb).magnitude() < 1e-3)


def test_relion4_round_trip_keeps_angles_and_extra_columns(tmp_path, particles):
    path = write_particles(particles.assign(tomo_name="TS_01"), tmp_path / "p.star")
    block = starfile.read(path, always_dict=True)["particles"]
    assert {"rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ", "rlnTomoName"} <= set(block)
    np.testing.assert_allclose(block["rlnCoordinateX"], particles["x"])  # x is x, in pixels
    back = read_particles(path, tomogram_shape=SHAPE)
    assert_same_coordinates(back, particles)
    assert_same_rotations(back, particles)
    assert list(back["score"]) == list(particles["score"])
    assert list(back["cluster"]) == list(particles["cluster"])
    assert set(back["tomo_name"]) == {"TS_01"}


def test_relion5_centred_coordinates_hand_computed(tmp_path):
    """A 100 x 200 x 300 (z, y, x) tomogram at 5 A: centre at voxel (50, 100, 150)."""
    particles = pd.DataFrame({"z": [50.0, 0.0], "y": [100.0, 10.0], "x": [160.0, 299.0]})
    path = write_particles(
        particles,
        tmp_path / "r5.star",
        voxel_size=5.0,
        tomogram_shape=(100, 200, 300),
        star_flavour="relion5",
    )
    block = starfile.read(path)
    np.testing.assert_allclose(block["rlnCenteredCoordinateXAngst"], [50.0, 745.0])
    np.testing.assert_allclose(block["rlnCenteredCoordinateYAngst"], [0.0, -450.0])
    np.testing.assert_allclose(block["rlnCenteredCoordinateZAngst"], [0.0, -250.0])
    back = read_particles(path, voxel_size=5.0, tomogram_shape=(100, 200, 300))
    assert_same_coordinates(back, particles)
    assert back.attrs["voxel_size"] == 5.0


def test_relion5_needs_the_tomogram(tmp_path):
    starfile.write(
        pd.DataFrame({f"rlnCenteredCoordinate{a}Angst": [0.0] for a in "XYZ"}), tmp_path / "c.star"
    )
    with pytest.raises(ParticleFileError, match="shape and voxel size"):
        read_particles(tmp_path / "c.star")


def test_relion_origin_shifts_are_applied(tmp_path):
    table = pd.DataFrame(
        {
            "rlnCoordinateX": [10.0],
            "rlnCoordinateY": [20.0],
            "rlnCoordinateZ": [5.0],
            "rlnOriginXAngst": [20.0],
            "rlnOriginYAngst": [0.0],
            "rlnOriginZAngst": [-10.0],
        }
    )
    starfile.write({"particles": table}, tmp_path / "o.star")
    back = read_particles(tmp_path / "o.star", voxel_size=10.0)
    assert (back.loc[0, "x"], back.loc[0, "y"], back.loc[0, "z"]) == (8.0, 20.0, 6.0)


def test_binned_coordinates_with_pixel_size(tmp_path, particles):
    """RELION 4 coordinates in unbinned 2.5 A pixels for a 10 A tomogram (bin 4)."""
    path = write_particles(particles, tmp_path / "bin.star", voxel_size=10.0, pixel_size=2.5)
    np.testing.assert_allclose(starfile.read(path)["rlnCoordinateX"], particles["x"] * 4)
    back = read_particles(path, voxel_size=10.0, pixel_size=2.5)
    assert_same_coordinates(back, particles)


def _relion4_tomo_star(path, groups=(1, 1, 2), sizes=(1.875, 1.875)):
    """A RELION 4 tomography particles.star: coordinates in unbinned tilt-series pixels, whose
    size data_optics gives per optics group (beside the pseudo-subtomograms' own pixel)."""
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": list(range(1, len(sizes) + 1)),
            "rlnOpticsGroupName": [f"opticsGroup{i + 1}" for i in range(len(sizes))],
            "rlnTomoTiltSeriesPixelSize": list(sizes),
            "rlnTomoSubtomogramBinning": [4.0] * len(sizes),
            "rlnImagePixelSize": [7.5] * len(sizes),
        }
    )
    block = pd.DataFrame(
        {
            "rlnTomoName": ["TS_01"] * 3,
            "rlnCoordinateX": [40.0, 80.0, 60.0],
            "rlnCoordinateY": [8.0, 16.0, 24.0],
            "rlnCoordinateZ": [4.0, 12.0, 20.0],
            "rlnOpticsGroup": list(groups),
        }
    )
    starfile.write({"optics": optics, "particles": block}, path)
    return path


def test_relion4_tomography_coordinates_are_scaled_from_tilt_series_pixels(tmp_path):
    """1.875 A tilt-series pixels on a 7.5 A tomogram (bin 4): a quarter voxel per pixel, each
    particle by its optics group's pixel; written back beside the same optics, unbinned again."""
    path = _relion4_tomo_star(tmp_path / "particles.star", sizes=(1.875, 3.75))
    frame = {"voxel_size": 7.5, "tomogram_shape": (20, 30, 40)}
    particles = read_particles(path, **frame)
    assert particles[COORDS].to_numpy().tolist() == [[1, 2, 10], [3, 4, 20], [10, 12, 30]]
    _, blocks = star_layout(path)
    out = write_particles(particles, tmp_path / "out.star", star_blocks=blocks, **frame)
    written = starfile.read(out)
    assert written["optics"]["rlnTomoTiltSeriesPixelSize"].tolist() == [1.875, 3.75]
    columns = [f"rlnCoordinate{axis}" for axis in "XYZ"]  # RELION reads them where they were
    pd.testing.assert_frame_equal(
        written["particles"][columns], starfile.read(path)["particles"][columns]
    )
    with pytest.raises(ParticleFileError, match=r"particles.star: .*binning given 2: leave"):
        read_particles(path, voxel_size=7.5, pixel_size=3.75)  # the user's binning, not the file's


def test_relion4_tilt_series_pixels_that_cannot_be_placed_are_named(tmp_path):
    path = _relion4_tomo_star(tmp_path / "particles.star")
    with pytest.raises(ParticleFileError, match=r"particles.star: .*1.875 A .*voxel size"):
        read_particles(path)  # no tomogram to scale to
    stray = _relion4_tomo_star(tmp_path / "stray.star", groups=(1, 3, 2), sizes=(1.875, 3.75))
    with pytest.raises(ParticleFileError, match=r"stray.star: particle 2's rlnOpticsGroup"):
        read_particles(stray, voxel_size=7.5)
    # one pixel size in data_optics: a group it lacks was read in that size, without a word
    absent = _relion4_tomo_star(tmp_path / "absent.star", groups=(1, 1, 2), sizes=(1.875,))
    with pytest.raises(ParticleFileError, match=r"absent.star: particle 3's rlnOpticsGroup is"):
        read_particles(absent, voxel_size=7.5)


def test_a_hand_pick_among_relion4_particles_is_written_in_their_optics_group(tmp_path):
    """RELION looks up every particle's optics group: a point added by hand beside one imported
    particle takes its group; among particles of two groups it cannot be written, and the error
    names the user's file, not the one staged beside it."""
    path = _relion4_tomo_star(tmp_path / "particles.star", groups=(2, 1, 2), sizes=(1.875, 3.75))
    frame = {"voxel_size": 7.5, "tomogram_shape": (20, 30, 40)}
    one = read_particles(path, **frame).iloc[[0]]
    one = one.assign(rlnClassNumber=3, rlnTomoParticleId=7, rlnRandomSubset=2)
    features = hand_picked(pd.concat([one, one]).reset_index(drop=True), np.array([1]))
    three = hand_picked(pd.concat([one] * 3).reset_index(drop=True), np.array([2]))
    assert pd.isna(three.loc[2, "rlnClassNumber"])  # of no RELION class, unlike its group
    assert three.loc[2, "rlnOpticsGroup"] == 2
    written = write_particles(features.assign(x=[10.0, 5.0]), tmp_path / "one.star", **frame)
    back = starfile.read(written)["particles"]
    assert back["rlnOpticsGroup"].tolist() == [2, 2]
    assert back["rlnCoordinateX"].tolist() == [20.0, 10.0]  # 3.75 A pixels, half a voxel
    # RELION reads no "nan" as an integer: a new id, the emptier half set, class 0
    assert back["rlnTomoParticleId"].tolist() == [7, 8]
    assert back["rlnRandomSubset"].tolist() == [2, 1]
    assert back["rlnClassNumber"].tolist() == [3, 0]
    mixed = read_particles(path, **frame)
    mixed.loc[3] = mixed.loc[0].to_dict() | {"rlnOpticsGroup": np.nan}
    with pytest.raises(
        ParticleFileError,
        match=r"/mixed.star: particle 4 \(added by hand in TS_01\?\) has no rlnOpticsGroup",
    ):
        write_particles(mixed, tmp_path / "mixed.star", **frame)
    assert not list(tmp_path.glob("*mixed*"))


def test_only_the_general_and_optics_blocks_travel_with_the_particles(tmp_path):
    """Another tomogram's block in the same file stays out of a file written of this one's."""
    one = pd.DataFrame({"rlnCoordinateX": [4.0], "rlnCoordinateY": [4.0], "rlnCoordinateZ": [4.0]})
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnVoltage": [300.0]})
    path = tmp_path / "two.star"
    starfile.write({"optics": optics, "particles": one, "TS_02": one * 2}, path)
    written = write_particles(read_particles(path), tmp_path / "out.star")
    assert list(starfile.read(written, always_dict=True)) == ["optics", "particles"]


def test_warp_and_pytom_files_name_their_tomograms_by_micrograph(tmp_path):
    """Warp and pytom-match-pick name a particle's tomogram only in rlnMicrographName: two
    tomograms in one file are told apart by its file stem, never merged."""
    warp = tmp_path / "warp.star"
    warp.write_text(
        "data_\n\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n_rlnCoordinateZ #3\n"
        "_rlnAngleRot #4\n_rlnAngleTilt #5\n_rlnAnglePsi #6\n_rlnMicrographName #7\n"
        "10.0 20.0 5.0 0.0 90.0 0.0 TS_01.tomostar\n"
        "30.0 12.0 7.0 0.0 90.0 0.0 TS_02.tomostar\n"
        "11.0 21.0 6.0 0.0 90.0 0.0 TS_01.tomostar\n"
    )
    assert tomogram_names(warp) == ["TS_01", "TS_02"]
    with pytest.raises(ParticleFileError, match=r"warp.star: holds particles of 2 tomograms"):
        read_particles(warp)
    first = read_particles(warp, tomo_name="TS_01")
    assert first[COORDS].to_numpy().tolist() == [[5, 20, 10], [6, 21, 11]]
    out = write_particles(first, tmp_path / "back.star")
    assert read_particles(out)["tomo_name"].tolist() == ["TS_01", "TS_01"]


def test_warptools_fractional_coordinates_need_the_tomogram_and_scale_by_its_size(tmp_path):
    """WarpTools 2 template matching: coordinates are fractions of the tomogram's size along
    each axis; a file in pixels near the corner (all within 0 to 1 but none between) is not."""
    warp = tmp_path / "TS_01.star"
    frame = {
        "rlnCoordinateX": [0.25, 0.75],
        "rlnCoordinateY": [0.5, 0.0],
        "rlnCoordinateZ": [0.5, 0.9],
    }
    starfile.write({"particles": pd.DataFrame(frame)}, warp)
    with pytest.raises(ParticleFileError, match=r"TS_01.star: holds WarpTools coordinates"):
        read_particles(warp)
    binned = read_particles(warp, tomogram_shape=(20, 30, 40))
    assert binned[COORDS].to_numpy().tolist() == [[10, 15, 10], [18, 0, 30]]
    corner = {
        "rlnCoordinateX": [0.0, 1.0],
        "rlnCoordinateY": [1.0, 1.0],
        "rlnCoordinateZ": [0.0, 1.0],
    }
    gap = pd.DataFrame(frame)
    gap.loc[2] = [np.nan, 0.5, 0.5]  # a row without its x: skipped, the rest still fractions
    starfile.write({"particles": gap}, warp)
    with pytest.warns(UserWarning, match="1 of 3 particles have missing"):
        skipped = read_particles(warp, tomogram_shape=(20, 30, 40), drop_nan=True)
    assert skipped[COORDS].to_numpy().tolist() == [[10, 15, 10], [18, 0, 30]]
    starfile.write({"particles": pd.DataFrame(corner)}, warp)
    assert read_particles(warp, tomogram_shape=(20, 30, 40))[COORDS].to_numpy().tolist() == [
        [0, 1, 0],
        [1, 1, 1],
    ]


def test_joined_star_files_are_refused_rather_than_read_in_part(tmp_path):
    one = pd.DataFrame({"rlnTomoName": ["TS_01"], "rlnCoordinateX": [1.0]})
    one[["rlnCoordinateY", "rlnCoordinateZ"]] = 1.0
    starfile.write({"particles": one}, tmp_path / "a.star")
    starfile.write({"particles": one.assign(rlnTomoName="TS_02")}, tmp_path / "b.star")
    joined = tmp_path / "joined.star"
    joined.write_text((tmp_path / "a.star").read_text() + (tmp_path / "b.star").read_text())
    with pytest.raises(ParticleFileError, match=r"joined.star: names block\(s\) data_particles"):
        tomogram_names(joined)


def test_a_star_file_saved_as_latin1_is_refused_saying_so(tmp_path):
    """A comment line with an accented letter saved as Latin-1: the reader found no block, and
    the error said the file had no coordinate columns."""
    one = pd.DataFrame({"rlnTomoName": ["TS_01"], "rlnCoordinateX": [1.0]})
    one[["rlnCoordinateY", "rlnCoordinateZ"]] = 1.0
    starfile.write({"particles": one}, tmp_path / "good.star")
    latin = tmp_path / "latin.star"
    latin.write_bytes("# Überprüft\n".encode("latin-1") + (tmp_path / "good.star").read_bytes())
    with pytest.raises(ParticleFileError, match=r"latin.star: is not UTF-8 text: line 1 holds"):
        read_particles(latin)
    latin.write_bytes("# Überprüft\n".encode() + (tmp_path / "good.star").read_bytes())
    assert len(read_particles(latin)) == 1  # as UTF-8, read


def test_csv_files_as_excel_saves_them_are_read(tmp_path):
    """Excel on Windows saves a CSV as Windows-1252, its "Unicode text" as tab-separated UTF-16,
    and may begin a CSV with a line naming its separator: each was refused (a codec's message,
    or a header of one column)."""
    rows = "x;y;z;class_name\n1,5;2;3;Überprüft\n4;5;6;ATP-Synthase\n"
    expected = [[3.0, 2.0, 1.5], [6.0, 5.0, 4.0]]
    files = {
        "windows.csv": rows.encode("cp1252"),
        "unicode.csv": rows.replace(";", "\t").encode("utf-16"),
        "sep.csv": ("sep=;\n" + rows).encode(),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        table = read_particles(tmp_path / name)
        assert table[["z", "y", "x"]].to_numpy().tolist() == expected, name
        assert table["class_name"].tolist() == ["Überprüft", "ATP-Synthase"], name


def test_a_spreadsheet_csv_keeps_tomogram_names_as_written(tmp_path):
    """A tomogram named 01 stays 01 (as a project's own CSV writes it); a spreadsheet saved with
    semicolons reads as one saved with commas."""
    path = tmp_path / "picks.csv"
    path.write_text("x;y;z;tomo_name\n1,5;2;3;01\n4;5;6;02\n".replace("1,5", "1.5"))
    assert tomogram_names(path) == ["01", "02"]
    particles = read_particles(path, tomo_name="01")
    assert particles[COORDS].to_numpy().tolist() == [[3, 2, 1.5]]
    assert particles["tomo_name"].tolist() == ["01"]
    path.write_text("x;y;z;score\n1,5;2;3;0,25\n4;5;6,75;1\n")  # decimal commas, as saved in
    particles = read_particles(path)  # French or German
    assert particles[COORDS].to_numpy().tolist() == [[3, 2, 1.5], [6.75, 5, 4]]
    assert particles["score"].tolist() == [0.25, 1.0]
    path.write_text("x\ty\tz\tscore\tnote\n1.5\t2\t3\t0.25\tslices 3,4\n")  # points, and
    assert read_particles(path)["score"].tolist() == [0.25]  # a comma in a note


@pytest.mark.parametrize("suffix", [".coords", ".tbl"])
def test_a_byte_order_mark_is_no_number(tmp_path, particles, suffix):
    """Windows tools start text files with one; CSV and STAR already read them."""
    path = write_particles(particles, tmp_path / f"p{suffix}")
    marked = tmp_path / f"marked{suffix}"
    marked.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert_same_coordinates(read_particles(marked), read_particles(path))


def test_rows_naming_no_tomogram_are_left_out_with_a_count(tmp_path):
    path = tmp_path / "half.csv"
    path.write_text("x,y,z,tomo_name\n1,2,3,TS_01\n4,5,6,\n7,8,9,TS_01\n1,1,1, \n")
    assert tomogram_names(path) == ["TS_01"]  # no blank tomogram to choose
    for tomo_name in (None, "TS_01"):
        with pytest.warns(UserWarning, match="2 of 4 rows name no tomogram; they were left out"):
            particles = read_particles(path, tomo_name=tomo_name)
        assert particles["x"].tolist() == [1.0, 7.0]
    path.write_text("x,y,z,tomo_name\n1,2,3,\n4,5,6,\n")  # a column of blanks names none
    assert tomogram_names(path) == [] and len(read_particles(path)) == 2


@pytest.mark.parametrize("suffix", [".star", ".csv"])  # CSV: as `avae embed PROJECT` writes
def test_select_tomogram_by_name(tmp_path, particles, suffix):
    both = pd.concat([particles.assign(tomo_name="TS_01"), particles.assign(tomo_name="TS_02")])
    both.loc[both["tomo_name"] == "TS_02", "x"] += 0.5
    path = write_particles(both.reset_index(drop=True), tmp_path / f"two{suffix}")
    assert tomogram_names(path) == ["TS_01", "TS_02"]
    with pytest.raises(ParticleFileError, match=r"2 tomograms.*TS_01, TS_02.*--tomo-name"):
        read_particles(path)
    second = read_particles(path, tomo_name="TS_02")
    assert len(second) == 5 and second["x"].iloc[0] == pytest.approx(particles["x"].iloc[0] + 0.5)
    with pytest.raises(ParticleFileError, match="no particles of tomogram 'TS_09'"):
        read_particles(path, tomo_name="TS_09")


def test_csv_round_trip_any_column_order(tmp_path, particles):
    path = tmp_path / "p.csv"
    particles[["score", "z", "x", "y", "cluster"]].rename(columns={"x": "X"}).to_csv(
        path, index=False
    )
    back = read_particles(path, tomogram_shape=SHAPE)
    assert_same_coordinates(back, particles)
    assert list(back["cluster"]) == list(particles["cluster"])
    out = write_particles(back, tmp_path / "out.csv")
    assert out.read_text().splitlines()[0].startswith("x,y,z,")
    assert_same_coordinates(read_particles(out), particles)


def test_dynamo_round_trip_and_columns(tmp_path, particles):
    path = write_particles(particles, tmp_path / "p.tbl")
    table = np.loadtxt(path)
    assert table.shape == (5, 35)
    xyz = particles[["x", "y", "z"]].to_numpy()
    np.testing.assert_allclose(table[:, 23:26], xyz + 1, atol=1e-4)  # Dynamo counts from 1
    back = read_particles(path, tomogram_shape=SHAPE)
    assert_same_coordinates(back, particles)
    assert_same_rotations(back, particles)


def test_dynamo_shifts_are_added(tmp_path):
    row = np.zeros(35)
    row[[3, 4, 5]] = [1.5, -2.0, 0.25]
    row[[23, 24, 25]] = [10, 20, 5]
    np.savetxt(tmp_path / "s.tbl", row[None])
    back = read_particles(tmp_path / "s.tbl")
    assert (back.loc[0, "x"], back.loc[0, "y"], back.loc[0, "z"]) == (10.5, 17.0, 4.25)


def test_dynamo_euler_conversion_known_case():
    """Test vector of the eulerangles package: rot = narot - 90, tilt = tilt, psi = tdrot + 90."""
    relion = dynamo_to_relion(np.array([[-47.273, 1.1777, -132.3]]))
    np.testing.assert_allclose(relion, [[137.7, 1.1777, 42.727]], atol=1e-6)
    angles = np.array([[10.0, 40.0, -70.0], [120.0, 100.0, 45.0]])
    np.testing.assert_allclose(relion_to_dynamo(dynamo_to_relion(angles)), angles, atol=1e-8)


def test_tomotwin_round_trip(tmp_path, particles):
    path = write_particles(particles, tmp_path / "p.coords")
    assert path.read_text().splitlines()[0].split() == ["3", "2", "1"]  # x y z
    assert_same_coordinates(read_particles(path, tomogram_shape=SHAPE), particles, decimals=2)


def test_no_coordinate_columns(tmp_path):
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ParticleFileError, match=r"bad\.csv: no coordinate columns"):
        read_particles(tmp_path / "bad.csv")
    starfile.write({"particles": pd.DataFrame({"rlnAngleRot": [1.0]})}, tmp_path / "bad.star")
    with pytest.raises(ParticleFileError, match=r"no coordinate columns.*rlnCoordinateX"):
        read_particles(tmp_path / "bad.star")


def test_non_numeric_values(tmp_path):
    (tmp_path / "t.csv").write_text("x,y,z\n1,2,3\n4,five,6\n")
    with pytest.raises(ParticleFileError, match=r"non-numeric.*column y.*row 2.*'five'"):
        read_particles(tmp_path / "t.csv")
    (tmp_path / "t.coords").write_text("1 2 3\n4 five 6\n")
    with pytest.raises(ParticleFileError, match="non-numeric"):
        read_particles(tmp_path / "t.coords")


def test_nan_rows_reported_and_dropped_only_if_asked(tmp_path):
    (tmp_path / "n.csv").write_text("x,y,z\n1,2,3\nnan,2,3\n4,,6\n7,8,9\n")
    with pytest.raises(ParticleFileError, match="2 of 4 particles have missing"):
        read_particles(tmp_path / "n.csv")
    with pytest.warns(UserWarning, match="2 of 4 .* dropped"):
        kept = read_particles(tmp_path / "n.csv", drop_nan=True)
    assert list(kept["x"]) == [1.0, 7.0]


def test_picks_outside_the_tomogram(tmp_path, particles):
    outside = particles.copy()
    outside.loc[[1, 3], "x"] = [40.0, -3.0]
    path = write_particles(outside, tmp_path / "o.csv")
    with pytest.raises(ParticleFileError, match=r"2 of 5 particles lie outside.*\(20, 30, 40\)"):
        read_particles(path, tomogram_shape=SHAPE)
    with pytest.warns(UserWarning, match="2 of 5"):
        assert len(read_particles(path, tomogram_shape=SHAPE, drop_outside=True)) == 3


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(ParticleFileError, match="unknown coordinate format"):
        read_particles(tmp_path / "p.xyz")
    with pytest.raises(ParticleFileError, match="no such file"):
        read_particles(tmp_path / "p.star")


def test_failed_write_leaves_existing_file_and_no_partial_file(tmp_path, particles):
    path = write_particles(particles, tmp_path / "keep.star")
    before = path.read_bytes()
    with pytest.raises(ParticleFileError, match="shape and voxel size"):
        write_particles(particles, path, star_flavour="relion5")  # no tomogram given
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.star"]


def test_empty_particle_set_round_trips(tmp_path):
    empty = pd.DataFrame({"z": [], "y": [], "x": []})
    for suffix in (".star", ".csv", ".tbl", ".coords", ".mod"):
        path = write_particles(empty, tmp_path / f"e{suffix}")
        assert len(read_particles(path)) == 0, suffix


def test_written_files_are_ordinary_files(tmp_path, particles):
    import os

    umask = os.umask(0)
    os.umask(umask)
    path = write_particles(particles, tmp_path / "p.csv")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def _dynamo_rows(tomograms: list[int]) -> np.ndarray:
    """A Dynamo table of one particle per entry, x = 10 + row, in the given tomograms."""
    table = np.zeros((len(tomograms), 35))
    table[:, 0] = np.arange(1, len(tomograms) + 1)
    table[:, 19] = tomograms
    table[:, 23] = 10 + np.arange(len(tomograms))
    table[:, 24:26] = 5
    return table


def test_dynamo_table_of_several_tomograms_is_never_merged(tmp_path):
    path = tmp_path / "three.tbl"
    np.savetxt(path, _dynamo_rows([1, 2, 2, 3, 1]))
    assert tomogram_names(path) == ["1", "2", "3"]
    with pytest.raises(ParticleFileError) as error:
        read_particles(path)
    message = str(error.value)
    assert "three.tbl" in message and "3 tomograms (1, 2, 3); choose one" in message
    assert "--tomo-name" in message
    second = read_particles(path, tomo_name="2")
    assert list(second["x"]) == [10.0, 11.0] and set(second["tomo_name"]) == {"2"}
    assert list(read_particles(path, tomo_name="03")["x"]) == [12.0]  # a number, padded or not
    with pytest.raises(ParticleFileError, match=r"no particles of tomogram '7' \(found 1, 2, 3\)"):
        read_particles(path, tomo_name="7")


def test_dynamo_tomogram_number_round_trips_as_tomo_name(tmp_path, particles):
    path = write_particles(particles.assign(tomo_name="4"), tmp_path / "four.tbl")
    assert set(np.loadtxt(path)[:, 19]) == {4.0}
    back = read_particles(path, tomogram_shape=SHAPE)
    assert set(back["tomo_name"]) == {"4"} and "tomo_number" not in back
    assert tomogram_names(path) == ["4"]
    named = write_particles(particles.assign(tomo_name="TS_01"), tmp_path / "named.tbl")
    assert set(np.loadtxt(named)[:, 19]) == {1.0}  # a name Dynamo cannot hold: tomogram 1
    assert set(np.loadtxt(write_particles(particles, tmp_path / "none.tbl"))[:, 19]) == {1.0}


def test_tomogram_names_of_formats_without_them(tmp_path, particles):
    assert tomogram_names(write_particles(particles, tmp_path / "p.csv")) == []
    assert tomogram_names(tmp_path / "missing.tbl") == []


def test_a_star_of_both_coordinate_flavours_round_trips_and_duplicates_are_named(tmp_path):
    """RELION 5 files may keep rlnCoordinateX/Y/Z (unbinned pixels) beside the centred ones."""
    both = pd.DataFrame(
        {
            "rlnTomoName": ["tomo"],
            "rlnCoordinateX": [84.0],
            "rlnCoordinateY": [54.0],
            "rlnCoordinateZ": [36.0],
            "rlnCenteredCoordinateXAngst": [100.0],
            "rlnCenteredCoordinateYAngst": [-50.0],
            "rlnCenteredCoordinateZAngst": [20.0],
        }
    )
    starfile.write({"particles": both}, tmp_path / "both.star")
    frame = {"voxel_size": 10.0, "tomogram_shape": (32, 64, 64)}
    particles = read_particles(tmp_path / "both.star", **frame)
    assert particles[COORDS].iloc[0].tolist() == [18.0, 27.0, 42.0]  # the centred ones
    out = write_particles(particles, tmp_path / "out.star", **frame)
    header = [line.split()[0] for line in out.read_text().splitlines() if line.startswith("_")]
    assert header == ["_rlnTomoName", "_rlnCoordinateX", "_rlnCoordinateY", "_rlnCoordinateZ"]
    assert_same_coordinates(read_particles(out, **frame), particles)
    twice = tmp_path / "twice.star"
    twice.write_text(out.read_text().replace("_rlnTomoName #1", "_rlnCoordinateX #1"))
    with pytest.raises(ParticleFileError, match=r"twice.star: .*rlnCoordinateX twice"):
        read_particles(twice, **frame)


def test_a_pick_added_beside_one_particle_takes_only_its_tomogram():
    features = pd.DataFrame({"tag": [7.0, 7.0], "tomo_name": ["TS_01", "TS_01"]})
    features["rlnImageName"] = ["sub_7.mrc", "sub_7.mrc"]  # napari's copy for the added row 1
    made = hand_picked(features, np.array([1]))
    assert made.iloc[0].tolist() == [7.0, "TS_01", "sub_7.mrc"]  # the particle itself stays
    assert pd.isna(made.loc[1, "tag"]) and pd.isna(made.loc[1, "rlnImageName"])
    assert made.loc[1, "tomo_name"] == "TS_01"


def test_a_pick_in_a_tomogram_without_particles_takes_no_other_tomogram_s_file():
    """Its optics group is the one the project's particles share; the file name of another
    tomogram (Warp's rlnMicrographName) would place it in that tomogram."""
    from napari_affinity_vae.operations.hand_edits import added

    table = pd.DataFrame({"z": [1.0], "y": [2.0], "x": [3.0], "tomo_name": ["TS_01"]})
    table["rlnMicrographName"], table["rlnOpticsGroup"] = "TS_01.tomostar", 1
    grown = added(table, np.zeros(0, dtype=int), np.array([[4.0, 5, 6]]), "TS_02")
    assert grown.loc[1, "tomo_name"] == "TS_02" and grown.loc[1, "rlnOpticsGroup"] == 1
    assert pd.isna(grown.loc[1, "rlnMicrographName"])


def test_particles_placed_from_angstrom_say_where_those_count_from(tmp_path):
    """What moves with a corrected voxel size: RELION 5 centred Ångström (from the centre) and
    RELION 4 pixels of a size the optics give (from voxel 0); pixels with origin shifts alone
    stay, their shift the only Ångström in them."""
    from napari_affinity_vae.schema import ANGSTROM_ORIGIN

    block = {"rlnCoordinateX": [8.0], "rlnCoordinateY": [8.0], "rlnCoordinateZ": [8.0]}
    shifted = tmp_path / "shifted.star"
    starfile.write({"particles": pd.DataFrame(block | {"rlnOriginXAngst": [10.0]})}, shifted)
    assert ANGSTROM_ORIGIN not in read_particles(shifted, voxel_size=10.0).attrs
    optics = tmp_path / "optics.star"
    tilt = pd.DataFrame({"rlnOpticsGroup": [1], "rlnTomoTiltSeriesPixelSize": [5.0]})
    starfile.write({"optics": tilt, "particles": pd.DataFrame(block)}, optics)
    assert read_particles(optics, voxel_size=10.0).attrs[ANGSTROM_ORIGIN] == (0.0, 0.0, 0.0)
    centred = write_particles(
        pd.DataFrame({"z": [5.0], "y": [5.0], "x": [5.0]}),
        tmp_path / "r5.star",
        voxel_size=10.0,
        tomogram_shape=(10, 20, 30),
        star_flavour="relion5",
    )
    origin = read_particles(centred, voxel_size=10.0, tomogram_shape=(10, 20, 30)).attrs
    assert origin[ANGSTROM_ORIGIN] == (5.0, 10.0, 15.0)


def test_relion_integer_labels_are_written_as_integers_beside_a_hand_pick(tmp_path):
    """A hand pick has no half set: the others' stay integers RELION reads (1, not 1.000000),
    the pick joins the emptier half (RELION reads no ``nan`` as an integer); a real number
    stays one, missing."""
    particles = pd.DataFrame({"z": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.0], "x": [1.0, 2.0, 3.0]})
    particles["rlnRandomSubset"] = [2.0, 2.0, np.nan]
    particles["rlnAutopickFigureOfMerit"] = [3.0, 4.0, np.nan]
    lines = write_particles(particles, tmp_path / "picks.star").read_text().splitlines()
    labels = [line.split()[0] for line in lines if line.startswith("_rln")]
    rows = [line.split() for line in lines if line[:1].isdigit() or line.startswith("nan")]
    column = {name: [row[i] for row in rows] for i, name in enumerate(labels)}
    assert column["_rlnRandomSubset"] == ["2", "2", "1"]
    assert column["_rlnAutopickFigureOfMerit"] == ["3.000000", "4.000000", "nan"]


def test_relion30_origins_in_pixels_are_applied_and_not_written_again(tmp_path):
    """RELION 3.0 refinements give origins in the coordinates' pixels (``rlnOriginX``)."""
    table = pd.DataFrame(
        {
            "rlnCoordinateX": [10.0, 12.0],
            "rlnCoordinateY": [20.0, 22.0],
            "rlnCoordinateZ": [5.0, 6.0],
            "rlnOriginX": [2.0, 0.0],
            "rlnOriginY": [0.0, -1.5],
            "rlnOriginZ": [-1.0, 0.0],
        }
    )
    starfile.write({"particles": table}, tmp_path / "o.star")
    back = read_particles(tmp_path / "o.star")
    np.testing.assert_allclose(back[["x", "y", "z"]], [[8.0, 20.0, 6.0], [12.0, 23.5, 6.0]])
    written = starfile.read(write_particles(back, tmp_path / "w.star"))
    assert "rlnOriginX" not in written  # the position already holds it: not subtracted twice
    np.testing.assert_allclose(written["rlnCoordinateX"], [8.0, 12.0])


def test_one_particle_star_without_loop_is_read(tmp_path):
    (tmp_path / "one.star").write_text(
        "data_particles\n\n_rlnTomoName 01\n_rlnCoordinateX 100\n_rlnCoordinateY 50\n"
        "_rlnCoordinateZ 20\n_rlnAngleRot 30\n"
    )
    back = read_particles(tmp_path / "one.star")
    assert (back.loc[0, "x"], back.loc[0, "y"], back.loc[0, "z"]) == (100.0, 50.0, 20.0)
    assert back.loc[0, "rot"] == 30.0 and back.loc[0, "tomo_name"] == "01"


def test_a_trailing_comma_on_csv_rows_does_not_shift_the_columns(tmp_path):
    (tmp_path / "t.csv").write_text("x,y,z,score\n40,60,20,0.9,\n70,90,30,0.8,\n")
    back = read_particles(tmp_path / "t.csv")
    np.testing.assert_allclose(back[["x", "y", "z"]], [[40, 60, 20], [70, 90, 30]])
    np.testing.assert_allclose(back["score"], [0.9, 0.8])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("x,X,y,z\n1,2,3,4\n", r"2 columns could be x \(x, X\)"),
        ("x,y,z,x\n1,2,3,4\n", r"2 columns could be x"),  # the same name twice
        ("x,y,z,rot,tilt,psi\n1,2,3,10,20,30\n4,5,6,abc,0,0\n", r"1 non-numeric.*rot.*row 2"),
    ],
)
def test_a_csv_whose_columns_cannot_be_read_is_named(tmp_path, text, problem):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(ParticleFileError, match=rf"t\.csv: {problem}"):
        read_particles(tmp_path / "t.csv")


def test_a_dynamo_row_without_a_tomogram_number_is_named(tmp_path):
    rows = np.zeros((2, 35))
    rows[:, 19] = [1, np.nan]
    rows[:, 23:26] = 5
    np.savetxt(tmp_path / "t.tbl", rows)
    with pytest.raises(ParticleFileError, match=r"t\.tbl: 1 row.*tomogram number.*row 2"):
        read_particles(tmp_path / "t.tbl")


def test_a_column_name_with_spaces_is_one_star_label(tmp_path):
    (tmp_path / "t.csv").write_text("x,y,z,my score\n1,2,3,0.5\n")
    star = write_particles(read_particles(tmp_path / "t.csv"), tmp_path / "t.star")
    assert read_particles(star)["my_score"].tolist() == [0.5]


def test_columns_that_would_be_one_star_label_are_refused(tmp_path):
    (tmp_path / "t.csv").write_text("x,y,z,my score,my_score\n1,2,3,0.5,0.6\n")
    particles = read_particles(tmp_path / "t.csv")
    with pytest.raises(ParticleFileError, match=r"t\.star: columns named alike.*my_score"):
        write_particles(particles, tmp_path / "t.star")
    assert not (tmp_path / "t.star").exists()


def test_a_star_file_of_two_coordinate_blocks_is_refused_not_half_read(tmp_path):
    rows = pd.DataFrame(
        {"rlnCoordinateX": [1.0, 2.0], "rlnCoordinateY": 3.0, "rlnCoordinateZ": 4.0}
    )
    path = tmp_path / "two.star"
    starfile.write({"first": rows, "second": pd.concat([rows] * 6)}, path)
    with pytest.raises(ParticleFileError, match=r"2 blocks \(data_first \(2 rows\), data_second"):
        read_particles(path)
    starfile.write({"first": rows, "particles": pd.concat([rows] * 6)}, path, overwrite=True)
    assert len(read_particles(path)) == 12  # data_particles is RELION's own


def test_csv_keeps_a_column_s_digits(tmp_path):
    """Six significant digits made IDs 1234567 and 1234568 one ID, and 21534.25 21534.2."""
    table = pd.DataFrame(
        {
            "z": [1.0, 2.0],
            "y": [3.0, 4.0],
            "x": [21534.25, 6.0],
            "particle_id": [1234567.0, 1234568.0],
        }
    )
    back = read_particles(write_particles(table, tmp_path / "ids.csv", voxel_size=10.0))
    assert back["particle_id"].tolist() == [1234567, 1234568]
    assert back["x"].tolist() == [21534.25, 6.0]


def test_names_pandas_takes_for_missing_values_stay_names_in_a_csv(tmp_path):
    """A label, class or tomogram named NA, None, null or N/A is a name; an empty cell is none,
    and a number column's nan is NaN."""
    names = ["NA", "None", "null", "N/A", None]
    table = pd.DataFrame(
        {"z": [1.0, 2, 3, 4, 5], "y": 2.0, "x": 3.0, "label": names, "class_name": names}
    )
    table["tomo_name"], table["score"] = "NA", [0.5, np.nan, 1.0, np.nan, 2.0]
    path = write_particles(table, tmp_path / "names.csv")
    assert tomogram_names(path) == ["NA"]
    back = read_particles(path, tomo_name="NA")
    for column in ("label", "class_name"):
        assert back[column].iloc[:4].tolist() == names[:4] and pd.isna(back[column].iloc[4])
    assert back["tomo_name"].tolist() == ["NA"] * 5
    np.testing.assert_array_equal(back["score"], table["score"])
    path.write_text("x,y,z,score\n1,2,3,nan\n4,5,6,NaN\n7,8,9,NA\n")
    assert read_particles(path)["score"].isna().all()


def test_a_text_tag_column_is_no_dynamo_tag_and_the_particles_are_numbered(tmp_path):
    """Another tool's tags (names such as A1) are not Dynamo's integer tags."""
    path = tmp_path / "picks.csv"
    path.write_text("x,y,z,tag\n4,3,2,A1\n5,4,3,B2\n6,5,4,7\n")
    table = np.loadtxt(write_particles(read_particles(path), tmp_path / "p.tbl"))
    assert table[:, 0].tolist() == [1, 2, 3]
    path.write_text("x,y,z,tag\n4,3,2,12\n5,4,3,\n6,5,4,10\n")  # Dynamo's tags are kept
    table = np.loadtxt(write_particles(read_particles(path), tmp_path / "q.tbl"))
    assert table[:, 0].tolist() == [12, 13, 10]


@pytest.mark.parametrize("suffix", [".tbl", ".coords"])
def test_dynamo_and_tomotwin_keep_a_coordinate_s_digits_as_csv_does(tmp_path, suffix):
    table = pd.DataFrame({"z": [123.456789], "y": [2345.678912], "x": [4000.123456]})
    back = read_particles(write_particles(table, tmp_path / f"p{suffix}"))
    np.testing.assert_allclose(back[COORDS], table[COORDS], rtol=0, atol=1e-9)


def test_a_folder_given_as_a_coordinate_file_is_named_a_folder(tmp_path):
    (tmp_path / "picks.star").mkdir()
    with pytest.raises(ParticleFileError) as error:
        read_particles(tmp_path / "picks.star")
    assert str(error.value) == (
        f"{tmp_path / 'picks.star'}: is a folder, not a coordinate file: choose a .star, .tbl, "
        ".coords, .csv, .mod file"
    )


def test_points_saved_by_napari_itself_are_read_as_z_y_x_voxels(tmp_path):
    """napari's File > Save of a Points layer writes index, axis-0, axis-1, axis-2 (z, y, x of
    the layer's data); the Import button said "no coordinate columns"."""
    from napari_builtins.io import napari_write_points

    points = np.array([[5.0, 6.0, 7.0], [8.0, 9.0, 10.0]])
    path = napari_write_points(str(tmp_path / "clicked.csv"), points, {})
    read = read_particles(path, voxel_size=10.0, tomogram_shape=(20, 30, 40))
    np.testing.assert_allclose(read[["z", "y", "x"]], points)
    assert "index" not in read and "axis-0" not in read


def test_points_added_by_hand_to_relion5_particles_get_names_of_their_own(tmp_path):
    """RELION extracts each particle to a file named after ``rlnTomoParticleName``: two points
    added by hand written as ``nan`` would both be extracted to ``nan_stack2d.mrcs``."""
    particles = pd.DataFrame(
        {
            "rlnTomoName": ["TS_01", "TS_01", "TS_02"],
            "rlnTomoParticleName": ["TS_01/1", "TS_01/7", "TS_02/3"],
            "rlnCenteredCoordinateXAngst": [0.0, 100.0, 0.0],
            "rlnCenteredCoordinateYAngst": [0.0, 50.0, 0.0],
            "rlnCenteredCoordinateZAngst": [0.0, -20.0, 0.0],
        }
    )
    starfile.write({"particles": particles}, tmp_path / "particles.star")
    frame = {"voxel_size": 10.0, "tomogram_shape": (50, 100, 120)}
    read = read_particles(tmp_path / "particles.star", **frame, tomo_name="TS_01")
    both = pd.concat([read, read.iloc[[0, 0]]], ignore_index=True)
    features = hand_picked(both.drop(columns=list("zyx")), np.array([2, 3]))
    both = pd.concat([both[list("zyx")], features], axis=1)
    written = write_particles(both, tmp_path / "out.star", star_flavour="relion5", **frame)
    names = starfile.read(written, always_dict=True)["particles"]["rlnTomoParticleName"].tolist()
    assert names == ["TS_01/1", "TS_01/7", "TS_01/8", "TS_01/9"]
