"""The ``avae`` command line: help, version and the demo's screenshot mode."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile

from conftest import blob_map, write_mrc
from napari_affinity_vae import __version__
from napari_affinity_vae.cli import main
from napari_affinity_vae.io.particles import read_particles
from napari_affinity_vae.io.subtomograms import read_subtomograms


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("demo", "simulate", "affinity", "train", "evaluate"))


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"avae {__version__}"


def test_console_script_is_installed():
    result = subprocess.run(
        [sys.executable, "-m", "napari_affinity_vae.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert __version__ in result.stdout


def test_demo_bad_tomogram_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.mrc"
    bad.write_bytes(b"nope")
    assert main(["demo", str(bad), "--screenshot", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err
    assert "bad.mrc" in err and "header" in err
    assert not (tmp_path / "s.png").exists()


def test_demo_screenshot_shows_window_with_tomogram(tmp_path, qapp):
    rng = np.random.default_rng(0)
    tomogram = write_mrc(tmp_path / "t.mrc", rng.normal(size=(8, 64, 64)).astype(np.float32))
    shot = tmp_path / "window.png"
    assert main(["demo", str(tomogram), "--screenshot", str(shot)]) == 0
    from imageio.v3 import imread

    image = imread(shot)
    assert image.shape[0] >= 600 and image.shape[1] >= 900  # the whole window, not the canvas
    assert image[..., :3].std() > 10  # not a blank window


def test_the_sample_demo_uses_the_documented_settings_and_leaves_the_remembered(
    tmp_path, qapp, monkeypatch
):
    """Remembered from earlier work, PCA and 3 clusters made the demo unlike its pictures, and
    the demo set the remembered number of clusters to its own."""
    from napari_affinity_vae import demo

    remembered = {"embed": {"projection": "PCA", "k": 3}, "particles": {"diameter_min": 20.0}}
    settings = tmp_path / "widgets.json"
    settings.write_text(json.dumps(remembered))
    monkeypatch.setenv("NAPARI_AFFINITY_VAE_SETTINGS", str(settings))
    seen = {}

    def explore(_viewer, widgets):  # instead of picking and embedding: what the docks show
        embed, particles = widgets["Embed"], widgets["Particles"]
        seen.update(projection=embed.projection.value, k=embed.k.value)
        seen["diameters"] = (particles.diameter_min.value, particles.diameter_max.value)
        embed.k.value = 7  # a change in the demo

    monkeypatch.setattr(demo, "explore", explore)
    assert main(["demo", "--screenshot", str(tmp_path / "demo.png")]) == 0
    assert seen == {"projection": "UMAP", "k": 10, "diameters": (100.0, 300.0)}
    assert json.loads(settings.read_text()) == remembered
    assert os.environ["NAPARI_AFFINITY_VAE_SETTINGS"] == str(settings)


def test_simulate_writes_tomogram_ground_truth_references_and_affinity(tmp_path):
    from napari_affinity_vae.io.affinity import load_affinity
    from napari_affinity_vae.io.particles import read_particles
    from napari_affinity_vae.io.tomogram import open_tomogram

    out = tmp_path / "sim"
    args = ["simulate", str(out), "--shape", "48", "96", "128", "--particles", "6", "--seed", "2"]
    assert main([*args, "--snr", "0.5", "--classes", "globular", "filament", "ribosome"]) == 0
    tomogram = open_tomogram(out / "tomogram.mrc")
    assert tomogram.shape == (48, 96, 128) and tomogram.voxel_size == pytest.approx(10.0)
    truth = read_particles(out / "particles.star", tomogram_shape=tomogram.shape)
    assert len(truth) == 6 and set(truth["class_name"]) == {"globular", "filament", "ribosome"}
    assert {"rot", "tilt", "psi"} <= set(truth.columns)
    assert sorted(p.name for p in (out / "references").iterdir()) == [
        "filament.mrc",
        "globular.mrc",
        "ribosome.mrc",
    ]
    affinity = load_affinity(out / "affinity.csv")
    assert list(affinity.columns) == ["globular", "filament", "ribosome"]


def test_simulate_subtomogram_training_set(tmp_path):
    import pandas as pd

    out = tmp_path / "train"
    assert (
        main(
            [
                "simulate",
                str(out),
                "--subtomograms",
                "3",
                "--classes",
                "globular",
                "tetrahedral",
                "--box",
                "24",
                "--seed",
                "5",
            ]
        )
        == 0
    )
    boxes, table = read_subtomograms(out)
    assert boxes.shape == (6, 24, 24, 24)
    assert table["class_name"].value_counts().to_dict() == {"globular": 3, "tetrahedral": 3}
    assert table[["shift_z", "shift_y", "shift_x"]].abs().max().max() <= 0.5
    assert isinstance(table, pd.DataFrame) and {"rot", "tilt", "psi"} <= set(table.columns)

    moved = tmp_path / "moved"
    args = ["simulate", str(moved), "--subtomograms", "40", "--box", "24", "--seed", "5"]
    assert main([*args, "--classes", "globular", "tetrahedral", "--off-centre", "1.5"]) == 0
    boxes, table = read_subtomograms(moved)
    shifts = table[["shift_z", "shift_y", "shift_x"]].to_numpy()
    assert boxes.shape == (80, 24, 24, 24)
    assert 1.0 < shifts.std() < 2.0 and np.abs(shifts).max() <= 3.5  # off by up to 2 sd


def test_training_boxes_where_the_picker_finds_the_particles(tmp_path):
    out = tmp_path / "picked"
    args = ["simulate", str(out), "--subtomograms", "30", "--seed", "2", "--at-picks"]
    assert main([*args, "--classes", "ribosome", "proteasome"]) == 0
    boxes, table = read_subtomograms(out)
    assert len(boxes) == len(table) and (table["centred_on"] == "particle").sum() == 60
    picked = table[table["centred_on"] == "pick"]
    assert len(picked) >= 40  # the picker finds most of them
    off = np.linalg.norm(picked[["shift_z", "shift_y", "shift_x"]].to_numpy(), axis=1)
    assert off.max() <= 8.5 and (off > 1).any()  # within half a radius, and not all centred


def test_affinity_command_on_user_maps(tmp_path, capsys):
    from napari_affinity_vae.io.affinity import load_affinity
    from napari_affinity_vae.simulate.affinity import scale_affinity
    from napari_affinity_vae.simulate.molecules import molecule_map

    globular = molecule_map("globular", 10.0, 24)
    maps = {
        "globular": globular,
        "tetrahedral": molecule_map("tetrahedral", 10.0, 24),
        "turned": np.rot90(globular, 1, axes=(0, 2)).copy(),  # the same molecule, turned 90 deg
    }
    paths = [write_mrc(tmp_path / f"{name}.mrc", m, voxel_size=10.0) for name, m in maps.items()]
    out, raw_out = tmp_path / "affinity.csv", tmp_path / "raw.csv"
    assert main(["affinity", *map(str, paths), "--out", str(out), "--raw", str(raw_out)]) == 0
    matrix, raw = load_affinity(out), load_affinity(raw_out)
    assert list(matrix.columns) == ["globular", "tetrahedral", "turned"]
    # the rotation search finds a turned copy of a map: correlation near 1, affinity near 1
    assert raw.loc["globular", "turned"] > 0.95
    assert matrix.loc["globular", "turned"] > 0.9
    # the other molecule (correlation about 0.45) is unrelated: near 0, alike to both copies
    assert -0.3 < matrix.loc["globular", "tetrahedral"] < 0.1
    assert matrix.loc["turned", "tetrahedral"] == pytest.approx(
        matrix.loc["globular", "tetrahedral"], abs=0.05
    )
    np.testing.assert_allclose(matrix, scale_affinity(raw.to_numpy()), atol=1e-5)
    assert "2c - 1" in capsys.readouterr().err  # the scaling is said
    # a pair alone keeps its affinity (min-max scaling made it -1): the other maps do not count
    pair = tmp_path / "pair.csv"
    assert main(["affinity", str(paths[0]), str(paths[1]), "--out", str(pair)]) == 0
    alone = load_affinity(pair)
    assert alone.loc["globular", "tetrahedral"] == pytest.approx(
        matrix.loc["globular", "tetrahedral"]
    )
    # one file for both: the raw correlations were written last, over the affinity asked for
    same = tmp_path / "same.csv"
    args = ["affinity", str(paths[0]), str(paths[1]), "--out", str(same), "--raw", str(same)]
    assert main(args) == 2
    said = f"{same} is given as two outputs: give each its own file"
    assert said in capsys.readouterr().err and not same.exists()


def test_affinity_refuses_a_flat_or_2d_map_naming_it(tmp_path, capsys):
    from napari_affinity_vae.simulate.molecules import molecule_map

    good = write_mrc(tmp_path / "globular.mrc", molecule_map("globular", 10.0, 24))
    flat = write_mrc(tmp_path / "flat.mrc", np.zeros((24, 24, 24), np.float32))
    image = write_mrc(tmp_path / "image.mrc", np.ones((1, 24, 24), np.float32)[0])
    out = tmp_path / "affinity.csv"
    for bad, problem in (
        (flat, "the map holds no density"),
        (image, "data is 2D with shape (24, 24); a tomogram or map must be 3D"),
    ):
        assert main(["affinity", str(good), str(bad), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"avae affinity: error: {bad}: {problem}"), err
        assert not out.exists()


def test_affinity_of_an_emdb_map_gz_and_its_uncompressed_copy(tmp_path, capsys):
    from napari_affinity_vae.io.affinity import load_affinity

    copy = write_mrc(tmp_path / "copy.mrc", blob_map(0), voxel_size=11.4)  # 20^3, as EMD-3197
    emdb = tmp_path / "emd_3197.map.gz"
    emdb.write_bytes(gzip.compress(copy.read_bytes()))
    other = write_mrc(tmp_path / "other.mrc", blob_map(2), voxel_size=11.4)
    out, raw_out = tmp_path / "affinity.csv", tmp_path / "raw.csv"
    args = ["affinity", str(emdb), str(copy), str(other), "--out", str(out), "--raw", str(raw_out)]
    assert main(args) == 0
    told = capsys.readouterr().err
    assert "warning: " + str(emdb) + ": gzip-compressed, so decompressed into memory" in told
    raw = load_affinity(raw_out)
    assert list(raw.columns) == ["emd_3197", "copy", "other"]
    assert raw.loc["emd_3197", "copy"] >= 0.99
    assert raw.loc["emd_3197", "other"] < 0.7
    (tmp_path / "copy.map.gz").write_bytes(emdb.read_bytes())
    assert main([*args[:-4], str(tmp_path / "copy.map.gz"), *args[-4:], "--overwrite"]) == 2
    assert "copy.map.gz: class copy is" in capsys.readouterr().err  # a class named twice


def test_cli_reference_in_docs_is_current():
    from napari_affinity_vae.cli import reference

    docs = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    assert docs.read_text() == reference(), "run python scripts/make_cli_docs.py"


def test_pick_and_embed_refuse_an_existing_output_unless_told(tmp_path, capsys):
    rng = np.random.default_rng(0)
    tomogram = write_mrc(tmp_path / "t.mrc", rng.normal(size=(40, 64, 64)).astype(np.float32))
    picks = tmp_path / "picks.csv"
    picks.write_text("x,y,z\n32,32,20\n")
    for command in (
        ["pick", str(tomogram), "--diameter", "100", "200", "--out", str(picks)],
        ["embed", str(tomogram), str(picks), "--out", str(picks)],
    ):
        assert main(command) == 2
        name = command[0]
        assert capsys.readouterr().err == (
            f"avae {name}: error: {picks} exists; pass --overwrite to replace it\n"
        )
        assert picks.read_text() == "x,y,z\n32,32,20\n"  # untouched
    out = tmp_path / "embedded.csv"
    out.write_text("old")
    embed = ["embed", str(tomogram), str(picks), "--out", str(out)]
    assert main(embed) == 2 and out.read_text() == "old"
    assert main([*embed, "--overwrite"]) == 0 and "latent_0" in out.read_text()


@pytest.mark.parametrize("command", ["embed", "project"])
def test_copick_choices_for_a_tomogram_and_its_picks_are_refused(tmp_path, capsys, command):
    """--object ribosome read like a filter of the classes and took every particle."""
    tomogram = write_mrc(tmp_path / "t.mrc", np.zeros((40, 64, 64), np.float32))
    picks = tmp_path / "picks.csv"
    picks.write_text("x,y,z,class_name\n32,32,20,ribosome\n30,30,20,other\n")
    out = ["--out", str(tmp_path / "e.csv")] if command == "embed" else []
    assert main([command, str(tomogram), str(picks), "--object", "ribosome", *out]) == 2
    error = capsys.readouterr().err
    assert "chooses among the picks and maps of a copick project or CryoET Data Portal" in error
    assert "not of t.mrc (tomogram), picks.csv (coordinates)" in error
    assert not (tmp_path / "e.csv").exists()


def test_simulate_refuses_a_folder_holding_files(tmp_path, capsys):
    folder = tmp_path / "sim"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert main(["simulate", str(folder), "--shape", "16", "32", "32", "--particles", "1"]) == 2
    assert f"avae simulate: error: {folder} exists; pass --overwrite" in capsys.readouterr().err
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("under", ["", "deeper"])
def test_simulate_into_a_file_is_refused_before_simulating(tmp_path, capsys, under):
    """Refused with "pass --overwrite", which then simulated and ended in a traceback."""
    file = tmp_path / "f_out"
    file.write_text("mine")
    out = file / under if under else file
    args = ["simulate", str(out), "--shape", "16", "32", "32", "--particles", "1"]
    assert main([*args, "--overwrite"]) == 2
    assert capsys.readouterr().err.strip().endswith(f"{out}: {file} is a file, not a folder")
    assert file.read_text() == "mine"


def test_simulate_overwrite_leaves_none_of_the_earlier_simulation(tmp_path, capsys):
    """A tomogram.mrc left beside a new tomogram.zarr and particles.star would be embedded
    with particles that are not its own; what simulate did not write is never deleted, and
    nothing is before the new run's options are checked."""
    folder = tmp_path / "sim"
    args = ["simulate", str(folder), "--shape", "40", "64", "64", "--particles", "2"]
    assert main(args) == 0
    (folder / "notes.txt").write_text("mine")
    first = sorted(p.name for p in folder.iterdir())
    assert main([*args, "--overwrite", "--classes"]) == 2  # nothing to simulate
    assert sorted(p.name for p in folder.iterdir()) == first
    assert main([*args, "--format", "zarr", "--classes", "globular", "--overwrite"]) == 0
    left = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert left == ["affinity.csv", "notes.txt", "particles.star", "references", "tomogram.zarr"]
    assert [p.name for p in (folder / "references").iterdir()] == ["globular.mrc"]
    hand_made = tmp_path / "mine"  # a folder of the names a project has, not simulated
    (hand_made / "tomograms").mkdir(parents=True)
    (hand_made / "tomograms.star").write_text("mine")
    assert main(["simulate", str(hand_made), *args[2:], "--overwrite"]) == 0
    assert (hand_made / "tomograms.star").read_text() == "mine"


