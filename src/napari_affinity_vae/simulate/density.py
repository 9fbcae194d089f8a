"""Density maps from point models (pseudo-atoms or real atoms) and resampling of maps."""

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


def resample(volume: np.ndarray, factor: float) -> np.ndarray:
    """Resample the last three axes of a map (or a stack of maps) by ``factor`` (output voxels per
    input voxel), low-passed when shrinking."""
    volume = np.asarray(volume, dtype=np.float32)
    if np.isclose(factor, 1.0):
        return volume.copy()
    leading = (0,) * (volume.ndim - 3)
    if factor < 1:
        volume = ndimage.gaussian_filter(volume, sigma=leading + (0.5 / factor,) * 3)
    factors = (1,) * len(leading) + (factor,) * 3
    return ndimage.zoom(volume, factors, order=1, mode="grid-constant", grid_mode=True)


def fit_box(volume: np.ndarray, box: int) -> np.ndarray:
    """Centre-crop or zero-pad the last three axes of a map (or a stack of maps) to ``box``."""
    out = np.zeros((*volume.shape[:-3], box, box, box), dtype=np.float32)
    src, dst = [Ellipsis], [Ellipsis]
    for n in volume.shape[-3:]:
        if n >= box:
            start = (n - box) // 2
            src.append(slice(start, start + box))
            dst.append(slice(0, box))
        else:
            start = (box - n) // 2
            src.append(slice(0, n))
            dst.append(slice(start, start + n))
    out[tuple(dst)] = volume[tuple(src)]
    return out
