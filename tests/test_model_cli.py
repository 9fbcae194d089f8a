"""Training inputs in the three layouts, and ``avae train`` / ``avae evaluate`` end to end."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import write_mrc
from napari_affinity_vae.cli import main
from napari_affinity_vae.errors import InputFileError
from napari_affinity_vae.io.affinity import load_affinity, save_affinity
from napari_affinity_vae.io.particles import write_particles
from napari_affinity_vae.model.bundled import BUNDLED, load_bundled
from napari_affinity_vae.model.checkpoint import load_checkpoint
from napari_affinity_vae.model.datasets import load_factors, load_training_set
from napari_affinity_vae.simulate.affinity import library_affinity
from napari_affinity_vae.simulate.geometry import relion_matrix


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory):
    """Training boxes of two classes; held-out boxes of those and of a class never trained on."""
    root = tmp_path_factory.mktemp("sets")
    common = ["--subtomograms", "8", "--box", "16", "--classes", "globular", "tetrahedral"]
    assert main(["simulate", str(root / "train"), *common, "--seed", "1"]) == 0
    assert main(["simulate", str(root / "test"), *common, "filament", "--seed", "2"]) == 0
    return root


def test_simulator_training_set(tiny_sets):
    data = load_training_set(tiny_sets / "train")
    assert data.boxes.shape == (16, 16, 16, 16) and data.classes == ["globular", "tetrahedral"]
    np.testing.assert_allclose(data.boxes.mean(axis=(1, 2, 3)), 0, atol=1e-5)  # normalised
    assert data.affinity.shape == (2, 2) and data.angles.shape == (16, 3)


def test_simulator_sets_know_the_factors_of_each_box(tiny_sets, tmp_path):
    factors = load_factors(tiny_sets / "train")
    orientation = [f"R_{i}{j}" for i in "xyz" for j in "xyz"]
    assert list(factors.columns) == ["class", *orientation, "shift_z", "shift_y", "shift_x"]
    table = pd.read_csv(tiny_sets / "train" / "subtomograms.csv")
    assert list(factors["class"]) == list(table["class_name"])  # row by row as the boxes
    np.testing.assert_allclose(
        factors[["shift_z", "shift_y", "shift_x"]], table.filter(like="shift")
    )
    # the rotation that turns the reference into the particle: RELION's A undone
    matrices = factors[orientation].to_numpy().reshape(-1, 3, 3)
    relion = relion_matrix(table[["rot", "tilt", "psi"]].to_numpy())
    np.testing.assert_allclose(matrices @ relion, np.broadcast_to(np.eye(3), (16, 3, 3)), atol=1e-6)
    assert load_factors(tmp_path) is None  # not a simulator set: no factors known


def test_reference_folder_layout(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        for name in ("alpha", "beta", "gamma"):
            write_mrc(
                tmp_path / f"{name}_{i:03d}.mrc", rng.normal(size=(8, 8, 8)).astype(np.float32)
            )
    (tmp_path / "classes.csv").write_text("alpha,beta\n")
    save_affinity(
        pd.DataFrame([[1, 0.2], [0.2, 1]], columns=["alpha", "beta"]), tmp_path / "affinity.csv"
    )
    data = load_training_set(tmp_path)
    assert data.classes == ["alpha", "beta"] and len(data.boxes) == 6  # gamma not listed
    assert data.affinity[0, 1] == pytest.approx(0.2)


def test_train_resamples_a_folder_of_boxes_to_the_box_asked_for(tmp_path):
    grid = np.stack(np.meshgrid(*[np.arange(16)] * 3, indexing="ij"), axis=-1) - 8
    for i in range(3):
        for name, radius in (("small", 3), ("large", 6)):
            ball = (np.linalg.norm(grid + i % 2, axis=-1) < radius).astype(np.float32)
            write_mrc(tmp_path / f"{name}_{i}.mrc", -ball, voxel_size=5.0)
    save_affinity(pd.DataFrame(np.eye(2), columns=["large", "small"]), tmp_path / "affinity.csv")
    as_they_are = load_training_set(tmp_path)
    assert as_they_are.boxes.shape[1:] == (16, 16, 16) and as_they_are.voxel_size == 5.0
    halved = load_training_set(tmp_path, box=8)
    assert halved.boxes.shape == (6, 8, 8, 8) and halved.voxel_size == 10.0
    large = halved.boxes[halved.labels == 0][0]  # still a ball, of half the radius in voxels
    assert large[4, 4, 4] < large[0, 0, 0] and large[4, 4, 7] > large[4, 4, 5]
    out = tmp_path / "model"
    args = [str(tmp_path), "--out", str(out), "--box", "8", "--depth", "2", "--epochs", "1"]
    assert main(["train", *args]) == 0
    _, card = load_checkpoint(out.with_suffix(".json"))
    assert card.architecture.box == 8 and card.voxel_size == 10.0


def test_tomogram_with_labelled_coordinates(tmp_path, tomogram_file):
    picks = pd.DataFrame(
        {
            "z": [10.0, 10.0],
            "y": [15.0, 15.0],
            "x": [10.0, 30.0],
            "class_name": ["globular", "filament"],
        }
    )
    star = write_particles(picks, tmp_path / "picks.star")
    with pytest.raises(InputFileError, match="no affinity matrix"):
        load_training_set(tomogram_file, star, box=8)  # no CSV, and no fallback given
    data = load_training_set(tomogram_file, star, box=8, fallback_affinity=library_affinity)
    assert data.boxes.shape == (2, 8, 8, 8) and data.voxel_size == pytest.approx(7.5)
    unlabelled = write_particles(picks.drop(columns="class_name"), tmp_path / "plain.star")
    with pytest.raises(InputFileError, match="no class column"):
        load_training_set(tomogram_file, unlabelled)


def test_train_then_evaluate(tiny_sets, tmp_path, capsys):
    out = tmp_path / "tiny"
    assert (
        main(
            [
                "train",
                str(tiny_sets / "train"),
                "--out",
                str(out),
                "--epochs",
                "3",
                "--batch-size",
                "8",
                "--capacity",
                "2",
                "--latent-dims",
                "3",
                "--tc",
                "0.2",
                "--tc-schedule",
                "ramp",
            ]
        )
        == 0
    )
    _, card = load_checkpoint(out.with_suffix(".json"))
    assert card.classes == ["globular", "tetrahedral"] and card.training["epochs_done"] == 3
    assert card.training["command"].startswith("avae train")
    tc = card.training["config"]["tc"]
    assert (tc["kind"], tc["high"]) == ("ramp", 0.2)
    metrics = pd.read_csv(tmp_path / "tiny.metrics.csv")
    assert list(metrics["tc_weight"]) == [0.0, 0.1, 0.2] and metrics["tc"].notna().all()
    report = tmp_path / "report.json"
    assert (
        main(
            [
                "evaluate",
                str(out.with_suffix(".json")),
                "--train",
                str(tiny_sets / "train"),
                "--test",
                str(tiny_sets / "test"),
                "--baseline-epochs",
                "1",
                "--out",
                str(report),
                "--record",
            ]
        )
        == 0
    )
    results = json.loads(report.read_text())
    assert set(results) == {"affinity-vae", "pca", "beta-vae"}
    assert 0 <= results["affinity-vae"]["knn_macro_f1"] <= 1
    assert "pose_r2" in results["affinity-vae"]
    unseen = results["affinity-vae"]["unseen_nearest"]["filament"]
    assert unseen["nearest_in_latent"] in ("globular", "tetrahedral")
    assert unseen["most_similar_by_affinity"] == "tetrahedral"  # correlation 0.37 against 0.36
    # the test set is a simulator set: how each latent follows the factors that made the boxes
    factors = [
        "class",
        *(f"R_{i}{j}" for i in "xyz" for j in "xyz"),
        "shift_z",
        "shift_y",
        "shift_x",
    ]
    for method in ("affinity-vae", "pca", "beta-vae"):
        scores = results[method]
        assert 0 <= scores["mig"] <= 1 and set(scores["mig_by_factor"]) == set(factors)
        table = scores["factor_correlations"]
        assert list(table) == ["latent_0", "latent_1", "latent_2"]  # --latent-dims 3
        assert all(list(row) == factors for row in table.values())
    printed = capsys.readouterr().out
    assert "knn_macro_f1" in printed and "mig" in printed
    best = [line.split() for line in printed.splitlines() if line.startswith("latent_")]
    assert len(best) == 3 and all(len(row) == 1 + 2 * 3 for row in best)  # a factor per method
    assert all(row[1] in factors and 0 <= float(row[2]) <= 1 for row in best)
    _, recorded = load_checkpoint(out.with_suffix(".json"))
    assert recorded.metrics["evaluation"] == results  # --record keeps the figures in the card


def test_a_test_set_of_training_boxes_is_warned_of(tiny_sets, tmp_path, capsys):
    """``avae simulate held_out`` without ``--seed`` repeats the training boxes: evaluate scored
    them as unseen particles (pose error 0.000) without a word."""
    out = tmp_path / "tiny"
    train = str(tiny_sets / "train")
    assert _train(train, out, "--capacity", "2", "--latent-dims", "3") == 0
    checkpoint = str(out.with_suffix(".json"))
    evaluate = ["evaluate", checkpoint, "--train", train, "--no-baselines"]
    assert main([*evaluate, "--test", train]) == 0
    boxes = len(load_training_set(tiny_sets / "train").boxes)
    warned = f"warning: {boxes} of {boxes} test boxes are training boxes too (the same voxels)"
    assert warned in capsys.readouterr().err
    assert main([*evaluate, "--test", str(tiny_sets / "test")]) == 0
    assert "training boxes too" not in capsys.readouterr().err
    assert main([*evaluate, "--test", str(tmp_path / "held_out")]) == 2
    assert "held_out: no such file or folder" in capsys.readouterr().err


def _parameters(path) -> dict:
    model, _ = load_checkpoint(path)
    return {name: value.detach().clone() for name, value in model.named_parameters()}


def _train(source, out, *options: str) -> int:
    """``avae train SOURCE --out OUT`` for one epoch in batches of 8, with ``options``."""
    return main(
        ["train", str(source), "--out", str(out), "--epochs", "1", "--batch-size", "8", *options]
    )


def test_fine_tuning_starts_from_the_model_and_learns_the_sources_classes(tiny_sets, tmp_path):
    base, tuned, scratch = (tmp_path / name for name in ("base.json", "tuned.json", "scratch.json"))
    assert _train(tiny_sets / "train", base, "--capacity", "2") == 0
    assert _train(tiny_sets / "test", tuned, "--init", str(base), "--learning-rate", "1e-9") == 0
    _, card = load_checkpoint(tuned)
    assert card.training["init"] == str(base) and card.architecture.capacity == 2
    assert card.classes == ["filament", "globular", "tetrahedral"]  # the source's, not the model's
    assert [row["epoch"] for row in card.training["history"]] == [1]  # counted from 0
    start, after = _parameters(base), _parameters(tuned)
    for name, value in start.items():
        torch.testing.assert_close(after[name], value, atol=1e-6, rtol=0, msg=name)
    assert _train(tiny_sets / "test", scratch, "--capacity", "2", "--learning-rate", "1e-9") == 0
    assert not torch.allclose(_parameters(scratch)["mu.weight"], start["mu.weight"])


def test_fine_tuning_the_bundled_model(tmp_path):
    source = tmp_path / "set"
    simulated = ["--subtomograms", "2", "--box", "32", "--classes", "globular", "filament"]
    assert main(["simulate", str(source), *simulated, "--seed", "3"]) == 0
    out = tmp_path / "tuned"
    args = ["train", str(source), "--out", str(out), "--init", "bundled", "--epochs", "1"]
    assert main([*args, "--validation", "0"]) == 0
    _, card = load_checkpoint(out.with_suffix(".json"))
    assert card.training["init"] == "bundled" and card.classes == ["filament", "globular"]
    assert card.architecture == load_bundled()[1].architecture
    assert card.training["config"]["batch_size"] == 8  # "auto", for 4 boxes


def test_fine_tuning_refuses_what_does_not_fit(tiny_sets, tmp_path, capsys):
    args = ["train", str(tiny_sets / "train"), "--out", str(tmp_path / "m"), "--epochs", "1"]
    assert main([*args, "--init", "bundled"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    card = BUNDLED.with_suffix(".json")
    expects = "model expects 32^3 boxes at 10 A/voxel, got 16^3 boxes at 10 A/voxel"
    assert error == f"avae train: error: {card}: {expects}"
    assert main([*args, "--init", "bundled", "--capacity", "4", "--latent-dims", "2"]) == 2
    drop = "a run from bundled keeps its architecture: drop --capacity, --latent-dims"
    assert drop in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--init", "bundled", "--resume", str(card)])
    assert "--resume: not allowed with argument --init" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


REFERENCE_AFFINITY = (  # as the reference affinity-VAE writes it: class names, no index column
    "globular,tetrahedral\n"
    "1.000000000000000000e+00,2.000000000000000111e-01\n"
    "3.700000000000000178e-01,1.000000000000000000e+00\n"
)


def test_train_on_the_reference_tools_asymmetric_affinity(tiny_sets, tmp_path, capsys):
    affinity = tmp_path / "affinity_scores.csv"
    affinity.write_text(REFERENCE_AFFINITY)
    out = tmp_path / "ref"
    args = ["train", str(tiny_sets / "train"), "--out", str(out), "--affinity", str(affinity)]
    assert main([*args, "--epochs", "1", "--batch-size", "8", "--capacity", "2"]) == 0
    err = capsys.readouterr().err
    assert "avae train: warning:" in err and "affinity_scores.csv" in err
    assert "not symmetric (largest |A - A.T| is 0.17" in err
    _, card = load_checkpoint(out.with_suffix(".json"))
    assert card.training["epochs_done"] == 1
    with pytest.warns(UserWarning, match="not symmetric"):
        data = load_training_set(tiny_sets / "train", affinity=affinity)
    np.testing.assert_allclose(data.affinity, [[1.0, 0.285], [0.285, 1.0]])  # (A + A.T) / 2


def test_affinity_with_an_index_column_in_any_row_order(tmp_path):
    path = tmp_path / "indexed.csv"
    path.write_text(",a,b,c\nc,0.1,-0.5,1\na,1,0.3,0.1\nb,0.3,1,-0.5\n")
    matrix = load_affinity(path)
    assert list(matrix.index) == list(matrix.columns) == ["a", "b", "c"]
    np.testing.assert_allclose(matrix, [[1, 0.3, 0.1], [0.3, 1, -0.5], [0.1, -0.5, 1]])
    symmetric = save_affinity(matrix, tmp_path / "ours.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a symmetric matrix loads without a warning
        pd.testing.assert_frame_equal(load_affinity(symmetric), matrix)


def test_affinity_saved_by_excel_with_semicolons_and_decimal_commas(tmp_path):
    """Refused before as "non-numeric or missing value '1;0'"."""
    path = tmp_path / "excel.csv"
    path.write_text(";ribosome;proteasome\r\nribosome;1;0,25\r\nproteasome;0,25;1\r\n")
    matrix = load_affinity(path)
    assert list(matrix.columns) == ["ribosome", "proteasome"]
    np.testing.assert_allclose(matrix, [[1, 0.25], [0.25, 1]])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a,b\n1,0.5\n", "not square"),
        ("a,b,c\n1,0.5\n0.5,1\n", "not square"),
        (",a,b\na,1,0.5\nc,0.5,1\n", r"header \(a, b\) and of the first column \(a, c\) disagree"),
        ("a,b\n1,x\n0.5,1\n", "non-numeric or missing value 'x' \\(a against b\\)"),
        ("a,b\n1,\n0.5,1\n", "non-numeric or missing value ''"),
        ("a,b\n1,nan\n0.5,1\n", "non-numeric or missing value 'nan'"),
        ("a,b\n1,1.5\n1.5,1\n", r"must lie in \[-1, 1\]; found 1.5 \(a against b\)"),
        ("a,a\n1,0.5\n0.5,1\n", "distinct"),
        ("a,b,c\n0,0.4,0.9\n0.4,0,0.6\n0.9,0.6,0\n", "itself must be 1; found 0 for a and 2 more"),
        ("a,b\n1,0.5\n0.5,0.2\n", r"itself must be 1; found 0.2 for b \(a distance matrix"),
    ],
)
def test_unusable_affinity_files_are_refused(tmp_path, text, problem):
    path = tmp_path / "affinity.csv"
    path.write_text(text)
    with pytest.raises(InputFileError, match=problem) as error:
        load_affinity(path)
    assert str(error.value).startswith(str(path))


def test_train_into_a_missing_folder_is_refused_before_training(tiny_sets, tmp_path, capsys):
    out = tmp_path / "nodir" / "model"
    assert main(["train", str(tiny_sets / "train"), "--out", str(out), "--epochs", "1"]) == 2
    error = capsys.readouterr()
    assert f"folder {out.parent} does not exist" in error.err and "epoch" not in error.err
    assert not out.parent.exists()


def test_ctrl_c_in_training_keeps_a_checkpoint_to_resume_or_leaves_nothing(
    tiny_sets, tmp_path, capsys, monkeypatch
):
    from napari_affinity_vae.model import train as training

    epochs = training.training_epochs

    def two_then_ctrl_c(*args, **kwargs):
        for done, epoch in enumerate(epochs(*args, **kwargs), 1):
            yield epoch
            if done == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(training, "training_epochs", two_then_ctrl_c)
    args = ["train", str(tiny_sets / "train"), "--epochs", "4", "--out"]
    assert main([*args, str(tmp_path / "plain")]) == 130
    assert "cancelled; no partial files were left" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # its metrics file, written as it went, removed
    assert main([*args, str(tmp_path / "kept"), "--checkpoint-every", "1"]) == 130
    said = capsys.readouterr().err
    kept = "kept.safetensors, kept.json, kept.metrics.csv"
    assert f"cancelled; kept {kept} (--resume {tmp_path / 'kept.json'} goes on from there)" in said
    monkeypatch.undo()
    resumed = [*args, str(tmp_path / "resumed"), "--resume", str(tmp_path / "kept.json")]
    assert main(resumed) == 0
    assert load_checkpoint(tmp_path / "resumed.json")[1].training["epochs_done"] == 4


def _flat_run(sets, out, epochs: int, *options: str) -> int:
    """``avae train`` at a learning rate high enough for the losses to go up and down, every
    weight flat (so that a shorter run is the start of a longer one), a quarter held out."""
    return _train(
        sets / "train",
        out,
        *("--epochs", str(epochs), "--learning-rate", "0.03"),
        *("--beta-schedule", "flat", "--validation", "0.25", "--seed", "3", *options),
    )


def test_train_writes_the_best_epoch_and_resumes_from_it(tiny_sets, tmp_path, capsys):
    assert _flat_run(tiny_sets, tmp_path / "best", 6) == 0
    _, card = load_checkpoint(tmp_path / "best.json")
    metrics = pd.read_csv(tmp_path / "best.metrics.csv")
    full = metrics["val_reconstruction"] + 1e-3 * metrics["val_kl"] + metrics["val_affinity"]
    best = int(metrics["epoch"][full.idxmin()])
    assert card.training["best_epoch"] == best < 6  # the lowest validation loss, not the last
    assert card.training["epochs_done"] == 6 and len(metrics) == 6
    assert f"epoch {best} of 6, val loss" in capsys.readouterr().out
    # its weights are those of a run stopped at that epoch
    assert _flat_run(tiny_sets, tmp_path / "short", best) == 0
    expected = _parameters(tmp_path / "short.json")
    for name, value in _parameters(tmp_path / "best.json").items():
        torch.testing.assert_close(value, expected[name], msg=name)
    # --keep last writes the sixth epoch's
    assert _flat_run(tiny_sets, tmp_path / "last", 6, "--keep", "last") == 0
    _, last = load_checkpoint(tmp_path / "last.json")
    assert "best_epoch" not in last.training
    sixth = _parameters(tmp_path / "last.json")
    assert not all(torch.equal(value, expected[name]) for name, value in sixth.items())
    # a resumed run goes on from the epoch it kept, not from where the first run stopped
    resumed = tmp_path / "resumed"
    assert _flat_run(tiny_sets, resumed, 7, "--resume", str(tmp_path / "best.json")) == 0
    history = pd.read_csv(tmp_path / "resumed.metrics.csv")
    assert list(history["epoch"]) == list(range(1, 8))
    pd.testing.assert_frame_equal(
        history.iloc[:best].drop(columns="samples_per_second"),
        metrics.iloc[:best].drop(columns="samples_per_second"),
    )


def test_resuming_with_another_split_is_refused(tiny_sets, tmp_path, capsys):
    assert _flat_run(tiny_sets, tmp_path / "run", 1) == 0
    capsys.readouterr()
    card = tmp_path / "run.json"
    for option in (["--validation", "0.5"], ["--seed", "4"]):
        args = ["--resume", str(card), "--validation", "0.25", "--seed", "3", *option]
        assert _train(tiny_sets / "train", tmp_path / "more", *args) == 2
        err = capsys.readouterr().err
        assert "run.json" in err and f"trained with {option[0]} " in err
        assert not (tmp_path / "more.json").exists()
    # another set (the held-out one, of a third class): the card and best epoch would mix sets
    args = ["--resume", str(card), "--validation", "0.25", "--seed", "3", "--epochs", "2"]
    assert _train(tiny_sets / "test", tmp_path / "more", *args) == 2
    err = capsys.readouterr().err
    assert "run.json: this run was trained on " in err and "classes globular, tetrahedral;" in err
    assert not (tmp_path / "more.json").exists()
    # a run already as long as asked: nothing to train, and no copy that looks like a new run
    assert _flat_run(tiny_sets, tmp_path / "more", 1, "--resume", str(card)) == 2
    err = capsys.readouterr().err
    assert "run.json: its weights are of epoch 1, and 1 epochs were asked for" in err
    assert not (tmp_path / "more.json").exists()


def test_simulate_cuts_training_boxes_of_64_voxels(tmp_path):
    """Boxes of 64 voxels (common at 5 Å) were refused: 'a globular (10 voxels across) does
    not fit in (64, 256, 256)', the tomogram they are cut from being 64 slices deep."""
    out = tmp_path / "big"
    args = ["simulate", str(out), "--subtomograms", "1", "--box", "64", "--classes", "globular"]
    assert main(args) == 0
    assert load_training_set(out).boxes.shape == (1, 64, 64, 64)


