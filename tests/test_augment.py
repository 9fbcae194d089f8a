"""Rotation augmentation: each box turned by its own random rotation, its content kept, exact
where the rotation maps voxels onto voxels, the same for the same seed."""

from __future__ import annotations

import pytest
import torch

from napari_affinity_vae.model.augment import augment, inscribed_sphere, random_rotations, rotate


def _blob(box: int, ndim: int, centre: list[float], sigma: float = 2.0) -> torch.Tensor:
    """A batch of one box (1, 1, *box) holding a Gaussian blob at ``centre`` voxels from the
    particle's voxel ``box // 2`` (axes z, y, x)."""
    axes = torch.meshgrid(*[torch.arange(box) - box // 2] * ndim, indexing="ij")
    squared = sum((a - c) ** 2 for a, c in zip(axes, centre, strict=True))
    return torch.exp(-squared / (2 * sigma**2))[None, None]


def _centroid(boxes: torch.Tensor) -> torch.Tensor:
    """The centre of mass of each box (n, ndim), in voxels from the voxel ``box // 2``."""
    ndim, box = boxes.ndim - 2, boxes.shape[-1]
    axes = torch.meshgrid(*[torch.arange(box) - box // 2] * ndim, indexing="ij")
    mass = boxes[:, 0].flatten(1)
    return torch.stack([(mass * a.flatten()).sum(1) / mass.sum(1) for a in axes], dim=1)


@pytest.mark.parametrize(("ndim", "centre"), [(3, [6.0, -3.0, 2.0]), (2, [6.0, -3.0])])
def test_each_box_turns_by_its_own_rotation_and_keeps_its_content(ndim, centre):
    x = _blob(32, ndim, centre).expand(16, 1, *(32,) * ndim)
    rotations = random_rotations(16, ndim, torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        rotations @ rotations.transpose(1, 2), torch.eye(ndim).expand(16, ndim, ndim)
    )
    assert torch.allclose(torch.linalg.det(rotations), torch.ones(16))
    rotated = rotate(x, rotations)
    # the value at p is the input's at R p, so the blob moves from c to R^T c
    expected = (rotations.transpose(1, 2) @ torch.tensor(centre)[:, None])[..., 0]
    torch.testing.assert_close(_centroid(rotated), expected, atol=0.05, rtol=0)
    assert (_centroid(rotated) - torch.tensor(centre)).norm(dim=1).min() > 1  # they did turn
    # the blob lies in the inscribed sphere, and stays there, its norm kept but for the little
    # that interpolation smooths away
    sphere = inscribed_sphere(32, ndim)
    norms = (rotated * sphere).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    assert ((norms > 0.95) & (norms <= 1.0)).all()


@pytest.mark.parametrize("ndim", [3, 2])
@pytest.mark.parametrize("box", [8, 9])
def test_a_quarter_turn_about_z_is_rot90_about_the_particles_voxel(ndim, box):
    """The particle sits at voxel box // 2, where extraction puts it: a turn keeps it there.
    Turns were about the box's middle, half a voxel off in an even box, so every turned
    training box moved its particle by up to a voxel and a half."""
    x = torch.randn(2, 1, *(box,) * ndim)
    quarter = torch.eye(ndim)
    quarter[-2:, -2:] = torch.tensor([[0.0, -1.0], [1.0, 0.0]])  # in the (y, x) plane
    rotated = rotate(x, quarter.expand(2, ndim, ndim))
    quartered = torch.rot90(x, -1, dims=(-2, -1))  # about the middle, (box - 1) / 2
    if box % 2 == 0:  # about the voxel box // 2: a voxel further along x
        quartered = torch.roll(quartered, 1, dims=-1)
    turned = torch.where(inscribed_sphere(box, ndim), quartered, x)
    torch.testing.assert_close(rotated, turned, atol=1e-5, rtol=0)
    centre = (slice(None), 0, *(box // 2,) * ndim)
    torch.testing.assert_close(rotated[centre], x[centre])


def test_augmentation_is_seeded_normalised_and_keeps_the_noise_in_the_corners():
    x = torch.randn(1, 1, 16, 16, 16).expand(4, 1, 16, 16, 16)
    first = augment(x, torch.Generator().manual_seed(3))
    torch.testing.assert_close(first, augment(x, torch.Generator().manual_seed(3)))
    assert not torch.allclose(first, augment(x, torch.Generator().manual_seed(4)))
    assert not torch.allclose(first[0], first[1])  # one rotation per box
    flat = first.flatten(1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.std(1, correction=0), torch.ones(4))
    corners = ~inscribed_sphere(16, 3)
    for augmented in first:  # outside the sphere, the box's own voxels, normalised again
        together = torch.stack([augmented[0][corners], x[0, 0][corners]])
        assert torch.corrcoef(together)[0, 1] > 0.9999
