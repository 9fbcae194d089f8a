"""The options of ``avae pick`` and ``avae embed``, each checked against what it should change;
bad values of every command's options, refused in one line before any work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from napari_affinity_vae.cli import main
from napari_affinity_vae.io.particles import read_particles, write_particles
from napari_affinity_vae.io.tomogram import open_tomogram, write_tomogram
from napari_affinity_vae.model.bundled import load_bundled
from napari_affinity_vae.model.checkpoint import load_checkpoint, save_checkpoint
from napari_affinity_vae.model.embedding import embed
from napari_affinity_vae.schema import AXES, EMBEDDING, TOMO_NAME, latent_columns
from napari_affinity_vae.simulate.tomogram import Simulation, simulate_tomogram

SMALL = Simulation(shape=(64, 160, 160), particles=14, snr=0.5, seed=3, name="sim")


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> tuple[Path, Path]:
    """A small simulated tomogram and its picks (STAR), written once for the module."""
    folder = tmp_path_factory.mktemp("sim")
    result = simulate_tomogram(SMALL)
    tomogram = write_tomogram(folder / "sim.mrc", result.tomogram, 10.0)
    picks = folder / "picks.star"
    assert main(["pick", str(tomogram), "--diameter", "100", "300", "--out", str(picks)]) == 0
    assert len(read_particles(picks)) >= 8
    return tomogram, picks


def _embedded(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    assert main(["embed", *args, "--out", str(out)]) == 0
    return out


def _latent(path: Path) -> np.ndarray:
    table = read_particles(path)
    return table[latent_columns(table)].to_numpy()


@pytest.mark.parametrize("suffix", [".csv", ".tbl", ".coords", ".mod"])
def test_pick_writes_each_format_with_the_same_particles(sim, tmp_path, suffix):
    tomogram, star = sim
    out = tmp_path / f"picks{suffix}"
    assert main(["pick", str(tomogram), "--diameter", "100", "300", "--out", str(out)]) == 0
    back = read_particles(out, voxel_size=10.0, tomogram_shape=SMALL.shape)
    expected = read_particles(star)
    np.testing.assert_allclose(back[list(AXES)], expected[list(AXES)], atol=0.51)


def test_pick_inverted_finds_on_white_protein_what_it_finds_on_black(sim, tmp_path):
    tomogram, star = sim
    white = write_tomogram(tmp_path / "white.mrc", -open_tomogram(tomogram).data, 10.0)
    out = tmp_path / "white.star"
    args = ["pick", str(white), "--diameter", "100", "300", "--out", str(out)]
    assert main([*args, "--inverted"]) == 0
    expected = read_particles(star)[list(AXES)].to_numpy()
    np.testing.assert_allclose(read_particles(out)[list(AXES)], expected, atol=1e-3)
    assert main([*args, "--overwrite"]) == 0  # not inverted: the picks are elsewhere
    assert len(read_particles(out)) != len(expected) or not np.allclose(
        read_particles(out)[list(AXES)], expected, atol=1
    )


@pytest.mark.parametrize("suffix", [".csv", ".tbl", ".coords", ".mod"])
def test_embed_reads_and_writes_each_format(sim, tmp_path, suffix):
    tomogram, star = sim
    path = tmp_path / f"picks{suffix}"
    coords = write_particles(read_particles(star), path, voxel_size=10, tomogram_shape=SMALL.shape)
    out = _embedded(tmp_path, f"embedded{suffix}", str(tomogram), str(coords), "--pca")
    reference = _embedded(tmp_path, "embedded.star", str(tomogram), str(star), "--pca")
    if suffix == ".csv":  # the one format with room for every column
        np.testing.assert_allclose(_latent(out), _latent(reference), atol=1e-4)
    back = read_particles(out, voxel_size=10.0, tomogram_shape=SMALL.shape)
    np.testing.assert_allclose(back[list(AXES)], read_particles(reference)[list(AXES)], atol=0.51)


def test_embed_tomo_name_chooses_one_tomograms_particles(sim, tmp_path, capsys):
    tomogram, star = sim
    ours = read_particles(star)
    other = ours.head(3).assign(**{TOMO_NAME: "other"})
    both = write_particles(
        pd.concat([ours, other], ignore_index=True),
        tmp_path / "both.star",
        voxel_size=10.0,
    )
    args = [str(tomogram), str(both)]
    assert main(["embed", *args, "--out", str(tmp_path / "x.star")]) == 2
    assert "2 tomograms" in capsys.readouterr().err
    out = _embedded(tmp_path, "sim.star", *args, "--tomo-name", "sim", "--pca")
    table = read_particles(out)
    assert len(table) == len(ours) and set(table[TOMO_NAME]) == {"sim"}
    out = _embedded(tmp_path, "other.star", *args, "--tomo-name", "other", "--pca")
    np.testing.assert_allclose(read_particles(out)[list(AXES)], other[list(AXES)], atol=1e-3)


def test_embed_tomo_name_with_a_file_that_names_no_tomogram_is_refused(sim, tmp_path, capsys):
    """A .coords file (IMOD) names no tomogram: --tomo-name was ignored, so a user who thought
    it chose particles got all of them."""
    tomogram, star = sim
    coords = write_particles(read_particles(star), tmp_path / "picks.coords", voxel_size=10.0)
    args = [str(tomogram), str(coords), "--tomo-name", "TS_01", "--pca"]
    out = tmp_path / "x.csv"
    assert main(["embed", *args, "--out", str(out)]) == 2
    said = capsys.readouterr().err
    assert f"{coords}: no particles of tomogram 'TS_01' (the file names no tomograms)" in said
    assert not out.exists()


def test_embed_and_project_take_binning_for_a_tomogram_with_its_coordinates(sim, tmp_path, capsys):
    """RELION 4 coordinates in unbinned pixels of a tomogram binned by 4, as RELION writes them."""
    import starfile

    tomogram, star = sim
    picks = starfile.read(star)
    unbinned = tmp_path / "unbinned.star"
    columns = [f"rlnCoordinate{a}" for a in "XYZ"]
    starfile.write({"particles": picks.assign(**{c: picks[c] * 4 for c in columns})}, unbinned)
    args = [str(tomogram), str(unbinned)]
    assert main(["project", *args]) == 2
    assert "lie outside the tomogram" in capsys.readouterr().err  # --binning forgotten
    assert main(["project", *args, "--binning", "4"]) == 0
    assert f"{len(picks)} particles, 64 x 160 x 160 voxels" in capsys.readouterr().out
    out = _embedded(tmp_path, "binned.star", *args, "--binning", "4", "--pca")
    reference = _embedded(tmp_path, "reference.star", str(tomogram), str(star), "--pca")
    np.testing.assert_allclose(_latent(out), _latent(reference), atol=1e-4)
    written = starfile.read(out)  # in the input's unbinned pixels again
    np.testing.assert_allclose(written[columns], picks[columns] * 4, atol=1e-3)


def test_embed_model_uses_the_checkpoint_given(sim, tmp_path):
    tomogram, star = sim
    model, card = load_bundled()
    torch.manual_seed(0)
    with torch.no_grad():
        for weights in model.parameters():
            weights.add_(0.05 * torch.randn_like(weights))
    weights, _ = save_checkpoint(model, card, tmp_path / "mine")
    out = _embedded(tmp_path, "mine.star", str(tomogram), str(star), "--model", str(weights))
    mine, mine_card = load_checkpoint(weights)
    expected = embed(open_tomogram(tomogram), read_particles(star), mine, mine_card)
    np.testing.assert_allclose(_latent(out), expected[latent_columns(expected)], atol=1e-4)
    bundled = _embedded(tmp_path, "bundled.star", str(tomogram), str(star))
    assert np.abs(_latent(out) - _latent(bundled)).max() > 0.01


def test_embed_inverted_sees_white_protein_as_the_model_expects(sim, tmp_path):
    tomogram, star = sim
    white = write_tomogram(tmp_path / "white.mrc", -open_tomogram(tomogram).data, 10.0)
    black = _embedded(tmp_path, "black.star", str(tomogram), str(star), "--pca")
    inverted = _embedded(tmp_path, "inv.star", str(white), str(star), "--pca", "--inverted")
    np.testing.assert_allclose(_latent(inverted), _latent(black), atol=1e-4)
    plain = _embedded(tmp_path, "plain.star", str(white), str(star), "--pca")
    assert np.abs(_latent(plain) - _latent(black)).max() > 0.1


def test_embed_projections_differ_and_each_is_seeded(sim, tmp_path):
    tomogram, star = sim

    def layout(name: str, *args: str) -> np.ndarray:
        path = _embedded(tmp_path, name, str(tomogram), str(star), *args)
        return read_particles(path)[list(EMBEDDING)].to_numpy()

    tsne = layout("tsne.star", "--tsne")
    np.testing.assert_allclose(layout("tsne2.star", "--tsne"), tsne)
    assert not np.allclose(layout("pca.star", "--pca"), tsne, atol=1e-3)
    umap = layout("umap.star")  # UMAP by default
    assert not np.allclose(umap, tsne, atol=1e-3)
    np.testing.assert_allclose(layout("umap2.star", "--umap"), umap)
    assert not np.allclose(layout("umap3.star", "--seed", "1"), umap, atol=1e-3)


def test_embed_error_adds_the_reconstruction_error_and_changes_no_latent(sim, tmp_path):
    tomogram, star = sim
    plain = read_particles(_embedded(tmp_path, "plain.star", str(tomogram), str(star), "--pca"))
    out = _embedded(tmp_path, "error.star", str(tomogram), str(star), "--pca", "--error")
    with_error = read_particles(out)
    assert "reconstruction_error" not in plain  # the decoder did not run
    assert (with_error["reconstruction_error"] > 0).all()
    np.testing.assert_allclose(_latent(out), plain[latent_columns(plain)], atol=1e-6)


def _refusal(argv: list[str], capsys) -> str:
    """The one error line of a refused command line (exit code 2, no traceback)."""
    try:
        code = main(argv)
    except SystemExit as exit_info:  # refused by argparse, before any work
        code = exit_info.code
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


BAD_NUMBERS = [  # (command line after OUT's option, the error's words)
    ("pick T --diameter -10 50", "argument --diameter: must be a positive number, got -10"),
    ("pick T --diameter 0 50", "argument --diameter: must be a positive number, got 0"),
    ("pick T --diameter 80 50", "argument --diameter: MIN must be at most MAX, got 80 50"),
    ("pick T --diameter 50 80 --margin -5", "argument --margin: must be a number of at least 0"),
    ("pick T --diameter 50 80 --max-count -1", "argument --max-count: must be a whole number"),
    ("pick T --templates M --angular-step 0", "argument --angular-step: must be degrees above 0"),
    ("pick T --templates M --angular-step 181", "at most 180, got 181"),
    (
        "pick T --templates M --binning 0",
        "argument --binning: must be a whole number of at least 1",
    ),
    ("pick T --templates M --binning -2", "argument --binning: must be a whole number"),
    ("pick T --templates M --lowpass 0", "argument --lowpass: must be a positive number, got 0"),
    ("pick T --templates M --tilt-range 60 -60", "argument --tilt-range: MIN must be below MAX"),
    ("pick T --templates M --tilt-range 60 60", "argument --tilt-range: MIN must be below MAX"),
    ("pick T --templates M --tilt-range -100 60", "MIN and MAX must lie from -90 to 90"),
    ("pick T --templates M --score-map s.npy", "argument --score-map: an MRC file is written"),
    ("pick T --diameter 60 120 --score-map s.mrc", "--score-map is the template search's"),
    ("pick T --diameter 60 120 --binning 3 --no-wedge", "--no-wedge, --binning are the templ"),
    ("pick T --diameter 60 120 --templates M", "(blob picker) or --templates, not both"),
    ("embed T T --clusters 0", "argument --clusters: must be a whole number of at least 1"),
    ("train F --batch-size 0", 'argument --batch-size: must be "auto" or a whole number of at'),
    ("train F --batch-size big", 'argument --batch-size: must be "auto" or a whole number of'),
    ("train F --box 0", "argument --box: must be a whole number of at least 1, got 0"),
    ("evaluate --train F --test F --baseline-epochs 0", "argument --baseline-epochs: must be a"),
    ("evaluate --train F --test F --baseline-epochs -3", "argument --baseline-epochs: must be"),
    ("train F --box 33", "--box 33 is not a multiple of 8 (2 ** depth): give 8, 16, 24, 32"),
    ("train F --box 24 --depth 4", "--box 24 is not a multiple of 16 (2 ** depth): give 16, 32"),
    ("train F --learning-rate nan", "argument --learning-rate: must be a positive number, got nan"),
    ("train F --learning-rate 0", "argument --learning-rate: must be a positive number, got 0"),
    ("train F --epochs 0", "argument --epochs: must be a whole number of at least 1, got 0"),
    ("train F --epochs -3", "argument --epochs: must be a whole number of at least 1, got -3"),
    ("train F --validation 1", "argument --validation: must be a fraction of at least 0 and below"),
    ("train F --depth 0", "argument --depth: must be a whole number of at least 1, got 0"),
    ("train F --voxel-size 0", "argument --voxel-size: must be a positive number, got 0"),
    ("simulate D --voxel-size 0", "argument --voxel-size: must be a positive number, got 0"),
    ("simulate D --snr 0", "argument --snr: must be a positive number, got 0"),
    ("simulate D --dose 0", "argument --dose: must be a positive number, got 0"),
    ("simulate D --subtomograms 0", "argument --subtomograms: must be a whole number of at least"),
    ("simulate D --subtomograms -1", "argument --subtomograms: must be a whole number of at least"),
    ("simulate D --subtomograms 2 --box 0", "argument --box: must be a whole number of at least 1"),
    ("simulate D --tomograms 0", "argument --tomograms: must be a whole number of at least 1"),
    ("simulate D --box 48 --at-picks", "--box, --at-picks go with --subtomograms"),  # ignored
    ("simulate D --subtomograms 2 --tomograms 3", "--tomograms and --format make tomograms"),
    ("simulate D --tilt-range 60 -60 3", "argument --tilt-range: MIN must be below MAX"),
    ("simulate D --tilt-range -60 60 0", "argument --tilt-range: STEP must be above 0"),
    ("affinity M --voxel-size 0", "argument --voxel-size: must be a positive number, got 0"),
    ("affinity M --voxel-size -1", "argument --voxel-size: must be a positive number, got -1"),
    ("affinity M --voxel-size nan", "argument --voxel-size: must be a positive number, got nan"),
    ("affinity M --voxel-size inf", "argument --voxel-size: must be a positive number, got inf"),
    ("affinity M --voxel-size 0.5", "at 0.5 A/voxel the maps would be 320 voxels across (at most"),
    ("affinity --voxel-size 1", "the maps would be 302 voxels across (at most 160): give a --vox"),
]


@pytest.mark.parametrize(("line", "words"), BAD_NUMBERS)
def test_bad_numbers_are_refused_in_one_line_before_any_work(tmp_path, capsys, line, words):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    tomogram = write_tomogram(inputs / "t.mrc", np.zeros((16, 16, 16), np.float32), 10.0)
    ball = (np.indices((16, 16, 16)) - 7.5) ** 2
    ball = write_tomogram(inputs / "ball.mrc", (ball.sum(axis=0) < 25).astype(np.float32), 10.0)
    folder = inputs / "folder"
    folder.mkdir()
    command, *rest = line.split()
    paths = {"T": tomogram, "M": ball, "F": folder, "D": tmp_path / "sim"}
    argv = [command, *(str(paths.get(word, word)) for word in rest)]
    out = {"simulate": []}.get(command, ["--out", str(tmp_path / "out.star")])
    error = _refusal([*argv, *out], capsys)
    assert error.startswith(f"avae {command}: error: ") and words in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]  # nothing written


def test_an_output_under_a_file_names_the_file(tmp_path, capsys):
    """It said 'folder .../picks.csv does not exist' of a path that exists, as a file."""
    tomogram = write_tomogram(tmp_path / "t.mrc", np.zeros((24, 24, 24), np.float32), 10.0)
    picks = tmp_path / "picks.csv"
    picks.write_text("x,y,z\n12,12,12\n")
    out = picks / "sub" / "e.csv"
    error = _refusal(["embed", str(tomogram), str(picks), "--out", str(out)], capsys)
    assert error.endswith(f"{out}: {picks} is a file, not a folder")


@pytest.mark.parametrize(
    "line",
    [
        "affinity M M --out NOWHERE/affinity.csv",
        "affinity M M --out OUT/affinity.csv --raw NOWHERE/raw.csv",
        "evaluate --train F --test F --out NOWHERE/scores.json",
        "pick T --templates M --out OUT/picks.star --score-map NOWHERE/scores.mrc",
    ],
)
def test_every_output_is_checked_before_the_work(tmp_path, capsys, line):
    """Not after a search or an evaluation, and never with some outputs written."""
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    tomogram = write_tomogram(inputs / "t.mrc", np.zeros((24, 24, 24), np.float32), 10.0)
    ball = (np.indices((16, 16, 16)) - 7.5) ** 2
    ball = write_tomogram(inputs / "ball.mrc", (ball.sum(axis=0) < 25).astype(np.float32), 10.0)
    paths = {"T": tomogram, "M": ball, "F": inputs}
    argv = [
        str(paths.get(w, w)).replace("NOWHERE", str(tmp_path / "nowhere")) for w in line.split()
    ]
    argv = [w.replace("OUT", str(out)) for w in argv]
    error = _refusal(argv, capsys)
    assert f"folder {tmp_path / 'nowhere'} does not exist" in error
    assert "Traceback" not in error and not any(out.iterdir())  # nothing written


def _tiny_training(tomogram: Path, coords: Path, out: Path) -> list[str]:
    """``avae train`` of a tomogram's picks of classes a and b (unrelated), for one epoch of a
    tiny model."""
    affinity = out.parent / "affinity.csv"
    affinity.write_text("a,b\n1,0\n0,1\n")
    args = ["train", str(tomogram), "--coords", str(coords), "--affinity", str(affinity)]
    tiny = ["--box", "8", "--depth", "1", "--capacity", "2", "--epochs", "1"]
    return [*args, "--out", str(out), *tiny]


def test_train_takes_the_voxel_size_of_a_tomogram_without_one(tmp_path, capsys):
    """``--voxel-size`` for a tomogram with --coords whose header has none, as the error says."""
    rng = np.random.default_rng(0)
    tomogram = write_tomogram(tmp_path / "t.mrc", rng.normal(size=(24, 24, 40)), 0.0)
    picks = pd.DataFrame(
        {
            "z": [12.0] * 4,
            "y": [12.0] * 4,
            "x": [8.0, 16.0, 24.0, 32.0],
            "class_name": ["a", "b"] * 2,
        }
    )
    out = tmp_path / "m"
    args = _tiny_training(tomogram, write_particles(picks, tmp_path / "picks.star"), out)
    error = _refusal(args, capsys)
    assert error.startswith(
        f"avae train: error: {tomogram}: the header gives no voxel size (0, infinite or not"
    )
    assert "--voxel-size" in error
    assert not out.with_suffix(".json").exists()
    assert main([*args, "--voxel-size", "7.5"]) == 0
    _, card = load_checkpoint(out.with_suffix(".json"))
    assert card.voxel_size == 7.5


def test_train_chooses_a_tomogram_s_rows_as_embed_does(tmp_path, capsys):
    """A project's particles.star holds several tomograms, in unbinned pixels, one pick
    outside: --tomo-name, --binning and --skip-unusable, as the messages say."""
    rng = np.random.default_rng(0)
    tomogram = write_tomogram(tmp_path / "TS_01.mrc", rng.normal(size=(24, 24, 40)), 10.0)
    picks = pd.DataFrame(
        {
            "z": [24.0] * 5 + [10.0],
            "y": [24.0] * 5 + [10.0],
            "x": [16.0, 32.0, 48.0, 64.0, 200.0, 10.0],  # pixels of 5 A: twice the voxels
            "class_name": ["a", "b", "a", "b", "a", "b"],
            "tomo_name": ["TS_01"] * 5 + ["TS_02"],
        }
    )
    out = tmp_path / "m"
    args = _tiny_training(tomogram, write_particles(picks, tmp_path / "particles.star"), out)
    assert "choose one (--tomo-name" in _refusal(args, capsys)
    args += ["--tomo-name", "TS_01"]
    assert "lie outside the tomogram" in _refusal(args, capsys)  # the binning forgotten
    args += ["--binning", "2"]
    error = _refusal(args, capsys)
    assert "1 of 5 particles lie outside" in error and error.endswith("--skip-unusable skips them")
    assert main([*args, "--skip-unusable"]) == 0
    assert "4 boxes" in load_checkpoint(out.with_suffix(".json"))[1].training["data"]
    alone = ["train", str(tmp_path), "--binning", "2", "--out", str(tmp_path / "n")]
    assert "go with --coords" in _refusal(alone, capsys)


def test_train_leaves_out_particles_without_a_class_and_says_how_many(tmp_path, capsys):
    """Picks of which only some were classified: the others are not a class of their own."""
    rng = np.random.default_rng(0)
    tomogram = write_tomogram(tmp_path / "t.mrc", rng.normal(size=(24, 24, 48)), 10.0)
    coords = tmp_path / "picks.csv"
    coords.write_text("x,y,z,class\n8,12,12,a\n16,12,12,b\n24,12,12,\n32,12,12,a\n40,12,12,b\n")
    affinity = tmp_path / "affinity.csv"
    affinity.write_text("a,b\n1,0\n0,1\n")
    out = tmp_path / "m"
    args = ["train", str(tomogram), "--coords", str(coords), "--affinity", str(affinity)]
    args += ["--out", str(out), "--box", "8", "--depth", "1", "--capacity", "2", "--epochs", "1"]
    assert main(args) == 0
    error = capsys.readouterr().err
    assert f"avae train: warning: {coords}: 1 of 5 particles have no class" in error
    _, card = load_checkpoint(out.with_suffix(".json"))
    assert card.classes == ["a", "b"] and "4 boxes" in card.training["data"]
    coords.write_text("x,y,z,class\n8,12,12,1\n16,12,12,2\n24,12,12,\n32,12,12,1\n40,12,12,2\n")
    affinity.write_text("1,2\n1,0\n0,1\n")  # class numbers, as a classification gives them
    assert main([*args, "--overwrite"]) == 0
    _, card = load_checkpoint(out.with_suffix(".json"))
    assert card.classes == ["1", "2"]  # not 1.0 and 2.0, though one is missing
    coords.write_text("x,y,z,class\n8,12,12,\n16,12,12,\n")
    assert main([*args, "--overwrite"]) == 2
    assert f"{coords}: no particle has a class in column class" in capsys.readouterr().err