def test_evaluating_on_fewer_training_boxes_than_neighbours_is_refused(tiny_sets, tmp_path, capsys):
    """A training set of 4 boxes ended in scikit-learn's traceback: 5 neighbours asked of 4."""
    few, model = tmp_path / "few", tmp_path / "m"
    simulated = ["--subtomograms", "2", "--box", "16", "--classes", "globular", "tetrahedral"]
    assert main(["simulate", str(few), *simulated, "--seed", "5"]) == 0
    assert _train(tiny_sets / "train", model, "--capacity", "2") == 0
    test = str(tiny_sets / "test")
    args = ["evaluate", str(model.with_suffix(".json")), "--train", str(few), "--test", test]
    assert main([*args, "--no-baselines"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith(
        "(4 boxes of 2 classes) is too small: the kNN scores take each test box's 5 nearest; "
        "give at least 5 boxes"
    )


def test_pose_consistency_of_a_convolutional_model_is_refused_before_training(
    tiny_sets, tmp_path, capsys
):
    """It ended in a traceback after the boxes were read."""
    base = tmp_path / "conv"
    assert _train(tiny_sets / "train", base, "--capacity", "2") == 0
    weighed = ["--pose-consistency", "1"]
    assert _train(tiny_sets / "train", tmp_path / "a", "--capacity", "2", *weighed) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith("weighs the pose of a splat model turning in 3D: give --decoder splat")
    init = ["--init", str(base.with_suffix(".json"))]
    assert _train(tiny_sets / "train", tmp_path / "b", *init, *weighed) == 2
    assert capsys.readouterr().err.strip().endswith(f"{base.with_suffix('.json')} is not one")
    assert not list(tmp_path.glob("[ab].*"))  # nothing written


def test_a_training_set_of_one_large_molecule_is_simulated_however_crowded(tmp_path):
    """48 ribosomes at 8 A/voxel never fit one training tomogram: the set was refused with advice
    (fewer particles, a larger volume) that its options could not follow."""
    args = ["--box", "16", "--subtomograms", "2", "--classes", "ribosome", "--voxel-size", "8"]
    assert main(["simulate", str(tmp_path / "set"), *args, "--seed", "4"]) == 0
    assert load_training_set(tmp_path / "set").boxes.shape == (2, 16, 16, 16)
