"""A user's own molecule in the simulator: scaled like the built-in ones, placed with its ground
truth, in the affinity matrix, and clear errors for the files and names that cannot be used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import starfile
from scipy import ndimage

from conftest import write_mrc
from napari_affinity_vae.cli import main
from napari_affinity_vae.errors import InputFileError
from napari_affinity_vae.io.affinity import load_affinity
from napari_affinity_vae.io.particles import read_particles
from napari_affinity_vae.io.subtomograms import read_subtomograms
from napari_affinity_vae.schema import ANGLES, AXES, CLASS_NAME
from napari_affinity_vae.simulate.geometry import relion_matrix, rotate_map
from napari_affinity_vae.simulate.molecules import (
    extent,
    map_extent,
    molecule_map,
    user_molecule_map,
)
from napari_affinity_vae.simulate.tomogram import Simulation, class_maps, simulate_tomogram

CROSS_ARMS = np.array([[0, 0, 110], [0, 0, -60], [0, 90, 0], [-70, 0, 0]])  # z, y, x Angstrom


def cross_map(voxel_size: float = 5.0, box: int = 48) -> np.ndarray:
    """A shape none of the built-in classes has: an uneven three-dimensional cross of four arms
    18 A thick (60 to 110 A long), blurred, in arbitrary units on a non-zero solvent level."""
    grid = (np.indices((box,) * 3).reshape(3, -1).T - box // 2) * voxel_size
    inside = np.zeros(len(grid), dtype=bool)
    for arm in CROSS_ARMS:
        along = np.clip(grid @ arm / (arm @ arm), 0, 1)
        inside |= np.linalg.norm(grid - along[:, None] * arm, axis=1) <= 18
    blurred = ndimage.gaussian_filter(inside.reshape((box,) * 3).astype(np.float32), 1.0)
    return 250 * blurred + 40


@pytest.fixture(scope="module")
def cross(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cross")
    return write_mrc(folder / "cross.mrc", cross_map(), voxel_size=5.0)


@pytest.mark.parametrize("sign", [1, -1])
def test_a_map_in_arbitrary_units_is_scaled_like_a_built_in_one(tmp_path, sign):
    """A built-in map written on another scale, with an offset, solvent noise and (sign -1)
    protein dark, reads back as the built-in map: the same density, size and place."""
    dimer = molecule_map("elongated_dimer", 10.0)
    noise = np.random.default_rng(0).normal(0, 0.03, dimer.shape)
    path = write_mrc(tmp_path / "dimer.mrc", (sign * 37 * (dimer + noise) + 5).astype(np.float32))
    scaled = user_molecule_map(path, 10.0)
    assert scaled.shape == dimer.shape
    assert scaled.sum() == pytest.approx(dimer.sum(), rel=0.05)
    assert np.corrcoef(scaled.ravel(), dimer.ravel())[0, 1] > 0.99
    assert map_extent(scaled, 10.0) == pytest.approx(extent("elongated_dimer"), abs=10.0)
    centre = np.array(scaled.shape)[:, None, None, None] // 2
    far = (
        np.linalg.norm(np.indices(scaled.shape) - centre, axis=0)
        > extent("elongated_dimer") / 20 + 3
    )
    assert far.sum() > 1000 and not scaled[far].any()  # solvent noise away from it is gone


def test_a_users_molecule_is_simulated_beside_built_in_classes(cross):
    """A third of the particles are crosses, and the box at each particle matches its own
    class's map, turned by its ground-truth angles, better than another class's map (and a
    cross's better than the cross turned otherwise)."""
    settings = Simulation(
        shape=(64, 160, 160),
        particles=12,
        classes=("globular", "ribosome", "cross"),
        molecules={"cross": cross},
        snr=None,
        seed=3,
    )
    result = simulate_tomogram(settings, margin=16)
    counts = result.particles[CLASS_NAME].value_counts().to_dict()
    assert counts == {"globular": 4, "ribosome": 4, "cross": 4}
    assert 180 <= map_extent(result.references["cross"], 10.0) <= 250  # arms 110 + 60 A, blur
    maps = {"globular": molecule_map("globular"), "ribosome": molecule_map("ribosome")}
    maps["cross"] = user_molecule_map(cross, 10.0)
    for row in result.particles.itertuples(index=False):
        box = -_box_at(result.tomogram, np.array([getattr(row, a) for a in AXES]))  # protein dark
        turn = relion_matrix([getattr(row, a) for a in ANGLES])
        scores = {name: _correlation(box, volume, turn) for name, volume in maps.items()}
        name = getattr(row, CLASS_NAME)
        assert max(scores, key=scores.get) == name, scores
        if name == "cross":  # and in the orientation its ground truth says
            assert scores[name] > _correlation(box, maps[name], turn.T) + 0.1


def _box_at(tomogram: np.ndarray, centre: np.ndarray, size: int = 32) -> np.ndarray:
    start = np.round(centre).astype(int) - size // 2
    return tomogram[tuple(slice(s, s + size) for s in start)]


def _correlation(box: np.ndarray, volume: np.ndarray, turn: np.ndarray) -> float:
    """Correlation of ``box`` with ``volume`` turned by ``turn`` (x, y, z) about its centre."""
    turned = rotate_map(volume, turn, output_shape=box.shape)
    return float(np.corrcoef(box.ravel(), turned.ravel())[0, 1])


SMALL = ["--shape", "48", "96", "128", "--particles", "6", "--seed", "2", "--no-noise"]


def test_simulate_with_a_molecule_writes_its_truth_reference_and_affinity(tmp_path, cross):
    out = tmp_path / "sim"
    assert (
        main(
            ["simulate", str(out), *SMALL, "--classes", "globular", "--molecule", f"cross={cross}"]
        )
        == 0
    )
    truth = read_particles(out / "particles.star")
    assert truth[CLASS_NAME].value_counts().to_dict() == {"globular": 3, "cross": 3}
    reference = out / "references" / "cross.mrc"
    assert reference.is_file()
    affinity = load_affinity(out / "affinity.csv")
    assert list(affinity.columns) == ["globular", "cross"]
    assert affinity.loc["cross", "cross"] == 1.0 and affinity.loc["globular", "cross"] < 1.0


def test_subtomograms_and_projects_of_a_users_molecule_alone(tmp_path, cross):
    """``--classes`` with no names: the user's molecules only, in training sets (with boxes
    where the picker finds them too) and in projects."""
    own = ["--classes", "--molecule", f"cross={cross}", "--molecule", f"cross2={cross}"]
    out = tmp_path / "boxes"
    subtomograms = ["--subtomograms", "3", "--box", "24", "--at-picks"]
    assert main(["simulate", str(out), *subtomograms, *own]) == 0
    _, table = read_subtomograms(out)
    truth = table[table["centred_on"] == "particle"]
    assert truth[CLASS_NAME].value_counts().to_dict() == {"cross": 3, "cross2": 3}
    assert (table["centred_on"] == "pick").sum() >= 3  # the picker finds them at their size
    affinity = load_affinity(out / "affinity.csv")
    assert affinity.loc["cross", "cross2"] == pytest.approx(1.0, abs=1e-3)  # the same map
    project = tmp_path / "project"
    assert main(["simulate", str(project), *SMALL, "--tomograms", "2", *own[:3]]) == 0
    truth = starfile.read(project / "particles.star")["particles"]
    assert set(truth[CLASS_NAME]) == {"cross"} and len(truth) == 12


def test_a_molecule_that_cannot_be_used_is_refused_naming_its_file(tmp_path, cross, capsys):
    bad = tmp_path / "bad.mrc"
    bad.write_bytes(b"not a map")
    blank = write_mrc(tmp_path / "blank.mrc", np.zeros((16, 16, 16), np.float32))
    out = tmp_path / "sim"
    for molecule, told in (
        (f"cup={bad}", f"{bad}: "),
        (f"cup={blank}", f"{blank}: the map holds no density"),
        (f"ribosome={cross}", f"{cross}: ribosome is a built-in class"),
        (f"my/cup={cross}", f"{cross}: 'my/cup' is no class name"),
    ):
        assert main(["simulate", str(out), *SMALL, "--molecule", molecule]) == 2
        assert told in capsys.readouterr().err
        assert not out.exists()  # nothing half-written
    twice = ["--molecule", f"cup={cross}", "--molecule", f"cup={blank}"]
    assert main(["simulate", str(out), *SMALL, *twice]) == 2
    assert f"{blank}: class cup is {cross} already" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["simulate", str(out), "--molecule", str(cross)])
    assert f"expected NAME=PATH (cup=cup.mrc), got '{cross}'" in capsys.readouterr().err
    assert main(["simulate", str(out), "--classes"]) == 2
    assert "nothing to simulate" in capsys.readouterr().err


def test_a_class_neither_built_in_nor_given_is_refused(cross):
    with pytest.raises(ValueError, match=r"unknown classes \['cup'\]"):
        class_maps(Simulation(classes=("globular", "cup"), molecules={"cross": cross}))
    with pytest.raises(InputFileError, match=r"cross\.mrc: globular is a built-in class"):
        class_maps(Simulation(classes=("globular",), molecules={"globular": cross}))
