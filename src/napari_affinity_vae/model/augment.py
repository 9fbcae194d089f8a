"""Rotation augmentation of a training batch, on the device the batch is on: each box turned by
its own uniformly random rotation (an in-plane angle for 2D images) with trilinear
interpolation, about the particle's voxel ``box // 2`` (where extraction puts it and the splat
decoder renders it), inside the sphere that stays in the box."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_rotations(n: int, ndim: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` rotation matrices (n, ndim, ndim), uniform over SO(ndim) (the Q of the QR
    decomposition of a Gaussian matrix, its signs fixed), drawn on the generator's device."""
    gaussian = torch.randn(n, ndim, ndim, generator=generator, device=generator.device)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2))[:, None, :]  # Haar over O(ndim)
    q[:, :, 0] *= torch.linalg.det(q)[:, None]  # a reflection made a rotation, still uniform
    return q


def rotate(boxes: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Boxes (n, 1, *box) turned inside the sphere inscribed in the box: the value at voxel
    offset p from the centre becomes the input's at ``rotations @ p`` (axes in the boxes'
    order, z, y, x), trilinear (bilinear in 2D). Outside the sphere, where a rotation would
    bring in what lies beyond the box, each box keeps its own voxels; only the sphere is
    resampled, half the work of the whole box."""
    n, ndim, box = len(boxes), boxes.ndim - 2, boxes.shape[-1]
    inside = inscribed_sphere(box, ndim, boxes.device)
    axis = torch.arange(box, device=boxes.device, dtype=boxes.dtype) - box // 2
    # offsets and rotations in grid_sample's (x, y, z) order, scaled to its [-1, 1], where the
    # voxel box // 2 is at (2 (box // 2) + 1) / box - 1 (1 / box for an even box, else 0)
    offsets = torch.stack(torch.meshgrid(*[axis] * ndim, indexing="ij")[::-1], dim=-1)[inside]
    matrices = rotations.to(boxes).flip(-1, -2) * (2 / box)
    grid = torch.einsum("mj,nij->nmi", offsets, matrices) + (2 * (box // 2) + 1) / box - 1
    sampled = F.grid_sample(
        boxes,
        grid.view(n, *(1,) * (ndim - 1), -1, ndim),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    turned = boxes.clone(memory_format=torch.contiguous_format)
    turned.view(n, -1).index_copy_(1, inside.flatten().nonzero()[:, 0], sampled.view(n, -1))
    return turned


def augment(boxes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each box of a batch (n, 1, *box) turned by its own uniformly random rotation (see
    :func:`turn`)."""
    return turn(boxes, random_rotations(len(boxes), boxes.ndim - 2, generator))


def turn(boxes: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Boxes (n, 1, *box) turned by ``rotations`` (see :func:`rotate`: the noise outside the
    inscribed sphere stays as it is, not zeros), then normalised again to mean 0 and standard
    deviation 1, as every input box is (interpolation smooths the noise)."""
    rotated = rotate(boxes, rotations)
    flat = rotated.flatten(1)
    mean = flat.mean(dim=1)
    variance = torch.linalg.vecdot(flat, flat) / flat.shape[1] - mean**2  # std_mean: 10x slower
    shape = (-1,) + (1,) * (boxes.ndim - 1)
    return (rotated - mean.view(shape)) * variance.clamp_min(1e-24).rsqrt().view(shape)


def inscribed_sphere(box: int, ndim: int, device: torch.device | None = None) -> torch.Tensor:
    """True at the voxels of a box within the largest sphere (circle) about the voxel
    ``box // 2`` whose voxels all lie in the box: where every rotation about it samples inside
    the box."""
    axis = torch.arange(box, device=device) - box // 2
    squared = sum(a**2 for a in torch.meshgrid(*[axis] * ndim, indexing="ij"))
    return squared <= ((box - 1) // 2) ** 2
