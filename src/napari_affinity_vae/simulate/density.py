"""Density maps from point models (pseudo-atoms or real atoms)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def points_to_density(
    points_xyz: np.ndarray,
    weights: np.ndarray | float,
    voxel_size: float,
    box: int,
    sigma: float,
) -> np.ndarray:
    """Render Gaussians of width ``sigma`` (Angstrom) at ``points_xyz`` (Angstrom, x y z order,
    origin at the box centre, voxel ``box // 2``) into a cubic (z, y, x) map of ``box`` voxels.

    Points are spread trilinearly onto the grid, then blurred, so the cost is one Gaussian filter
    whatever the number of points.
    """
    points = np.asarray(points_xyz, dtype=float)
    weights = np.broadcast_to(np.asarray(weights, dtype=float), (len(points),))
    grid = np.zeros((box, box, box))
    index = points[:, ::-1] / voxel_size + box // 2  # fractional (z, y, x) voxel positions
    base = np.floor(index).astype(int)
    frac = index - base
    for corner in np.ndindex(2, 2, 2):
        offset = np.array(corner)
        w = weights * np.prod(np.where(offset, frac, 1 - frac), axis=1)
        cell = base + offset
        inside = np.all((cell >= 0) & (cell < box), axis=1)
        np.add.at(grid, tuple(cell[inside].T), w[inside])
    return ndimage.gaussian_filter(grid, sigma / voxel_size, mode="constant").astype(np.float32)
