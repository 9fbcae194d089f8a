"""Rotation augmentation of a training batch, on the device the batch is on: each box turned by
its own uniformly random rotation (an in-plane angle for 2D images) with trilinear
interpolation, inside the sphere that stays in the box."""

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
    """Boxes (n, 1, *box) resampled so that the value at voxel offset p from the centre is the
    input's at ``rotations @ p`` (axes in the boxes' order, z, y, x); trilinear (bilinear in 2D),
    zero where that lies outside the box (only ever outside the inscribed sphere)."""
    ndim = boxes.ndim - 2
    matrices = rotations.flip(-1, -2).to(boxes)  # affine_grid takes (x, y, z) coordinates
    theta = torch.cat([matrices, matrices.new_zeros(len(boxes), ndim, 1)], dim=2)
    grid = F.affine_grid(theta, list(boxes.shape), align_corners=False)
    return F.grid_sample(boxes, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augment(boxes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each box of a batch (n, 1, *box) turned by its own uniformly random rotation inside the
    sphere inscribed in the box; outside it, where a rotation would bring in zeros, the box keeps
    its own voxels, so that the noise goes on to the corners. Then each box is normalised again
    to mean 0 and standard deviation 1, as every input box is (interpolation smooths the noise)."""
    ndim = boxes.ndim - 2
    rotated = rotate(boxes, random_rotations(len(boxes), ndim, generator))
    rotated = torch.where(inscribed_sphere(boxes.shape[-1], ndim, boxes.device), rotated, boxes)
    flat = rotated.flatten(1)
    mean = flat.mean(dim=1)
    std = flat.std(dim=1, correction=0).clamp_min(1e-12)
    shape = (-1,) + (1,) * (ndim + 1)
    return (rotated - mean.view(shape)) / std.view(shape)


def inscribed_sphere(box: int, ndim: int, device: torch.device | None = None) -> torch.Tensor:
    """True at the voxels of a box whose centres lie in the sphere (circle) through the outer
    voxels' centres: where every rotation about the centre samples inside the box."""
    axis = torch.arange(box, device=device) - (box - 1) / 2
    squared = sum(a**2 for a in torch.meshgrid(*[axis] * ndim, indexing="ij"))
    return squared <= ((box - 1) / 2) ** 2
