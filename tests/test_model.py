"""The affinity-VAE: shapes, loss terms against hand-computed values, schedules, checkpoints
and their refusals, and training that lowers the loss."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from napari_affinity_vae.model.checkpoint import (
    CheckpointError,
    ModelCard,
    check_fits,
    load_checkpoint,
    save_checkpoint,
)
from napari_affinity_vae.model.inference import decode, encode, for_inference
from napari_affinity_vae.model.losses import (
    Schedule,
    affinity_loss,
    kl_divergence,
    reconstruction_loss,
    total_correlation,
)
from napari_affinity_vae.model.network import AffinityVAE, Architecture
from napari_affinity_vae.model.train import (
    TrainingConfig,
    TrainingData,
    sized_for,
    split,
    train,
    training_epochs,
)
from napari_affinity_vae.operations.training import preview_sample
from napari_affinity_vae.volumes import normalise


@pytest.mark.parametrize(("ndim", "box"), [(3, 32), (2, 32), (3, 16)])
def test_shapes(ndim, box):
    arch = Architecture(box=box, ndim=ndim, depth=3, capacity=4, latent_dims=5, pose_dims=2)
    model = AffinityVAE(arch).eval()
    x = torch.randn(3, 1, *(box,) * ndim)
    reconstruction, mu, log_variance, pose = model(x)
    assert reconstruction.shape == x.shape
    assert mu.shape == log_variance.shape == (3, 5) and pose.shape == (3, 2)
    torch.testing.assert_close(model.decode(mu, pose), reconstruction)  # eval: no sampling


@pytest.mark.parametrize(
    "arch",
    [
        Architecture(box=16, ndim=3, depth=2, capacity=4, latent_dims=5, pose_dims=2),
        Architecture(box=16, ndim=2, depth=2, capacity=4, latent_dims=5, pose_dims=2),
        Architecture(box=16, depth=2, capacity=4, decoder="splat", pose_dims=4, splat_convs=1),
    ],
    ids=["3d", "2d", "splat"],
)
def test_the_copy_made_for_inference_gives_the_models_outputs(arch):
    """Batch normalisation folded into the convolutions, the channels-last layout: the latents,
    pose and reconstruction errors of the trained model, which itself is left as it was."""
    torch.manual_seed(0)
    model = AffinityVAE(arch)
    for layer in model.modules():  # statistics a trained model would have, not 0 and 1
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.running_mean.uniform_(-1, 1)
            layer.running_var.uniform_(0.5, 2)
            layer.weight.data.uniform_(0.5, 2)
            layer.bias.data.uniform_(-1, 1)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    boxes = normalise(np.random.default_rng(0).normal(size=(5, *(16,) * arch.ndim)))
    prepared = for_inference(model)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in prepared.encoder)
    assert for_inference(prepared) is prepared
    encoded = encode(prepared, boxes)
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(boxes).unsqueeze(1)
        mu, _, pose = model.encode(x)
        error = ((model.decode(mu, pose) - x) ** 2).flatten(1).mean(dim=1)
    for key, expected in (("mu", mu), ("pose", pose), ("error", error)):
        np.testing.assert_allclose(encoded[key], expected.numpy(), rtol=1e-4, atol=1e-5)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.encoder)


def test_the_copy_for_inference_is_made_again_once_the_weights_change():
    """Kept for the tomograms of a project (and a worker's tasks), but never stale: an optimiser
    step, as fine-tuning in the Train dock takes, gives a new copy with the new weights."""
    torch.manual_seed(0)
    model = AffinityVAE(Architecture(box=16, depth=2, capacity=4, latent_dims=3))
    boxes = normalise(np.random.default_rng(0).normal(size=(4, 16, 16, 16)))
    first = for_inference(model)
    assert for_inference(model) is first
    before = encode(model, boxes, error=False)["mu"]
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    model(torch.from_numpy(boxes).unsqueeze(1))[1].sum().backward()
    optimiser.step()
    assert for_inference(model) is not first
    after = encode(model, boxes, error=False)["mu"]
    model.eval()
    with torch.no_grad():
        expected = model.encode(torch.from_numpy(boxes).unsqueeze(1))[0].numpy()
    np.testing.assert_allclose(after, expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(after, before, atol=1e-3)
    for change in (  # edits torch's version counters do not see, as a script might make them
        lambda: model.mu.weight.data.mul_(2),
        lambda: model.mu.weight.detach().numpy().__imul__(-1),
    ):
        change()
        with torch.no_grad():
            expected = model.encode(torch.from_numpy(boxes).unsqueeze(1))[0].numpy()
        np.testing.assert_allclose(
            encode(model, boxes, error=False)["mu"], expected, rtol=1e-4, atol=1e-5
        )


def test_the_copy_for_inference_runs_without_hooks_and_from_inference_tensors():
    """A model built under inference mode encodes (its tensors have no version counter), and a
    hook on the model neither fires in the copy nor outlives its removal there."""
    with torch.inference_mode():
        model = AffinityVAE(Architecture(box=16, depth=2, capacity=4, latent_dims=3))
    boxes = normalise(np.random.default_rng(0).normal(size=(2, 16, 16, 16)))
    calls: list[int] = []
    hook = model.mu.register_forward_pre_hook(lambda *_: calls.append(1))
    assert encode(model, boxes, error=False)["mu"].shape == (2, 3)
    hook.remove()
    assert calls == []
    prepared = for_inference(model)
    assert not any(p.requires_grad or p.is_inference() for p in prepared.parameters())


def test_box_must_divide_by_two_to_the_depth():
    with pytest.raises(ValueError, match=r"box 30 is not divisible by 2\*\*depth = 8"):
        Architecture(box=30, depth=3)


def test_no_pose_is_a_plain_vae():
    model = AffinityVAE(Architecture(box=16, capacity=2, pose_dims=0)).eval()
    _, _, _, pose = model(torch.randn(2, 1, 16, 16, 16))
    assert pose.shape == (2, 0)


def test_reconstruction_and_kl_hand_computed():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    b = torch.tensor([[1.0, 0.0], [3.0, 6.0]])
    assert reconstruction_loss(a, b).item() == pytest.approx((4 + 4) / 4)
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    log_variance = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # sample 1: -0.5 * [(1 + 0 - 1 - 1) + (1 + ln2 - 0 - 2)] ; sample 2: -0.5 * [0 + (1 - 4 - 1)]
    first = -0.5 * ((1 + 0 - 1 - 1) + (1 + math.log(2) - 0 - 2))
    second = -0.5 * (0 + (1 + 0 - 4 - 1))
    assert kl_divergence(mu, log_variance).item() == pytest.approx((first + second) / 2)


def test_affinity_loss_hand_computed():
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 0])
    affinity = torch.tensor([[1.0, -0.5], [-0.5, 1.0]])
    # pairs (0,1): cos 0 vs -0.5; (0,2): cos 1/sqrt2 vs 1; (1,2): cos 1/sqrt2 vs -0.5
    expected = (0.5 + (1 - 1 / math.sqrt(2)) + (1 / math.sqrt(2) + 0.5)) / 3
    assert affinity_loss(mu, labels, affinity).item() == pytest.approx(expected, rel=1e-6)
    assert affinity_loss(mu[:1], labels[:1], affinity).item() == 0.0


def _posteriors(mu: torch.Tensor, variance: float, generator: torch.Generator) -> tuple:
    """Sampled latents, means and log-variances of Gaussian posteriors of ``variance`` at ``mu``."""
    log_variance = torch.full_like(mu, math.log(variance))
    latent = mu + math.sqrt(variance) * torch.randn(mu.shape, generator=generator)
    return latent, mu, log_variance


def test_total_correlation_of_independent_and_of_correlated_latents():
    generator = torch.Generator().manual_seed(0)
    n, dims = 2048, 4  # posteriors of variance 1/2 about means of variance 1/2: z ~ N(0, I)
    independent = _posteriors(torch.randn(n, dims, generator=generator) / 2**0.5, 0.5, generator)
    assert abs(total_correlation(*independent, dataset_size=n).item()) < 0.02
    shared = torch.randn(n, 1, generator=generator)
    mixed = 0.9 * shared + 0.1 * torch.randn(n, dims, generator=generator)
    latent, mu, log_variance = _posteriors(mixed / 2**0.5, 0.5, generator)
    mu.requires_grad_(True)
    estimate = total_correlation(latent, mu, log_variance, dataset_size=n)
    # z is Gaussian with unit-ish variances and correlation rho between every two dimensions:
    # TC = -log det(correlation) / 2
    rho = 0.81 * 0.5 / (0.82 * 0.5 + 0.5)
    exact = -0.5 * math.log((1 - rho) ** (dims - 1) * (1 + (dims - 1) * rho))
    assert estimate.item() == pytest.approx(exact, abs=0.05) and exact > 0.4
    estimate.backward()
    assert mu.grad.abs().sum() > 0
    assert total_correlation(latent[:1], mu[:1], log_variance[:1], dataset_size=n).item() == 0.0
    with pytest.raises(ValueError, match="smaller than the batch"):
        total_correlation(latent, mu, log_variance, dataset_size=n - 1)


def test_schedules():
    assert Schedule("flat", high=0.3).value(7, 10) == 0.3
    ramp = Schedule("ramp", high=1.0, low=0.0)
    assert [ramp.value(e, 5) for e in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    linear = Schedule("cyclical_linear", high=1.0, n_cycles=2, ratio=0.5)
    assert [linear.value(e, 8) for e in range(8)] == [0, 0.5, 1, 1, 0, 0.5, 1, 1]
    short = Schedule("cyclical_linear", high=1.0)  # 4 cycles in 2 epochs: the weight stayed 0
    assert [short.value(e, 2) for e in range(2)] == [0, 1]
    assert [short.value(e, 5) for e in range(5)] == pytest.approx([0, 0.8, 1, 0.4, 1])  # 2 cycles
    sigmoid = Schedule("cyclical_sigmoid", high=1.0, n_cycles=1, ratio=1.0)
    assert sigmoid.value(0, 10) < 0.01 and sigmoid.value(5, 10) == pytest.approx(0.5)
    cosine = Schedule("cyclical_cosine", high=2.0, n_cycles=1, ratio=1.0)
    assert cosine.value(5, 10) == pytest.approx(1.0) and cosine.value(0, 10) == 0.0
    with pytest.raises(ValueError, match="schedule must be one of"):
        Schedule("exponential")


def _card(arch: Architecture) -> ModelCard:
    return ModelCard(arch, 10.0, ["a", "b"], [[1.0, -1.0], [-1.0, 1.0]])


def test_checkpoint_round_trip(tmp_path):
    arch = Architecture(box=16, capacity=2, latent_dims=3)
    model = AffinityVAE(arch).eval()
    weights, card_path = save_checkpoint(model, _card(arch), tmp_path / "m")
    assert weights.suffix == ".safetensors" and card_path.suffix == ".json"
    loaded, card = load_checkpoint(card_path)
    assert card.architecture == arch and card.classes == ["a", "b"]
    assert card.versions["torch"] == torch.__version__
    x = torch.randn(2, 1, 16, 16, 16)
    torch.testing.assert_close(loaded(x)[1], model(x)[1])


def test_checkpoint_with_a_dotted_name_keeps_it_and_saves_both_files_or_neither(
    tmp_path, monkeypatch
):
    arch = Architecture(box=16, capacity=2, latent_dims=3)
    weights, card_path = save_checkpoint(AffinityVAE(arch), _card(arch), tmp_path / "model_v1.5")
    assert (weights.name, card_path.name) == ("model_v1.5.safetensors", "model_v1.5.json")
    assert load_checkpoint(tmp_path / "model_v1.5")[1].classes == ["a", "b"]
    before = (weights.read_bytes(), card_path.read_text())
    other = _card(arch)
    other.classes = ["c", "d"]

    def full_disk(self):
        raise OSError("No space left on device")

    monkeypatch.setattr(ModelCard, "to_json", full_disk)
    with pytest.raises(CheckpointError, match=r"cannot be written \(No space left on device\)"):
        save_checkpoint(AffinityVAE(arch), other, weights)
    assert (weights.read_bytes(), card_path.read_text()) == before  # the old pair, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [card_path.name, weights.name]
    monkeypatch.undo()
    (tmp_path / "taken.safetensors").mkdir()  # a folder where the weights would go
    (tmp_path / "taken.json").write_text(before[1])
    with pytest.raises(CheckpointError, match=r"taken\.safetensors: is a folder"):
        save_checkpoint(AffinityVAE(arch), other, tmp_path / "taken")
    assert (tmp_path / "taken.json").read_text() == before[1]  # not replaced without weights


def test_checkpoint_refusals(tmp_path):
    arch = Architecture(box=16, capacity=2, latent_dims=3)
    weights, card_path = save_checkpoint(AffinityVAE(arch), _card(arch), tmp_path / "m")
    _, card = load_checkpoint(weights)
    with pytest.raises(CheckpointError, match=r"model expects 16\^3 boxes at 10 A/voxel"):
        check_fits(card, 32, 10.0, "tomo.mrc")
    check_fits(card, 16, 10.0, "tomo.mrc")
    other = json.loads(card_path.read_text())
    other["architecture"]["latent_dims"] = 4
    card_path.write_text(json.dumps(other))
    with pytest.raises(CheckpointError, match=r"do not fit.*mu.weight is \(3, 64\), not \(4, 64\)"):
        load_checkpoint(weights)
    for size in (0, -10, None, "ten", float("inf")):  # tracebacks, or -32 voxels a side
        other = json.loads(_card(arch).to_json()) | {"voxel_size": size}
        card_path.write_text(json.dumps(other))
        with pytest.raises(CheckpointError, match=r"m\.json: voxel_size must be a positive num"):
            load_checkpoint(weights)
    card_path.write_text("{not json")
    with pytest.raises(CheckpointError, match=r"m\.json: not a readable JSON"):
        load_checkpoint(weights)
    card_path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not a model card"):
        load_checkpoint(weights)
    weights.write_bytes(b"\x80\x04pickle, never loaded")
    card_path.write_text(_card(arch).to_json())
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(weights)
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "absent.json")


def _toy_data(n: int = 96, box: int = 16) -> TrainingData:
    """Two classes: a bright cube or a bright bar in noise."""
    rng = np.random.default_rng(0)
    boxes = rng.normal(0, 0.3, (n, box, box, box)).astype(np.float32)
    labels = np.arange(n) % 2
    boxes[labels == 0, 5:11, 5:11, 5:11] += 1
    boxes[labels == 1, 2:14, 7:9, 7:9] += 1
    return TrainingData(
        normalise(boxes), labels, ["cube", "bar"], np.array([[1, -1], [-1, 1.0]]), 10.0
    )


def test_training_lowers_the_loss_and_separates_classes(tmp_path):
    arch = Architecture(box=16, capacity=4, latent_dims=4, pose_dims=1)
    config = TrainingConfig(epochs=12, batch_size=16, learning_rate=3e-3, checkpoint_every=5)
    model, card, history = train(_toy_data(), arch, config, out=tmp_path / "toy")
    assert history["loss"].iloc[-1] < 0.7 * history["loss"].iloc[0]
    assert history["val_affinity"].iloc[-1] < history["val_affinity"].iloc[0]
    assert (tmp_path / "toy.metrics.csv").read_text().startswith("epoch,")
    assert card.training["epochs_done"] == 12
    data = _toy_data(40)
    mu = encode(model, data.boxes)["mu"]
    unit = mu / np.linalg.norm(mu, axis=1, keepdims=True)
    cosine = unit @ unit.T
    same = cosine[data.labels[:, None] == data.labels[None]].mean()
    different = cosine[data.labels[:, None] != data.labels[None]].mean()
    assert same - different > 0.5  # the affinity term pulls classes apart
    assert decode(model, mu[:2], np.zeros((2, 1))).shape == (2, 16, 16, 16)


def test_the_total_correlation_term_disentangles_and_is_logged(tmp_path):
    arch = Architecture(box=16, capacity=4, latent_dims=4, pose_dims=1)
    final = {}
    for name, weight in (("plain", 0.0), ("tc", 0.1)):
        config = TrainingConfig(
            epochs=6, batch_size=16, learning_rate=3e-3, tc=Schedule("flat", high=weight)
        )
        _, _, history = train(_toy_data(), arch, config, out=tmp_path / name)
        final[weight] = history["val_tc"].iloc[-1]
        assert (history["tc_weight"] == weight).all()
        metrics = pd.read_csv(tmp_path / f"{name}.metrics.csv")
        assert {"tc", "val_tc", "tc_weight"} <= set(metrics.columns)
        _, saved = load_checkpoint(tmp_path / f"{name}.json")
        assert TrainingConfig.from_dict(saved.training["config"]) == config
    # the affinity term alone lines the two classes up along one direction of the latent, its
    # dimensions moving together; the TC term turns that direction onto fewer of them
    assert final[0.0] > 1.0 and final[0.1] < 0.3 * final[0.0]


def test_configs_of_cards_from_before_the_tc_term_load():
    from napari_affinity_vae.model.bundled import load_bundled

    _, card = load_bundled()
    assert "tc" not in card.training["config"]
    config = TrainingConfig.from_dict(card.training["config"])
    assert config.tc == Schedule("flat", high=0.0) and config.beta.kind == "cyclical_linear"


def test_resume_continues_counting_epochs(tmp_path, monkeypatch):
    import napari_affinity_vae.model.train as training

    arch = Architecture(box=16, capacity=2, latent_dims=2)
    # the checkpoint is trained with seed 1 and resumed with it (the same boxes held out); a
    # new model of that seed has the first run's starting weights, not the checkpoint's
    _, first_card, first = train(
        _toy_data(32), arch, TrainingConfig(epochs=2, batch_size=16, seed=1), out=tmp_path / "r"
    )
    checkpoint, _ = load_checkpoint(tmp_path / "r.json")
    starting: list[dict] = []
    loss_terms = training._loss_terms

    def record_first_weights(model, *args, **kwargs):
        if not starting:
            starting.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        return loss_terms(model, *args, **kwargs)

    monkeypatch.setattr(training, "_loss_terms", record_first_weights)
    _, card, history = train(
        _toy_data(32),
        arch,
        TrainingConfig(epochs=4, batch_size=16, seed=1),
        out=tmp_path / "r2",
        resume=tmp_path / "r.json",
    )
    assert list(history["epoch"]) == [1, 2, 3, 4] and card.training["epochs_done"] == 4
    # the first two epochs are the checkpoint's, not epochs run again
    pd.testing.assert_frame_equal(history.iloc[:2], first, check_dtype=False)
    assert first_card.training["history"] == history.iloc[:2].to_dict("records")
    # training went on from the checkpoint's weights
    for name, value in checkpoint.state_dict().items():
        torch.testing.assert_close(starting[0][name], value, msg=name)


def test_augmented_training_is_the_same_for_the_same_seed():
    data, arch = _toy_data(32), Architecture(box=16, capacity=2, latent_dims=2)
    initial = AffinityVAE(arch).state_dict()  # the same start for the three runs
    runs = []
    for augment in (True, True, False):
        model = AffinityVAE(arch)
        model.load_state_dict(initial)
        config = TrainingConfig(epochs=2, batch_size=16, augment=augment)
        runs.append(pd.DataFrame(epoch.row for epoch in training_epochs(data, model, config)))
    timing = ["samples_per_second"]
    pd.testing.assert_frame_equal(runs[0].drop(columns=timing), runs[1].drop(columns=timing))
    assert not np.allclose(runs[0]["loss"], runs[2]["loss"])  # the boxes were turned


def test_training_from_scratch_is_the_same_for_the_same_seed():
    data, arch = _toy_data(32), Architecture(box=16, capacity=2, latent_dims=2)
    weights = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed + 100)  # whatever torch's global generator holds
        model, _, _ = train(data, arch, TrainingConfig(epochs=1, batch_size=16, seed=seed))
        weights.append(model.state_dict())
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, msg=name)
    assert not torch.allclose(weights[0]["mu.weight"], weights[2]["mu.weight"])


def test_early_stop(tmp_path):
    arch = Architecture(box=16, capacity=2, latent_dims=2)
    config = TrainingConfig(epochs=50, batch_size=16, learning_rate=0.0, patience=2)
    _, _, history = train(_toy_data(32), arch, config)
    assert len(history) < 50


def _checkpoint_of(arch: Architecture, path) -> tuple:
    _, card_path = save_checkpoint(AffinityVAE(arch), _card(arch), path)
    return (*load_checkpoint(card_path), card_path)


def test_a_model_for_2d_images_is_refused_before_embedding(tmp_path):
    from napari_affinity_vae.io.tomogram import Tomogram
    from napari_affinity_vae.model.embedding import embed_steps

    model, card, card_path = _checkpoint_of(
        Architecture(box=16, ndim=2, capacity=2, latent_dims=3), tmp_path / "flat"
    )
    tomogram = Tomogram(tmp_path / "t.mrc", np.zeros((40, 40, 40), np.float32), 10.0, True)
    picks = pd.DataFrame({"z": [20.0], "y": [20.0], "x": [20.0]})
    with pytest.raises(CheckpointError, match=r"model expects 16\^2 boxes .* got 16\^3") as error:
        next(embed_steps(tomogram, picks, model, card))
    assert error.value.path == card_path
    _, card, _ = _checkpoint_of(Architecture(box=16, capacity=2), tmp_path / "small")
    other = AffinityVAE(Architecture(box=32, capacity=2))  # not the network of that card
    with pytest.raises(CheckpointError, match=r"expects 16\^3 boxes .* got 32\^3"):
        next(embed_steps(tomogram, picks, other, card))


def test_evaluating_on_boxes_of_another_size_is_refused(tmp_path):
    from napari_affinity_vae.operations.evaluate import evaluate

    model, card, card_path = _checkpoint_of(
        Architecture(box=32, capacity=2, latent_dims=3), tmp_path / "big"
    )
    data = _toy_data(8)  # 16^3 boxes
    with pytest.raises(CheckpointError, match=r"expects 32\^3 boxes at 10 A/voxel, got 16\^3"):
        evaluate(model, card, data, data, baselines=False)
    coarse = TrainingData(data.boxes, data.labels, data.classes, data.affinity, 20.0)
    model, card, card_path = _checkpoint_of(
        Architecture(box=16, capacity=2, latent_dims=3), tmp_path / "small"
    )
    with pytest.raises(CheckpointError, match=r"got 16\^3 boxes at 20 A/voxel") as error:
        evaluate(model, card, coarse, coarse, baselines=False)
    assert str(error.value).startswith(str(card_path))


def test_the_validation_split_never_takes_a_small_class_s_last_particles():
    """A tenth of each class, rounded down: a class of 7 (a small set's rarest) is trained on
    whole, one of 28 gives 2; the preview then shows every particle, its legend says so."""
    labels = np.repeat([0, 1, 2], [7, 28, 40])
    train_rows, held = split(labels, 0.1, seed=3)
    assert np.bincount(labels[held], minlength=3).tolist() == [0, 2, 4]
    assert sorted([*train_rows, *held]) == list(range(75))
    assert split(labels, 0.0, seed=3)[1].size == 0
    kept, _ = split(labels, 0.9999999999, seed=3)  # never a whole class
    assert np.bincount(labels[kept]).tolist() == [1, 1, 1]
    rows, held_out = preview_sample(labels, held)
    assert not held_out and len(rows) == 75
    rows, held_out = preview_sample(labels[7:], split(labels[7:], 0.1, seed=3)[1])
    assert held_out and len(rows) == 6


def test_a_small_set_trains_in_batches_that_make_steps_enough_an_epoch(tmp_path):
    """70 boxes in batches of 64 are two steps an epoch; the automatic size gives 8 and more
    steps, up to batches of 64 for large sets; a size asked for is kept, and the card names
    the size trained with."""
    auto = TrainingConfig(validation_fraction=0.1)
    sizes = {n: sized_for(auto, np.arange(n) % 4).batch_size for n in (2, 70, 300, 600, 6000)}
    assert sizes == {2: 8, 70: 8, 300: 32, 600: 64, 6000: 64}  # 600: 540 trained on
    assert sized_for(TrainingConfig(batch_size=5), np.arange(6000) % 4).batch_size == 5
    _, card, _ = train(_toy_data(40), Architecture(box=16, capacity=2), TrainingConfig(epochs=1))
    assert card.training["config"]["batch_size"] == 8


def test_a_stop_asked_within_an_epoch_ends_training_before_the_next_batch():
    """Cancel in the Train dock said "cancelled" while the epoch ran on to its end (a minute
    for a large project)."""
    arch = Architecture(box=16, capacity=2, latent_dims=2)
    model = AffinityVAE(arch)
    before = copy.deepcopy(model.state_dict())
    asked = []

    def stop() -> bool:  # asked before each batch; the user cancels after the first
        asked.append(True)
        return len(asked) > 1

    config = TrainingConfig(epochs=3, batch_size=8, validation_fraction=0.0)
    assert list(training_epochs(_toy_data(32), model, config, stop=stop)) == []
    assert len(asked) == 2  # of 4 batches an epoch: one trained, then stopped
    assert not torch.equal(model.state_dict()["mu.weight"], before["mu.weight"])
