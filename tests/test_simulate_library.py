"""Molecule classes, users' references, the affinity search and its CSV files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from conftest import blob_map, write_mrc
from napari_affinity_vae.errors import InputFileError
from napari_affinity_vae.io.affinity import load_affinity, save_affinity
from napari_affinity_vae.simulate import affinity
from napari_affinity_vae.simulate.geometry import rotate_map
from napari_affinity_vae.simulate.molecules import (
    ASYMMETRIC,
    MOLECULES,
    extent,
    load_reference,
    molecule_map,
    reference_box,
    reference_maps,
)


def test_library_has_named_classes_of_realistic_size():
    assert len(MOLECULES) >= 8
    assert len(ASYMMETRIC) >= len(MOLECULES) / 2
    for name in MOLECULES:
        assert 100 <= extent(name) <= 350, name
    maps = reference_maps(voxel_size=10.0)
    assert {m.shape for m in maps.values()} == {(32, 32, 32)}
    assert all(0.8 < m.max() < 1.2 for m in maps.values())  # a voxel full of protein is 1


def test_maps_are_stable_and_follow_the_voxel_size():
    np.testing.assert_array_equal(molecule_map("ribosome"), molecule_map("ribosome"))
    coarse, fine = molecule_map("proteasome", 10.0), molecule_map("proteasome", 5.0)
    assert fine.sum() * 5.0**3 == pytest.approx(coarse.sum() * 10.0**3, rel=0.05)  # same volume


@pytest.mark.parametrize("name", ASYMMETRIC)
def test_asymmetric_classes_have_no_symmetry_axis(name):
    """No rotation 40 degrees or more from the identity brings the map back onto itself."""
    volume = molecule_map(name)
    assert affinity.best_correlation(volume, volume, min_angle=40) < 0.96


def test_a_symmetric_class_does_match_itself_turned():
    volume = molecule_map("proteasome")
    assert affinity.best_correlation(volume, volume, min_angle=40) > 0.98


def test_random_rotation_scores_at_least_0_9_against_itself():
    volume = molecule_map("atp_synthase")
    turned = rotate_map(volume, Rotation.random(random_state=7).as_matrix(), shift=[0.4, -1.3, 2])
    assert affinity.best_correlation(volume, turned) >= 0.9


def test_small_maps_find_their_copies_turned_or_not():
    """At 20^3 voxels (an EMDB map at tomogram voxel sizes) the search finds the identity and
    rotations between grid points, and tells two maps apart."""
    cropped = blob_map(0)  # fills its box, as a tightly cropped map does
    assert affinity.best_correlation(cropped, cropped.copy()) >= 0.99
    inside = blob_map(1, spread=0.2, blobs=5)  # room to turn within the box
    turn = Rotation.from_euler("ZYZ", [37, 71, 113], degrees=True).as_matrix()
    assert affinity.best_correlation(inside, rotate_map(inside, turn)) >= 0.95
    assert affinity.best_correlation(cropped, blob_map(2)) < 0.7


def test_affinity_matrix_scaled_with_unit_diagonal(tmp_path):
    maps = reference_maps(["proteasome", "chaperonin", "globular"])
    scaled, raw = affinity.affinity_matrix(maps)
    assert list(scaled.columns) == ["proteasome", "chaperonin", "globular"]
    np.testing.assert_allclose(np.diag(scaled), 1.0)
    np.testing.assert_allclose(scaled, 2 * raw - 1)  # each pair by its own correlation
    np.testing.assert_allclose(scaled, scaled.T)
    assert raw.loc["proteasome", "chaperonin"] > raw.loc["proteasome", "globular"]  # barrels alike
    path = save_affinity(scaled, tmp_path / "affinity.csv")
    assert path.read_text().splitlines()[0] == "proteasome,chaperonin,globular"
    pd.testing.assert_frame_equal(load_affinity(path), scaled, atol=1e-5)


def test_a_pairs_affinity_is_the_same_whichever_map_is_given_first():
    """The search turned the second map only: the ribosome and the proteasome scored 0.72 one
    way round and 0.69 the other, so renaming a class (the dock sorts them) moved its
    affinities."""
    maps = reference_maps(["ribosome", "proteasome"])
    _, forward = affinity.affinity_matrix(maps)
    _, backward = affinity.affinity_matrix(dict(reversed(list(maps.items()))))
    assert forward.loc["ribosome", "proteasome"] == backward.loc["ribosome", "proteasome"]
    ribosome, proteasome = maps.values()
    one_way = [affinity.best_correlation(ribosome, proteasome)]
    one_way.append(affinity.best_correlation(proteasome, ribosome))
    assert forward.loc["ribosome", "proteasome"] == max(one_way) > min(one_way)


def test_an_affinity_csv_saved_by_excel_keeps_its_class_names(tmp_path):
    path = tmp_path / "affinity.csv"  # "CSV UTF-8" in Excel starts with a byte-order mark
    path.write_bytes("ribosome,proteasome\r\n1,0.2\r\n0.2,1\r\n".encode("utf-8-sig"))
    assert list(load_affinity(path).columns) == ["ribosome", "proteasome"]


def test_similar_classes_keep_a_high_affinity_whatever_the_other_classes():
    """The fallback affinity for training on built-in classes: the two barrels (best correlation
    0.80) stay alike alone, beside an unrelated class, or among all nine."""
    barrels = ["proteasome", "chaperonin"]
    alone = affinity.library_affinity(barrels, 10.0)
    assert alone[0, 1] > 0.5
    with_globular = affinity.library_affinity([*barrels, "globular"], 10.0)
    assert with_globular[0, 1] == pytest.approx(alone[0, 1])
    assert with_globular[0, 2] < 0 < with_globular[0, 1]  # the unrelated class below 0
    every = pd.DataFrame(affinity.library_affinity(list(MOLECULES), 10.0), MOLECULES, MOLECULES)
    assert every.loc["proteasome", "chaperonin"] == pytest.approx(alone[0, 1])


def test_affinity_of_the_builtin_classes_is_symmetric_and_bounded():
    matrix = affinity.library_affinity(list(MOLECULES), 10.0)
    np.testing.assert_array_equal(np.diag(matrix), 1.0)
    np.testing.assert_array_equal(matrix, matrix.T)
    off = matrix[~np.eye(len(matrix), dtype=bool)]
    assert off.min() > -1 and off.max() < 1
    assert abs(np.median(off)) < 0.1  # a typical pair of different molecules near 0
    anti = affinity.scale_affinity(np.array([[1.0, -0.3], [-0.3, 1.0]]))
    np.testing.assert_array_equal(anti, [[1.0, -1.0], [-1.0, 1.0]])  # clipped to [-1, 1]


def test_shipped_correlations_match_a_fresh_search():
    shipped = pd.read_csv(affinity.SHIPPED_CORRELATIONS, index_col=0)
    assert list(shipped.columns) == list(MOLECULES)
    maps = reference_maps(voxel_size=10.0)
    for a, b in (("ribosome", "atp_synthase"), ("chaperonin", "single_ring")):
        fresh = affinity.pair_correlation(maps[a], maps[b])
        assert fresh == pytest.approx(shipped.loc[a, b], abs=1e-5)


def test_bad_affinity_files(tmp_path):
    (tmp_path / "ragged.csv").write_text("a,b\n1,0.5\n")
    with pytest.raises(InputFileError, match="not square"):
        load_affinity(tmp_path / "ragged.csv")
    (tmp_path / "range.csv").write_text("a,b\n1,2\n2,1\n")
    with pytest.raises(InputFileError, match=r"\[-1, 1\]"):
        load_affinity(tmp_path / "range.csv")


def test_mrc_reference_is_resampled_to_the_working_voxel_size(tmp_path):
    fine = molecule_map("tetrahedral", 5.0)
    path = write_mrc(tmp_path / "tetra.mrc", fine, voxel_size=5.0)
    loaded = load_reference(path, voxel_size=10.0, box=32)
    assert loaded.shape == (32, 32, 32)
    assert affinity.best_correlation(molecule_map("tetrahedral", 10.0), loaded) > 0.9


def _write_pdb(path, atoms: np.ndarray):
    lines = [
        f"ATOM  {i + 1:5d}  CA  ALA A{i + 1:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C"
        for i, (x, y, z) in enumerate(atoms)
    ]
    path.write_text("\n".join([*lines, "END"]) + "\n")
    return path


def test_atomic_model_becomes_density(tmp_path):
    rng = np.random.default_rng(0)
    atoms = rng.normal(0, 15, (400, 3)) + np.array([50.0, 60.0, 70.0])
    path = _write_pdb(tmp_path / "model.pdb", atoms)
    density = load_reference(path, voxel_size=10.0, box=24)
    centre = np.array(np.unravel_index(np.argmax(density), density.shape))
    assert np.all(np.abs(centre - 12) <= 2)  # centred on the model
    assert density.sum() == pytest.approx(400 * 6 / 6.7 * 17 / 1000, rel=0.05)


def test_an_atomic_model_is_read_once_while_the_file_is_unchanged(tmp_path, monkeypatch):
    import gemmi

    reads = []
    read = gemmi.read_structure
    monkeypatch.setattr(gemmi, "read_structure", lambda p: reads.append(p) or read(p))
    path = _write_pdb(tmp_path / "model.pdb", np.random.default_rng(1).normal(0, 15, (300, 3)))
    box = reference_box(path, voxel_size=10.0)  # as avae affinity sizes the maps' common box
    assert load_reference(path, voxel_size=10.0).shape == (box,) * 3 and len(reads) == 1
    _write_pdb(path, np.random.default_rng(2).normal(0, 40, (300, 3)))  # edited: read again
    assert reference_box(path, voxel_size=10.0) > box and len(reads) == 2


def test_unreadable_reference(tmp_path):
    bad = tmp_path / "model.cif"
    bad.write_text("not a model")
    with pytest.raises(InputFileError, match=r"model\.cif"):
        load_reference(bad, voxel_size=10.0)
    with pytest.raises(InputFileError, match=r"MRC map or a PDB"):
        load_reference(tmp_path / "notes.txt", voxel_size=10.0)


@pytest.mark.parametrize(
    "text",
    [
        "data_x\n",  # a block and nothing else
        "data_rod\nloop_\n_atom_site.group_PDB\n_atom_site.type_symbol\n_atom_site.Cartn_x\n"
        "_atom_site.Cartn_y\n_atom_site.Cartn_z\nATOM C 0.5 -0.5 -57.4\nATOM C 0.4 -2.1 -58.3\n",
    ],
)
def test_an_mmcif_without_a_model_is_named_not_a_traceback(tmp_path, text):
    path = tmp_path / "empty.cif"
    path.write_text(text)
    with pytest.raises(InputFileError, match=r"empty\.cif: no model found in it"):
        load_reference(path, voxel_size=10.0)


def test_a_map_without_a_voxel_size_says_how_to_give_it_one(tmp_path):
    """Its header's 0 cannot be overridden by --voxel-size (the tomogram's or the search's)."""
    from napari_affinity_vae.io.tomogram import write_tomogram
    from napari_affinity_vae.simulate.molecules import reference_box

    path = write_tomogram(tmp_path / "ribosome.mrc", molecule_map("ribosome", 10.0), 0.0)
    for read in (load_reference, reference_box):
        with pytest.raises(InputFileError, match=r"ribosome\.mrc: the map's header gives no voxe"):
            read(path, voxel_size=10.0)


def test_affinity_of_a_map_without_a_voxel_size_says_once_how_to_give_it_one(tmp_path, capsys):
    from napari_affinity_vae.cli import main
    from napari_affinity_vae.io.tomogram import write_tomogram

    path = write_tomogram(tmp_path / "ribosome.mrc", molecule_map("ribosome", 10.0), 0.0)
    other = write_tomogram(tmp_path / "globular.mrc", molecule_map("globular", 10.0), 10.0)
    out = tmp_path / "affinity.csv"
    assert main(["affinity", str(path), str(other), "--out", str(out)]) == 2
    said = capsys.readouterr().err
    assert "the map's header gives no voxel size" in said and "--voxel-size" not in said