def test_a_simulation_that_fails_half_way_leaves_nothing_to_refuse_a_second_try(tmp_path, capsys):
    """Two tomograms, the second too crowded for its particles: not even the first stays."""
    folder = tmp_path / "project"
    args = ["simulate", str(folder), "--tomograms", "2", "--shape", "48", "160", "160"]
    assert main([*args, "--particles", "30", "--seed", "5"]) == 2
    assert "particles fit" in capsys.readouterr().err and not folder.exists()
    folder.mkdir()  # an empty folder made for it stays, empty
    assert main([*args, "--particles", "30", "--seed", "5"]) == 2
    assert folder.is_dir() and not any(folder.iterdir())


@pytest.mark.parametrize("command", ["pick", "embed", "affinity", "train", "evaluate", "simulate"])
def test_every_command_writing_files_has_overwrite(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--overwrite" in capsys.readouterr().out


def test_embed_refuses_a_checkpoint_that_does_not_fit(tmp_path, capsys):
    from napari_affinity_vae.io.particles import write_particles
    from napari_affinity_vae.model.checkpoint import ModelCard, save_checkpoint
    from napari_affinity_vae.model.network import AffinityVAE, Architecture

    arch = Architecture(box=16, ndim=2, capacity=2, latent_dims=3)
    card = ModelCard(arch, 10.0, ["a", "b"], [[1.0, -1.0], [-1.0, 1.0]])
    _, card_path = save_checkpoint(AffinityVAE(arch), card, tmp_path / "flat")
    tomogram = write_mrc(tmp_path / "t.mrc", np.zeros((40, 40, 40), np.float32))
    one = pd.DataFrame({"z": [20.0], "y": [20.0], "x": [20.0]})
    picks = write_particles(one, tmp_path / "p.csv")
    out = tmp_path / "out.star"
    args = ["embed", str(tomogram), str(picks), "--out", str(out), "--model", str(card_path)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"avae embed: error: {card_path}: model expects 16^2 boxes at 10 A/voxel, "
        "got 16^3 boxes at 10 A/voxel"
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("missing tomogram", "no such file"),
        ("corrupt tomogram", "t.mrc: "),
        ("zero voxel size", "positive"),
        ("missing coordinates", "absent.csv: "),
        ("train without a source", "give a SOURCE or --preset bundled"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, case, problem):
    tomogram = write_mrc(tmp_path / "t.mrc", np.zeros((40, 64, 64), np.float32))
    picks = tmp_path / "picks.csv"
    picks.write_text("x,y,z\n32,32,20\n")
    out = ["--out", str(tmp_path / "out.star")]
    if case == "missing tomogram":
        args = ["embed", str(tmp_path / "absent.mrc"), str(picks), *out]
    elif case == "corrupt tomogram":
        tomogram.write_bytes(b"not an MRC file" * 100)
        args = ["pick", str(tomogram), "--diameter", "100", "200", *out]
    elif case == "zero voxel size":
        args = ["embed", str(tomogram), str(picks), "--voxel-size", "0", *out]
    elif case == "missing coordinates":
        args = ["embed", str(tomogram), str(tmp_path / "absent.csv"), *out]
    else:
        args = ["train", "--out", str(tmp_path / "model")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"avae {args[0]}: error: ") and err.count("\n") == 1, err
    assert problem in err
    assert not (tmp_path / "out.star").exists()


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    from napari_affinity_vae.cli import embed, pick

    def no_work(*_args, **_kwargs):
        raise AssertionError("the work started")

    monkeypatch.setattr(embed, "_model", no_work)
    monkeypatch.setattr(pick, "_blob_pick", no_work)
    tomogram = write_mrc(tmp_path / "t.mrc", np.zeros((40, 64, 64), np.float32))
    picks = tmp_path / "picks.csv"
    picks.write_text("x,y,z\n32,32,20\n")
    (tmp_path / "folder.csv").mkdir()
    embed = ["embed", str(tomogram), str(picks), "--out"]
    pick = ["pick", str(tomogram), "--diameter", "100", "200", "--out"]
    for args, out, problem in (
        (embed, tmp_path / "e.txt", "a coordinate file is written as .star, .tbl, .coords, .csv"),
        (embed, tmp_path / "nodir" / "e.csv", f"folder {tmp_path / 'nodir'} does not exist"),
        (pick, tmp_path / "picks.txt", "a coordinate file is written as .star, .tbl, .coords"),
        ([*embed[:3], "--overwrite", "--out"], tmp_path / "folder.csv", "is a folder"),
        (pick, Path("/proc/picks.csv"), "cannot be written"),  # no file can be made there
    ):
        assert main([*args, str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"avae {args[0]}: error: {out}: {problem}") and err.count("\n") == 1


def test_embed_writes_a_relion5_file_back_as_relion5_with_its_other_blocks(tmp_path):
    rng = np.random.default_rng(0)
    tomogram = write_mrc(tmp_path / "TS_01.mrc", rng.normal(size=(32, 64, 64)).astype(np.float32))
    general = {"rlnTomoSubTomosAre2DStacks": 1}
    optics = pd.DataFrame(
        {"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"], "rlnVoltage": [300.0]}
    )
    particles = pd.DataFrame(
        {
            "rlnTomoName": ["TS_01", "TS_01"],
            "rlnOpticsGroup": [1, 1],
            "rlnCenteredCoordinateXAngst": [100.0, -50.0],
            "rlnCenteredCoordinateYAngst": [-50.0, 20.0],
            "rlnCenteredCoordinateZAngst": [20.0, 0.0],
            "rlnOriginXAngst": [10.0, 0.0],  # shifts as RELION refinement writes them
            "rlnOriginYAngst": [0.0, 0.0],
            "rlnOriginZAngst": [0.0, 0.0],
            "rlnTomoParticleName": ["TS_01/1", "TS_01/2"],
        }
    )
    source = tmp_path / "particles.star"
    starfile.write({"general": general, "optics": optics, "particles": particles}, source)
    out = tmp_path / "embedded.star"
    assert main(["embed", str(tomogram), str(source), "--out", str(out), "--pca"]) == 0
    blocks = starfile.read(out, always_dict=True)
    assert list(blocks) == ["general", "optics", "particles"]  # RELION reads it as it was
    assert blocks["optics"]["rlnOpticsGroupName"].tolist() == ["opticsGroup1"]
    written = blocks["particles"]
    assert "rlnCoordinateX" not in written and "rlnOriginXAngst" not in written
    np.testing.assert_allclose(written["rlnCenteredCoordinateXAngst"], [90.0, -50.0])  # shifted
    assert written["rlnTomoParticleName"].tolist() == ["TS_01/1", "TS_01/2"]
    assert {"rlnTomoName", "latent_0"} <= set(written.columns)


def test_embed_names_the_tomogram_in_a_star_made_from_a_csv(tmp_path):
    rng = np.random.default_rng(0)
    tomogram = write_mrc(tmp_path / "TS_07.mrc", rng.normal(size=(32, 64, 64)).astype(np.float32))
    picks = tmp_path / "picks.csv"
    picks.write_text("x,y,z\n32,32,16\n20,40,10\n")
    out = tmp_path / "embedded.star"
    assert main(["embed", str(tomogram), str(picks), "--out", str(out)]) == 0
    assert starfile.read(out)["rlnTomoName"].tolist() == ["TS_07", "TS_07"]


def test_embed_skips_unusable_rows_only_when_told_and_says_how_many(tmp_path, capsys):
    tomogram = write_mrc(tmp_path / "TS_07.mrc", np.zeros((32, 64, 64), np.float32))
    picks = tmp_path / "picks.csv"
    picks.write_text("x,y,z\n32,32,16\n20,40,10\n-0.6,40,10\n20,,10\n")  # a pick at the edge
    out = tmp_path / "embedded.csv"
    assert main(["embed", str(tomogram), str(picks), "--out", str(out)]) == 2
    assert capsys.readouterr().err.rstrip().endswith("--skip-unusable skips them")
    assert not out.exists()
    assert main(["embed", str(tomogram), str(picks), "--out", str(out), "--skip-unusable"]) == 0
    err = capsys.readouterr().err
    assert "1 of 4 particles have missing (NaN) coordinates; they were dropped" in err
    assert "1 of 3 particles lie outside the tomogram" in err
    assert len(read_particles(out)) == 2


def test_embed_keeps_a_dynamo_tables_own_columns(tmp_path):
    rng = np.random.default_rng(0)
    tomogram = write_mrc(tmp_path / "t.mrc", rng.normal(size=(32, 64, 64)).astype(np.float32))
    rows = np.zeros((2, 38))  # a table with three columns past Dynamo's standard 35
    rows[:, 0] = [10, 11]  # tags
    rows[:, 1:3] = [[1, 0], [0, 0]]  # aligned, averaged
    rows[:, 3] = [0.5, 0.0]  # dx
    rows[:, 9] = [0.73, 0.41]  # cc
    rows[:, 19] = 1  # tomogram
    rows[:, 20] = 7  # region
    rows[:, 21] = 2  # class
    rows[:, 30] = 99  # otag
    rows[:, 33] = 3  # ref
    rows[:, 23:26] = [[30, 30, 16], [20, 40, 10]]
    rows[:, 36] = [5.5, 6.5]
    source = tmp_path / "picks.tbl"
    np.savetxt(source, rows)
    out = tmp_path / "embedded.tbl"
    assert main(["embed", str(tomogram), str(source), "--out", str(out), "--pca"]) == 0
    table = np.loadtxt(out)
    assert table.shape == (2, 38)
    kept = [0, 1, 2, 9, 19, 20, 30, 33, 36]  # tag ... the extra column 37
    np.testing.assert_allclose(table[:, kept], rows[:, kept], atol=1e-4)
    assert set(table[:, 21]) == {0, 1}  # the class column holds the clusters found
    np.testing.assert_allclose(table[:, 23] + table[:, 3], [30.5, 20], atol=1e-4)  # position


def test_embed_with_a_binning_writes_warptools_fractions_back_in_tomogram_pixels(tmp_path):
    """--binning scales pixel coordinates; WarpTools' fractions take none, read or written."""
    rng = np.random.default_rng(0)
    tomogram = write_mrc(tmp_path / "t.mrc", rng.normal(size=(32, 64, 64)).astype(np.float32))
    warp = tmp_path / "t_flipx.star"
    fractions = {"rlnCoordinateX": [0.5, 0.25], "rlnCoordinateY": [0.5, 0.5]}
    starfile.write({"particles": pd.DataFrame(fractions | {"rlnCoordinateZ": [0.5, 0.5]})}, warp)
    out = tmp_path / "embedded.star"
    args = ["embed", str(tomogram), str(warp), "--out", str(out), "--pca", "--binning", "4"]
    assert main(args) == 0
    written = starfile.read(out)
    assert written["rlnCoordinateX"].tolist() == [32.0, 16.0]  # of 64 voxels, not 4 x that


def test_a_tomogram_alone_is_embedded_with_its_coordinate_file(tmp_path, capsys):
    tomogram = write_mrc(tmp_path / "t.mrc", np.zeros((40, 64, 64), np.float32))
    assert main(["embed", str(tomogram), "--out", str(tmp_path / "e.csv")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith("t.mrc: no particles to embed: give its coordinate file after it")


def test_ctrl_c_while_the_program_starts_says_cancelled(monkeypatch, capsys):
    """Ctrl-C during the seconds that importing torch takes printed a long traceback."""
    from napari_affinity_vae import cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert main(["--version"]) == 130
    assert capsys.readouterr().err == "avae: cancelled\n"
