"""Data the program cannot use, refused with a clear error naming the file and the problem (and
nothing written), or handled correctly: NaN voxels in training boxes, tomograms to embed or
pick; a training folder mixing voxel sizes, of volume stacks or of single planes; a blank
tomogram for template matching; evaluation sets that cannot be scored; the checkpoint's file
mode; corrupt subtomogram stacks and complex (Fourier) MRC files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import write_mrc
from napari_affinity_vae.cli import main
from napari_affinity_vae.errors import (
    AnalysisError,
    InputFileError,
    TomogramFileError,
    TrainingError,
)
from napari_affinity_vae.io.subtomograms import read_subtomograms, write_subtomograms
from napari_affinity_vae.io.tomogram import open_tomogram
from napari_affinity_vae.model.checkpoint import ModelCard, read_card, save_checkpoint
from napari_affinity_vae.model.datasets import load_training_set
from napari_affinity_vae.model.network import AffinityVAE, Architecture
from napari_affinity_vae.model.train import TrainingConfig, TrainingData, train
from napari_affinity_vae.operations.evaluate import evaluate
from napari_affinity_vae.particles.templates import MatchSettings, Template, match_steps
from napari_affinity_vae.progress import run_steps

pytestmark = pytest.mark.filterwarnings("ignore:Data array contains NaN:RuntimeWarning")
ARCH = Architecture(box=16, depth=2, capacity=2, latent_dims=3)


def _folder(root: Path, boxes: dict[str, tuple[np.ndarray, float]], classes: str = "a,b") -> Path:
    """A reference-layout training folder: ``name: (data, voxel size)`` files, classes.csv and
    an identity affinity.csv."""
    root.mkdir(parents=True, exist_ok=True)
    for name, (data, voxel_size) in boxes.items():
        with mrcfile.new(root / name, overwrite=True) as mrc:
            mrc.set_data(np.asarray(data, np.float32))
            mrc.voxel_size = voxel_size
    names = classes.split(",")
    (root / "classes.csv").write_text(classes + "\n")
    pd.DataFrame(np.eye(len(names)), columns=names).to_csv(root / "affinity.csv", index=False)
    return root


def _noise(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _model(path: Path, classes: tuple[str, ...] = ("a", "b")) -> Path:
    card = ModelCard(ARCH, 10.0, list(classes), np.eye(len(classes)).tolist())
    return save_checkpoint(AffinityVAE(ARCH), card, path)[1]


def _outputs(out: Path) -> list[Path]:
    return sorted(out.parent.glob(out.name + "*"))


def _refused_training(folder: Path, capsys) -> str:
    """What ``avae train FOLDER`` says when it refuses the folder (it writes nothing)."""
    out = folder.parent / "model"
    assert main(["train", str(folder), "--out", str(out), "--epochs", "1"]) == 2
    assert _outputs(out) == []
    return capsys.readouterr().err


def test_train_refuses_a_folder_box_of_nan_and_writes_no_checkpoint(tmp_path, capsys):
    nan = np.full((16, 16, 16), np.nan, np.float32)
    files = {"a_0.mrc": (nan, 10.0), "a_1.mrc": (_noise(16, 16, 16), 10.0)}
    files |= {f"b_{i}.mrc": (_noise(16, 16, 16, seed=i), 10.0) for i in range(2)}
    folder = _folder(tmp_path / "nan", files)
    err = _refused_training(folder, capsys)
    assert "a_0.mrc" in err and "NaN" in err and "Traceback" not in err


def test_train_refuses_boxes_cut_from_a_tomogram_s_nan_region(tmp_path, capsys):
    volume = _noise(48, 64, 64)
    volume[5:25, 5:25, 5:25] = np.nan
    tomogram = write_mrc(tmp_path / "blank_corner.mrc", volume)
    coords = tmp_path / "picks.csv"
    pd.DataFrame(
        {"x": [15.0, 40.0, 45.0], "y": [15.0, 40.0, 45.0], "z": [15.0, 30.0, 30.0]}
        | {"class_name": ["a", "b", "a"]}
    ).to_csv(coords, index=False)
    out = tmp_path / "model"
    args = [str(tomogram), "--coords", str(coords), "--box", "16", "--affinity"]
    affinity = tmp_path / "affinity.csv"
    pd.DataFrame(np.eye(2), columns=["a", "b"]).to_csv(affinity, index=False)
    assert main(["train", *args, str(affinity), "--out", str(out), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "blank_corner.mrc" in err and "1 of 3 boxes hold NaN" in err and "picks.csv" in err
    assert _outputs(out) == []


def test_training_whose_loss_is_not_finite_stops_without_a_checkpoint(tmp_path):
    boxes = _noise(8, 16, 16, 16)
    boxes[0] = np.nan  # past the loader's check: the loss becomes NaN
    data = TrainingData(boxes, np.arange(8) % 2, ["a", "b"], np.eye(2), 10.0)
    out = tmp_path / "model"
    config = TrainingConfig(epochs=2, batch_size=4, validation_fraction=0, checkpoint_every=1)
    with pytest.raises(TrainingError, match=r"diverged in epoch 1 .*loss nan"):
        train(data, ARCH, config, out=out)
    assert not list(tmp_path.glob("model*.safetensors"))
    assert not list(tmp_path.glob("model*.json"))


def test_embed_refuses_particles_whose_boxes_hold_nan(tmp_path, capsys):
    volume = _noise(48, 64, 64)
    volume[10:20, 10:20, 10:20] = np.nan
    tomogram = write_mrc(tmp_path / "holey.mrc", volume)
    coords = tmp_path / "picks.csv"
    pd.DataFrame({"x": [15.0, 40.0, 45.0, 14.0], "y": [15.0, 40.0, 45.0, 14.0]}).assign(
        z=[15.0, 30.0, 35.0, 14.0]
    ).to_csv(coords, index=False)
    model = _model(tmp_path / "m")
    out = tmp_path / "embedded.csv"
    args = ["embed", str(tomogram), str(coords), "--model", str(model), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "holey.mrc" in err and "2 of 4 particles hold NaN" in err and "rows 0, 3" in err
    assert "embedded" not in err.replace("embed:", "") and not out.exists()


@pytest.mark.parametrize(
    "how",
    [
        ["--diameter", "60", "120"],
        ["--diameter", "200", "400"],  # searched binned: counted in the tomogram's own voxels
        ["--templates", "TEMPLATE", "--angular-step", "90"],
    ],
)
def test_picking_refuses_a_tomogram_with_nan(tmp_path, capsys, how):
    volume = _noise(48, 64, 64)
    volume[10:20, 10:20, 10:20] = np.nan
    tomogram = write_mrc(tmp_path / "holey.mrc", volume)
    z, y, x = np.mgrid[:16, :16, :16] - 7.5
    template = write_mrc(tmp_path / "ball.mrc", (z**2 + y**2 + x**2 < 25).astype(np.float32))
    how = [str(template) if a == "TEMPLATE" else a for a in how]
    out = tmp_path / "picks.csv"
    assert main(["pick", str(tomogram), *how, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holey.mrc" in err and "1000 NaN" in err and "Traceback" not in err
    assert "--diameter" not in how or "in y rows 10 to 19" in err
    assert not out.exists()


def test_template_matching_on_a_constant_tomogram_picks_nothing(tmp_path, capsys):
    tomogram = write_mrc(tmp_path / "const.mrc", np.full((48, 64, 64), 3.0, np.float32))
    z, y, x = np.mgrid[:16, :16, :16] - 7.5
    ball = (z**2 + y**2 + x**2 < 25).astype(np.float32)
    template = write_mrc(tmp_path / "ball.mrc", ball)
    out = tmp_path / "picks.csv"
    args = ["pick", str(tomogram), "--templates", str(template), "--angular-step", "90"]
    assert main([*args, "--out", str(out)]) == 0
    assert "0 picks" in capsys.readouterr().out
    # a blank half beside noise far from 0: the scores stay NCC, in [-1, 1], 0 where blank
    volume = 1000 + _noise(32, 48, 48)
    volume[:, :24] = 1000
    settings = MatchSettings(voxel_size=10.0, angular_step=90.0, binning=1, refine=False)
    result = run_steps(match_steps(volume, [Template("ball", ball)], settings), 1, "", None)
    scores = result.best_scores()
    assert np.all(np.abs(scores) <= 1)
    assert np.all(scores[:, :10] == 0) and np.abs(scores[:, 30:]).max() > 0.1
    assert np.all(result.picks["y"] > 20)


def test_train_refuses_a_folder_mixing_voxel_sizes(tmp_path, capsys):
    files = {f"a_{i}.mrc": (_noise(16, 16, 16, seed=i), 10.0) for i in range(2)}
    files |= {f"b_{i}.mrc": (_noise(16, 16, 16, seed=i), 20.0) for i in range(2)}
    folder = _folder(tmp_path / "mixed", files)
    err = _refused_training(folder, capsys)
    assert "voxel size" in err and "a_0.mrc: 10 Å" in err and "b_0.mrc: 20 Å" in err


def test_train_refuses_a_folder_mixing_box_sizes_and_says_what_to_do(tmp_path, capsys):
    files = {"a_0.mrc": (_noise(16, 16, 16), 10.0), "b_0.mrc": (_noise(20, 20, 20), 10.0)}
    folder = _folder(tmp_path / "boxes", files)
    out = tmp_path / "model"
    args = ["train", str(folder), "--out", str(out), "--epochs", "1", "--box", "16"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "a_0.mrc: 16x16x16" in err and "b_0.mrc: 20x20x20" in err
    assert "cut them to one box size first" in err and not out.with_suffix(".json").exists()


def test_train_asks_for_the_voxel_size_of_a_folder_whose_headers_have_none(tmp_path, capsys):
    files = {f"{c}_{i}.mrc": (_noise(16, 16, 16, seed=i), 0.0) for c in "ab" for i in range(2)}
    folder = _folder(tmp_path / "no_size", files)
    err = _refused_training(folder, capsys)
    assert "no_size" in err and "voxel size" in err and "--voxel-size" in err
    stack = tmp_path / "stack"
    table = pd.DataFrame({"class_name": list("aabb"), "rot": 0.0, "tilt": 0.0, "psi": 0.0})
    write_subtomograms(stack, _noise(4, 16, 16, 16), table, 0.0)
    pd.DataFrame(np.eye(2), columns=["a", "b"]).to_csv(stack / "affinity.csv", index=False)
    assert "voxel size" in _refused_training(stack, capsys)  # a stack's header, as a folder's
    out, given = tmp_path / "model", ["--voxel-size", "5", "--latent-dims", "4", "--depth", "2"]
    assert main(["train", str(folder), "--out", str(out), "--epochs", "1", *given]) == 0
    assert read_card(out.with_suffix(".json")).voxel_size == 5.0


def test_a_folder_of_volume_stacks_gives_each_box_its_file_s_class(tmp_path):
    stacks = {name: (_noise(3, 16, 16, 16, seed=i), 10.0) for i, name in enumerate("ab")}
    folder = _folder(tmp_path / "stacks", {f"{n}_0.mrcs": v for n, v in stacks.items()})
    data = load_training_set(folder)
    assert data.boxes.shape == (6, 16, 16, 16) and data.classes == ["a", "b"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1] and data.voxel_size == 10.0


def test_a_folder_volume_whose_header_says_space_group_0_is_one_particle(tmp_path):
    """RELION, ChimeraX and cryoSPARC write volumes with space group 0, which mrcfile reads as
    a stack of images: each 16^3 particle was trained as 16 images."""
    files = {f"{c}_{i}.mrc": (_noise(16, 16, 16, seed=i), 10.0) for c in "ab" for i in range(2)}
    folder = _folder(tmp_path / "volumes", files)
    for path in folder.glob("*.mrc"):
        with mrcfile.open(path, "r+") as mrc:
            mrc.header.ispg = 0
    data = load_training_set(folder)
    assert data.boxes.shape == (4, 16, 16, 16) and data.labels.tolist() == [0, 0, 1, 1]


def test_a_folder_s_class_names_may_hold_underscores(tmp_path):
    """Files single_ring_0.mrc were taken for a class single and skipped without a word: a
    one-class model was trained from a folder of three."""
    files = {
        f"{c}_{i}.mrc": (_noise(16, 16, 16, seed=i), 10.0)
        for c in ("single_ring", "b_c", "b")
        for i in range(2)
    }
    folder = _folder(tmp_path / "rings", files, classes="single_ring,b_c,b,absent")
    with pytest.warns(UserWarning, match="lists absent, of which the folder has no"):
        data = load_training_set(folder)
    assert data.classes == ["b", "b_c", "single_ring"] and data.labels.tolist() == [
        0,
        0,
        1,
        1,
        2,
        2,
    ]


def test_train_warns_of_a_class_of_one_box(tmp_path, capsys):
    """The Train dock refuses a class of one particle; the command line trained on it without a
    word (a class of one is learnt but cannot be told apart)."""
    files = {f"{c}_0.mrc": (_noise(16, 16, 16, seed=i), 10.0) for i, c in enumerate("abc")}
    files["a_1.mrc"] = (_noise(16, 16, 16, seed=7), 10.0)
    folder = _folder(tmp_path / "few", files, classes="a,b,c")
    with pytest.warns(UserWarning, match=r"few: b, c have fewer than 2 boxes"):
        data = load_training_set(folder)
    assert data.classes == ["a", "b", "c"]


def test_train_refuses_single_plane_boxes(tmp_path, capsys):
    files = {f"{c}_{i}.mrc": (_noise(1, 16, 16, seed=i), 10.0) for c in "ab" for i in range(2)}
    folder = _folder(tmp_path / "planes", files)
    err = _refused_training(folder, capsys)
    assert "a_0.mrc" in err and "1x16x16" in err and "cubic" in err and "Traceback" not in err


def test_evaluate_refuses_one_class_or_classes_shared_with_none(tmp_path, capsys):
    model = _model(tmp_path / "m")
    one = _folder(tmp_path / "one", {"a_0.mrc": (_noise(16, 16, 16), 10.0)}, classes="a")
    files = {f"{c}_{i}.mrc": (_noise(16, 16, 16, seed=i), 10.0) for c in "ab" for i in range(2)}
    two = _folder(tmp_path / "ab", files)
    files = {f"{c}_{i}.mrc": (_noise(16, 16, 16, seed=i), 10.0) for c in "cd" for i in range(2)}
    other = _folder(tmp_path / "cd", files, classes="c,d")
    common = [str(model), "--no-baselines"]
    assert main(["evaluate", *common, "--train", str(one), "--test", str(two)]) == 2
    err = capsys.readouterr().err
    assert "one class (a)" in err and "Traceback" not in err
    assert main(["evaluate", *common, "--train", str(two), "--test", str(other)]) == 2
    err = capsys.readouterr().err
    assert "(c, d) share none with the training set's (a, b)" in err


def _stack(folder: Path, table: pd.DataFrame) -> Path:
    """A subtomogram stack of noise boxes with ``table``, and an identity affinity of a and b."""
    write_subtomograms(folder, _noise(len(table), 16, 16, 16), table, 10.0)
    pd.DataFrame(np.eye(2), columns=["a", "b"]).to_csv(folder / "affinity.csv", index=False)
    return folder


def test_evaluate_on_odd_labelled_sets_scores_or_says_why(tmp_path, capsys):
    """Two test boxes, a blank angle, a blank class: tracebacks from the silhouette, the pose
    score and the sorting of class names."""
    model = _model(tmp_path / "m")
    angles = {"rot": 10.0, "tilt": 20.0, "psi": 30.0}
    train_set = _stack(tmp_path / "train", pd.DataFrame({"class_name": list("aabbab"), **angles}))
    two = _stack(tmp_path / "two", pd.DataFrame({"class_name": list("ab"), **angles}))
    common = [str(model), "--no-baselines", "--train", str(train_set)]
    out = tmp_path / "two.json"
    assert main(["evaluate", *common, "--test", str(two), "--out", str(out)]) == 0
    scores = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert "silhouette" not in scores["affinity-vae"]  # undefined for one box a class
    blank = pd.DataFrame({"class_name": list("aabb"), **angles})
    blank.loc[1, "rot"] = np.nan
    blank_angle = _stack(tmp_path / "angle", blank)
    assert main(["evaluate", *common, "--test", str(blank_angle)]) == 0
    err = capsys.readouterr().err
    assert "1 of 4 boxes have a blank rot, tilt or psi" in err and "Traceback" not in err
    blank = pd.DataFrame({"class_name": ["a", None, "b", "b"], **angles})
    no_class = _stack(tmp_path / "class", blank)
    assert main(["evaluate", *common, "--test", str(no_class)]) == 2
    said = f"{no_class / 'subtomograms.csv'}: 1 of 4 rows name no class (class_name blank, the "
    assert said + "first on line 3)" in capsys.readouterr().err
    assert "1 of 4 rows name no class" in _refused_training(no_class, capsys)


def test_evaluating_a_model_of_nan_weights_is_a_clear_error():
    model = AffinityVAE(ARCH)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(np.nan)
    card = ModelCard(ARCH, 10.0, ["a", "b"], np.eye(2).tolist())
    data = TrainingData(_noise(6, 16, 16, 16), np.arange(6) % 2, ["a", "b"], np.eye(2), 10.0)
    with pytest.raises(AnalysisError, match="NaN or infinite latents for 6 of 6 boxes"):
        evaluate(model, card, data, data, baselines=False)


def test_checkpoint_weights_are_as_readable_as_their_card(tmp_path):
    umask = os.umask(0o022)
    try:
        weights, card = save_checkpoint(
            AffinityVAE(ARCH), ModelCard(ARCH, 10.0, ["a"], [[1.0]]), tmp_path / "m"
        )
    finally:
        os.umask(umask)
    assert weights.stat().st_mode & 0o777 == card.stat().st_mode & 0o777 == 0o644


def test_a_corrupt_subtomogram_stack_is_named(tmp_path):
    table = pd.DataFrame({"class_name": ["a", "b"]})
    write_subtomograms(tmp_path / "set", np.zeros((2, 0, 0, 0), np.float32), table, 10.0)
    with pytest.raises(InputFileError, match=r"subtomograms\.mrcs: not a readable stack"):
        read_subtomograms(tmp_path / "set")


def test_a_complex_mrc_is_refused_as_fourier_data(tmp_path):
    path = tmp_path / "fourier.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data((_noise(8, 8, 8) + 1j).astype(np.complex64))
        mrc.voxel_size = 10.0
    with pytest.raises(TomogramFileError, match=r"fourier.mrc: .*complex.*Fourier"):
        open_tomogram(path)
    with mrcfile.open(path, mode="r+", permissive=True) as mrc:
        mrc.header.mode = 3  # complex int16, which mrcfile cannot read
    with pytest.raises(TomogramFileError, match=r"complex numbers \(MRC mode 3\): Fourier"):
        open_tomogram(path)


def test_a_training_that_diverges_leaves_no_metrics_without_a_checkpoint(tmp_path, capsys):
    """A run that diverged after writing an epoch's metrics, and no checkpoint, left
    model.metrics.csv beside no model; with --checkpoint-every it keeps both and says so."""
    files = {
        f"{c}_{i}.mrc": (_noise(16, 16, 16, seed=i) * 1e3, 10.0) for c in "ab" for i in range(4)
    }
    folder = _folder(tmp_path / "boxes", files)
    out = tmp_path / "model"
    args = ["train", str(folder), "--out", str(out), "--epochs", "4", "--validation", "0"]
    assert main([*args, "--learning-rate", "1e30"]) == 2
    err = capsys.readouterr().err
    assert "diverged in epoch" in err and "Traceback" not in err
    assert _outputs(out) == []
    assert main([*args, "--learning-rate", "1e30", "--checkpoint-every", "1", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "diverged in epoch" in err and f"--resume {out}.json goes on from there" in err
    assert [p.name for p in _outputs(out)] == [
        f"model{s}" for s in (".json", ".metrics.csv", ".safetensors")
    ]
