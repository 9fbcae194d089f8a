"""The Gaussian-splat decoder: the latent places a few hundred 3D Gaussians (centres, weights,
widths), the pose turns their centres by an explicit rotation, and the box is rendered as their sum.

Coordinates of splats are (x, y, z) in units of half the trained box's side, 0 at the box's
centre voxel (index ``box // 2``), so that a model renders at any box and voxel size. The pose is a
quaternion (w, x, y, z; normalised here, so that any 4 numbers are a rotation and 0 is none) in 3D,
one angle (radians) in 2D; the rotation is the one that turns the model's molecule into the
particle, acting on (x, y, z), as a copick or Portal orientation does.

Rendering is separable: an isotropic Gaussian is the product of one Gaussian per axis, so a box is
a sum over splats of outer products. In 3D the only large intermediate is (batch, splats, z, y)
before one batched matrix product with the x factors (never the voxels x splats x batch tensor),
and batches are rendered in chunks that keep it under ``CHUNK_BYTES``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import nn

from napari_affinity_vae.io.orientation import angles_to_matrices, matrices_to_angles

if TYPE_CHECKING:  # it imports this module
    from napari_affinity_vae.model.network import Architecture

ROTATION_DIMS = {3: 4, 2: 1}  # pose numbers that make a rotation: a quaternion, an angle
CHUNK_BYTES = 256 * 2**20  # the largest (batch, splats, z, y) intermediate rendered at once


def rotation_matrices(pose: torch.Tensor) -> torch.Tensor:
    """(n, d, d) rotations on (x, y[, z]) from quaternions (n, 4) or angles in radians (n, 1)."""
    if pose.shape[1] == 1:
        c, s = torch.cos(pose[:, 0]), torch.sin(pose[:, 0])
        return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    q = pose / pose.norm(dim=1, keepdim=True).clamp_min(1e-6)  # 0 stays 0: the identity
    w, x, y, z = q.unbind(1)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def turns_pose(architecture: Architecture) -> bool:
    """Whether a model's pose is a 3D rotation: a splat decoder's quaternion."""
    a = architecture
    return a.decoder == "splat" and a.ndim == 3 and a.pose_dims == ROTATION_DIMS[3]


def pose_angles(pose: np.ndarray) -> np.ndarray:
    """RELION (rot, tilt, psi) in degrees, (n, 3), of a splat model's quaternions (n, 4)."""
    matrices = rotation_matrices(torch.from_numpy(np.array(pose, dtype=np.float64))).numpy()
    return matrices_to_angles(matrices)


def angles_pose(angles: np.ndarray) -> np.ndarray:
    """A splat model's quaternions (n, 4; w first) of RELION (rot, tilt, psi) in degrees."""
    xyzw = Rotation.from_matrix(angles_to_matrices(angles)).as_quat()
    return np.roll(xyzw, 1, axis=1)


def render(
    centres: torch.Tensor,
    weights: torch.Tensor,
    widths: torch.Tensor,
    box: int,
    spacing: float,
) -> torch.Tensor:
    """Boxes (n, box, box[, box]) in (z,) y, x order: the sum of Gaussians ``weights`` (n, k)
    exp(-|r - centre|^2 / (2 width^2)) with ``centres`` (n, k, d) in (x, y[, z]) and ``widths``
    (n, k) in half-box units, sampled every ``spacing`` half-box units about the centre voxel."""
    ndim = centres.shape[2]
    grid = (torch.arange(box, device=centres.device, dtype=centres.dtype) - box // 2) * spacing
    # per axis, splat and sample: (n, k, box), in x, y[, z] order
    factors = [
        torch.exp(-((grid - centres[..., axis, None]) ** 2) / (2 * widths[..., None] ** 2))
        for axis in range(ndim)
    ]
    weighted = factors[-1] * weights[..., None]  # the slowest axis carries the weights
    if ndim == 2:
        return weighted.transpose(1, 2) @ factors[0]  # (n, y, x)
    per_item = centres.shape[1] * box * box * centres.element_size()
    step = max(1, CHUNK_BYTES // per_item)
    out = []
    for start in range(0, len(centres), step):
        part = slice(start, start + step)
        planes = weighted[part, :, :, None] * factors[1][part, :, None, :]  # (n, k, z, y)
        flat = planes.flatten(2).transpose(1, 2) @ factors[0][part]  # (n, z*y, x)
        out.append(flat.view(-1, box, box, box))
    return torch.cat(out)


class SplatDecoder(nn.Module):
    """Latent -> splats -> turned by the pose -> rendered box, optionally refined by a few
    convolutions (at the trained box only). The shape depends on the latent alone; the pose
    only turns it."""

    def __init__(self, architecture: Architecture) -> None:
        super().__init__()
        self.architecture = a = architecture
        hidden = 16 * a.capacity * 2 ** (a.depth - 1) // 2
        self.head = nn.Sequential(
            nn.Linear(a.latent_dims, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * hidden),
            nn.ReLU(),
            nn.Linear(2 * hidden, a.splats * (a.ndim + 2)),
        )
        # rendered density (0 outside, about 1 in the molecule) to the normalised box: protein
        # is dark, so the scale learns to be negative
        self.contrast = nn.Parameter(torch.tensor([-1.0, 0.0]))
        conv = nn.Conv3d if a.ndim == 3 else nn.Conv2d
        layers: list[nn.Module] = []
        channels = [1] + [a.capacity] * a.splat_convs + [1]
        for i in range(a.splat_convs + 1 if a.splat_convs else 0):
            layers += [conv(channels[i], channels[i + 1], 3, padding=1)]
            layers += [nn.ReLU()] if i < a.splat_convs else []
        self.refine = nn.Sequential(*layers) if layers else None

    def splats(
        self, latent: torch.Tensor, pose: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Centres (n, k, d) in (x, y[, z]) half-box units, turned by ``pose`` (no pose: as the
        model holds them), weights (n, k) in (0, 1) and widths (n, k) in half-box units."""
        a = self.architecture
        raw = self.head(latent).view(len(latent), a.splats, a.ndim + 2)
        centres = torch.tanh(raw[..., : a.ndim])
        weights = torch.sigmoid(raw[..., a.ndim])
        low, high = (2 * w for w in a.splat_width)  # a fraction of the side: 2 half-box units
        widths = low + (high - low) * torch.sigmoid(raw[..., a.ndim + 1])
        if pose.shape[1]:
            centres = centres @ rotation_matrices(pose).transpose(1, 2)
        return centres, weights, widths

    def forward(
        self, latent: torch.Tensor, pose: torch.Tensor, box: int | None = None, zoom: float = 1.0
    ) -> torch.Tensor:
        """Boxes (n, 1, *box) of ``box`` voxels a side (default: the trained box), each voxel
        ``1 / zoom`` of the trained voxel size. The convolutions refine the trained box only."""
        a = self.architecture
        box = box or a.box
        centres, weights, widths = self.splats(latent, pose)
        density = render(centres, weights, widths, box, 2 / (a.box * zoom))
        volume = (self.contrast[0] * density + self.contrast[1]).unsqueeze(1)
        if self.refine is not None and box == a.box and zoom == 1.0:
            volume = volume + self.refine(volume)
        return volume
