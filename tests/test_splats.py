"""The Gaussian-splat decoder: where splats land in the box, their rotation by the pose against
the simulator's rotation of maps, rendering at other box and voxel sizes, checkpoints of either
decoder, model angles in the particle table, the pose consistency term, and the pose error up
to symmetry that measures it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial.transform import Rotation

from napari_affinity_vae.analysis.pose import MIRROR, chance_errors, pose_angle_scores, pose_errors
from napari_affinity_vae.cli import main
from napari_affinity_vae.io.orientation import angles_to_matrices
from napari_affinity_vae.io.tomogram import Tomogram
from napari_affinity_vae.model import splats as splat_module
from napari_affinity_vae.model.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from napari_affinity_vae.model.embedding import embed_steps
from napari_affinity_vae.model.inference import decode, splats
from napari_affinity_vae.model.losses import Schedule, pose_consistency
from napari_affinity_vae.model.network import AffinityVAE, Architecture
from napari_affinity_vae.model.splats import angles_pose, pose_angles, render, rotation_matrices
from napari_affinity_vae.model.train import TrainingConfig, TrainingData, training_epochs
from napari_affinity_vae.schema import MODEL_ANGLES, derived_columns
from napari_affinity_vae.simulate.geometry import rotate_map
from napari_affinity_vae.simulate.molecules import molecule_map, symmetry

SPLAT = Architecture(box=16, capacity=2, latent_dims=3, decoder="splat", pose_dims=4, splats=32)


def _one_splat(centre_xyz, width: float = 0.15) -> tuple[torch.Tensor, ...]:
    return (
        torch.tensor([[centre_xyz]], dtype=torch.float32),
        torch.ones(1, 1),
        torch.full((1, 1), width),
    )


def test_a_splat_lands_at_its_x_y_z_in_a_z_y_x_box():
    # half-box units: x = +0.5 is a quarter of the box right of the centre voxel (index 16)
    box = render(*_one_splat([0.5, -0.25, 0.0]), box=32, spacing=2 / 32)[0].numpy()
    assert np.unravel_index(box.argmax(), box.shape) == (16, 12, 24)
    assert box.max() == pytest.approx(1.0, abs=1e-6)  # a weight-1 Gaussian peaks at 1
    # width 0.15 half-box units is 2.4 voxels: the profile along x is that Gaussian
    profile = box[16, 12, 24:30]
    expected = np.exp(-(np.arange(6) ** 2) / (2 * 2.4**2))
    np.testing.assert_allclose(profile, expected, atol=1e-5)


def test_turning_the_splats_is_turning_the_map_as_the_simulator_does():
    generator = torch.Generator().manual_seed(0)
    centres = (torch.rand(1, 30, 3, generator=generator) - 0.5) * 0.9
    weights, widths = torch.rand(1, 30, generator=generator), torch.full((1, 30), 0.12)
    quaternion = torch.tensor([[0.8, 0.3, -0.4, 0.2]])
    matrix = rotation_matrices(quaternion)
    still = render(centres, weights, widths, 32, 2 / 32)[0].numpy()
    turned = render(centres @ matrix.transpose(1, 2), weights, widths, 32, 2 / 32)[0].numpy()
    # the simulator's particle of orientation R is reference(R^T r): rotate_map with R^T
    expected = rotate_map(still, matrix[0].numpy().T)
    assert np.corrcoef(turned.ravel(), expected.ravel())[0, 1] > 0.99
    # and the model's angles are RELION's for that rotation
    angles = pose_angles(quaternion.numpy())
    np.testing.assert_allclose(angles_to_matrices(angles)[0], matrix[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(
        rotation_matrices(torch.as_tensor(angles_pose(angles)))[0], matrix[0], atol=1e-6
    )


def test_no_pose_is_no_rotation_and_2d_turns_by_an_angle():
    assert torch.equal(rotation_matrices(torch.zeros(1, 4))[0], torch.eye(3))
    half_turn = rotation_matrices(torch.tensor([[np.pi / 2]]))[0]
    torch.testing.assert_close(half_turn, torch.tensor([[0.0, -1.0], [1.0, 0.0]]))
    centre, weight, width = torch.tensor([[[0.5, 0.0]]]), torch.ones(1, 1), torch.full((1, 1), 0.1)
    image = render(centre, weight, width, 16, 1 / 8)
    assert np.unravel_index(image[0].argmax(), (16, 16)) == (8, 12)  # (y, x)


def test_chunked_rendering_is_the_same(monkeypatch):
    generator = torch.Generator().manual_seed(1)
    centres = torch.rand(5, 20, 3, generator=generator) - 0.5
    weights, widths = torch.rand(5, 20, generator=generator), torch.full((5, 20), 0.1)
    whole = render(centres, weights, widths, 16, 1 / 8)
    monkeypatch.setattr(splat_module, "CHUNK_BYTES", 1)  # one box at a time
    torch.testing.assert_close(render(centres, weights, widths, 16, 1 / 8), whole)


def test_a_splat_model_decodes_at_any_box_and_voxel_size():
    torch.manual_seed(0)
    model = AffinityVAE(SPLAT).eval()
    latent, pose = np.ones((1, 3), np.float32), np.zeros((1, 4), np.float32)
    native = decode(model, latent, pose)
    sharper = decode(model, latent, pose, box=32, zoom=2.0)  # same extent, half the voxel
    assert native.shape == (1, 16, 16, 16) and sharper.shape == (1, 32, 32, 32)
    np.testing.assert_allclose(sharper[0, ::2, ::2, ::2], native[0], atol=1e-5)
    wider = decode(model, latent, pose, box=32)  # same voxel, twice the extent
    np.testing.assert_allclose(wider[0, 8:24, 8:24, 8:24], native[0], atol=1e-5)
    found = splats(model, latent, pose, voxel_size=10.0)
    assert found.centres.shape == (1, 32, 3) and found.weights.shape == found.widths.shape
    assert np.abs(found.centres).max() <= 80.0  # inside the 160 A box
    # widths within 2 % and 10 % of the side, as standard deviations in Angstrom
    assert found.widths.min() >= 0.02 * 160 and found.widths.max() <= 0.1 * 160
    conv = AffinityVAE(Architecture(box=16, capacity=2, latent_dims=3)).eval()
    with pytest.raises(ValueError, match="trained box only"):
        decode(conv, latent, np.zeros((1, 1)), box=32)


def test_splat_architectures_are_checked():
    with pytest.raises(ValueError, match="pose_dims 4 in 3D"):
        Architecture(decoder="splat", pose_dims=1)
    with pytest.raises(ValueError, match="decoder must be one of"):
        Architecture(decoder="points")
    assert Architecture(decoder="splat", pose_dims=0).pose_dims == 0
    assert Architecture(ndim=2, decoder="splat", pose_dims=1).splat_width == (0.02, 0.1)


def test_checkpoints_of_either_decoder_load(tmp_path):
    torch.manual_seed(0)
    refined = Architecture(**{**SPLAT.to_dict(), "splat_convs": 2})
    model = AffinityVAE(refined).eval()
    card = ModelCard(refined, voxel_size=10.0, classes=["a", "b"], affinity=[[1, 0], [0, 1]])
    save_checkpoint(model, card, tmp_path / "splat")
    loaded, loaded_card = load_checkpoint(tmp_path / "splat.json")
    assert loaded_card.architecture == refined
    assert json.loads((tmp_path / "splat.json").read_text())["architecture"]["decoder"] == "splat"
    x = torch.randn(2, 1, 16, 16, 16)
    torch.testing.assert_close(loaded(x)[0], model(x)[0])
    # a card written before the splat decoder has no decoder fields: a convolutional model
    conv = Architecture(box=16, capacity=2, latent_dims=3)
    save_checkpoint(AffinityVAE(conv), ModelCard(conv, 10.0, ["a"], [[1.0]]), tmp_path / "old")
    data = json.loads((tmp_path / "old.json").read_text())
    for key in ("decoder", "splats", "splat_width", "splat_convs"):
        del data["architecture"][key]
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert load_checkpoint(tmp_path / "old.json")[1].architecture.decoder == "conv"


def test_embedding_with_a_splat_model_gives_model_angles_beside_imported_ones():
    torch.manual_seed(0)
    model = AffinityVAE(SPLAT).eval()
    card = ModelCard(SPLAT, voxel_size=10.0, classes=["a"], affinity=[[1.0]])
    data = np.random.default_rng(0).normal(size=(40, 40, 40)).astype(np.float32)
    tomogram = Tomogram("t.mrc", data, 10.0, True)
    picks = pd.DataFrame({"z": [20.0, 18], "y": [20.0, 22], "x": [20.0, 19], "rot": [5.0, 6.0]})
    steps = embed_steps(tomogram, picks, model, card)
    with pytest.raises(StopIteration) as done:
        while True:
            next(steps)
    table = done.value.value
    assert list(table["rot"]) == [5.0, 6.0]  # imported angles untouched
    pose = table[[f"pose_{i}" for i in range(4)]].to_numpy()
    np.testing.assert_allclose(table[list(MODEL_ANGLES)].to_numpy(), pose_angles(pose))
    assert set(MODEL_ANGLES) <= set(derived_columns(table))  # stale with the model


def test_pose_consistency_is_zero_when_the_pose_turns_with_the_box():
    pose = torch.tensor(Rotation.random(6, random_state=0).as_quat()[:, [3, 0, 1, 2]])
    turns = torch.tensor(Rotation.random(6, random_state=1).as_matrix())
    turned = Rotation.from_matrix(turns.numpy()) * Rotation.from_quat(pose[:, [1, 2, 3, 0]])
    turned_pose = torch.tensor(turned.as_quat()[:, [3, 0, 1, 2]])
    assert pose_consistency(pose, turned_pose, turns).item() == pytest.approx(0, abs=1e-12)
    # a pose that stays put when the box turns by 90 degrees: (1 - cos 90) / 2
    quarter = torch.tensor(Rotation.from_euler("z", [[90]] * 6, degrees=True).as_matrix())
    assert pose_consistency(pose, pose, quarter).item() == pytest.approx(0.5)


def test_training_with_pose_consistency_logs_it_and_refuses_a_conv_model():
    rng = np.random.default_rng(0)
    data = TrainingData(
        rng.normal(size=(24, 16, 16, 16)).astype(np.float32),
        np.arange(24) % 2,
        ["a", "b"],
        np.eye(2),
        10.0,
    )
    config = TrainingConfig(epochs=2, batch_size=8, pose=Schedule("flat", high=1.0))
    torch.manual_seed(0)
    rows = [e.row for e in training_epochs(data, AffinityVAE(SPLAT), config)]
    assert rows[-1]["pose_weight"] == 1.0 and 0 < rows[-1]["pose"] <= 1
    assert 0 < rows[-1]["val_pose"] <= 1
    conv = AffinityVAE(Architecture(box=16, capacity=2, latent_dims=3))
    with pytest.raises(ValueError, match="pose consistency needs a splat model"):
        next(training_epochs(data, conv, config))


def test_avae_train_makes_a_splat_model(tmp_path):
    common = ["--subtomograms", "6", "--box", "16", "--classes", "globular", "tetrahedral"]
    assert main(["simulate", str(tmp_path / "set"), *common, "--seed", "1"]) == 0
    out = tmp_path / "splat"
    args = ["train", str(tmp_path / "set"), "--out", str(out), "--epochs", "1", "--capacity", "2"]
    assert main([*args, "--decoder", "splat", "--splats", "16", "--pose-consistency", "0.5"]) == 0
    _, card = load_checkpoint(out.with_suffix(".json"))
    a = card.architecture
    assert (a.decoder, a.pose_dims, a.splats) == ("splat", 4, 16)  # a quaternion by default
    assert card.training["config"]["pose"]["high"] == 0.5
    # fine-tuned, it keeps its pose tied to orientation (as the Train dock does) unless told
    tune = ["train", str(tmp_path / "set"), "--epochs", "1", "--init", str(out)]
    assert main([*tune, "--out", str(tmp_path / "kept")]) == 0
    assert load_checkpoint(tmp_path / "kept.json")[1].training["config"]["pose"]["high"] == 0.5
    assert main([*tune, "--out", str(tmp_path / "off"), "--pose-consistency", "0"]) == 0
    assert load_checkpoint(tmp_path / "off.json")[1].training["config"]["pose"]["high"] == 0.0


@pytest.mark.parametrize("name", ["proteasome", "chaperonin", "single_ring", "tetrahedral"])
def test_symmetry_groups_leave_the_molecules_as_they_are(name):
    volume = molecule_map(name, 10.0)
    group = symmetry(name)
    assert len(group) == {"proteasome": 14, "chaperonin": 14, "single_ring": 7}.get(name, 12)
    for element in group:
        turned = rotate_map(volume, element.as_matrix())
        assert np.corrcoef(volume.ravel(), turned.ravel())[0, 1] > 0.95
    assert len(symmetry("ribosome")) == 1


def test_pose_errors_up_to_symmetry_alignment_and_hand():
    group = symmetry("proteasome")
    true = Rotation.random(300, random_state=1)
    alignment = Rotation.random(random_state=2)
    rng = np.random.default_rng(0)
    equivalent = group[rng.integers(len(group), size=300)]
    noise = Rotation.from_rotvec(rng.normal(size=(300, 3)) * np.radians(5) / np.sqrt(3))
    # a model's own frame (the alignment) and any equivalent of the true orientation
    predicted = (noise * true * equivalent * alignment.inv()).as_matrix()
    errors = pose_errors(predicted, true.as_matrix(), group)
    assert 3 < np.median(errors.degrees) < 7 and not errors.mirrored
    mirrored = pose_errors(MIRROR @ predicted @ MIRROR, true.as_matrix(), group)
    assert mirrored.mirrored and np.median(mirrored.degrees) == pytest.approx(
        np.median(errors.degrees), abs=0.5
    )
    # orientations that say nothing: about 126 degrees without symmetry, less with it
    assert 115 < np.median(chance_errors(true.as_matrix(), Rotation.identity(1)).degrees) < 135
    assert np.median(chance_errors(true.as_matrix(), group).degrees) < 70
    names = np.array(["proteasome"] * 150 + ["ribosome"] * 150)
    scores = pose_angle_scores(predicted, true.as_matrix(), names, {"proteasome": group})
    assert scores["pose_angle_by_class"]["proteasome"]["median"] < 7
    assert scores["pose_angle_by_class"]["ribosome"]["symmetry_order"] == 1


def test_a_selections_mean_rotation_is_not_cancelled_by_quaternion_signs():
    from napari_affinity_vae.operations.decode import MEAN, source_vector

    turn = Rotation.from_euler("ZYZ", [[40.0, 30.0, 20.0]], degrees=True).as_quat()[:, [3, 0, 1, 2]]
    pose = np.vstack([turn, -turn, 1.01 * turn])  # one rotation, as q and -q
    latent = np.zeros((3, 2))
    _, plain, _ = source_vector(latent, pose, source=MEAN, selection=np.arange(3))
    _, mean, _ = source_vector(latent, pose, source=MEAN, selection=np.arange(3), rotation=True)
    assert np.linalg.norm(plain) < 0.5  # averaged as numbers, the signs cancel
    np.testing.assert_allclose(pose_angles(mean[None]), pose_angles(turn), atol=1e-6)
