"""Template-free particle picking: a difference-of-Gaussians band-pass matched to the particle size,
local maxima, non-maximum suppression and an automatic threshold, chunk by chunk.

The tomogram is binned so that the smallest particle spans about ``BIN_TARGET`` voxels, band-passed
between Gaussians of ``d_min / 2`` and ``d_max / 2`` (particles dark unless ``inverted``), and
every local maximum at least ``d_min / 2`` from a larger one is a candidate. The automatic
threshold is the triangle method (Zack et al. 1977) on the histogram of candidates' scores: the
local maxima of noise form a tall peak of low scores, and the threshold is where the histogram
falls away from that peak (the bin farthest from the line joining the peak to the highest score).
Unlike a cut a few robust deviations above the median, it holds when particles outnumber the
noise maxima in a crowded tomogram.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from napari_affinity_vae.progress import Progress, run_steps

BIN_TARGET = 5.0  # voxels across the smallest particle after binning
CHUNK_VOXELS = 16_000_000  # binned voxels per chunk before its overlap


@dataclass(frozen=True)
class PickSettings:
    """Diameters in Angstrom; ``margin`` (Angstrom) keeps picks away from the faces."""

    diameter_min: float
    diameter_max: float
    voxel_size: float
    threshold: float | None = None
    max_count: int | None = None
    margin: float | None = None
    inverted: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.diameter_min <= self.diameter_max:
            raise ValueError("diameters must satisfy 0 < min <= max")


def pick(
    tomogram: np.ndarray, settings: PickSettings, progress: Progress | None = None
) -> pd.DataFrame:
    """Picks as a table: z, y, x (voxels of ``tomogram``) and score, best first."""
    steps = pick_steps(tomogram, settings)
    return run_steps(steps, chunk_count(tomogram.shape, settings), "picking", progress)


def chunk_count(shape: tuple[int, ...], settings: PickSettings) -> int:
    """How many chunks :func:`pick_steps` reads for a tomogram of ``shape``."""
    binned_shape, _, _, _, rows = _layout(shape, settings)
    return -(-int(binned_shape[1]) // rows)


def _layout(
    shape: tuple[int, ...], settings: PickSettings
) -> tuple[np.ndarray, int, int, int, int]:
    """Binned shape, binning, minimum distance, halo and rows (binned y) per chunk."""
    d_min = settings.diameter_min / settings.voxel_size
    d_max = settings.diameter_max / settings.voxel_size
    binning = max(1, int(d_min // BIN_TARGET))
    min_distance = max(1, round(d_min / 2 / binning))
    halo = int(np.ceil(3 * d_max / 2 / binning)) + min_distance
    binned_shape = np.asarray(shape) // binning
    rows = max(1, CHUNK_VOXELS // int(binned_shape[0] * binned_shape[2]))
    return binned_shape, binning, min_distance, halo, rows


def pick_steps(tomogram: np.ndarray, settings: PickSettings) -> Generator[int, None, pd.DataFrame]:
    """Yield the number of chunks done (stop iterating to cancel); return the picks."""
    binned_shape, binning, min_distance, halo, rows = _layout(tomogram.shape, settings)
    sigma_low = settings.diameter_min / settings.voxel_size / 2 / binning
    sigma_high = settings.diameter_max / settings.voxel_size / 2 / binning
    candidates = []
    for done, start in enumerate(range(0, int(binned_shape[1]), rows), start=1):
        stop = min(start + rows, int(binned_shape[1]))
        lo, hi = max(0, start - halo), min(int(binned_shape[1]), stop + halo)
        block = _binned(tomogram, binning, lo, hi, binned_shape)
        if not settings.inverted:
            block = -block
        band = ndimage.gaussian_filter(block, sigma_low) - ndimage.gaussian_filter(
            block, sigma_high
        )
        peaks = (band == ndimage.maximum_filter(band, size=2 * min_distance + 1)) & (band > 0)
        z, y, x = np.nonzero(peaks)
        core = (y + lo >= start) & (y + lo < stop)
        candidates.append(np.column_stack([z[core], y[core] + lo, x[core], band[z, y, x][core]]))
        yield done
    table = np.concatenate(candidates) if candidates else np.zeros((0, 4))
    table = table[np.argsort(-table[:, 3], kind="stable")]
    table = _suppress(table, min_distance)
    centres = (table[:, :3] + 0.5) * binning - 0.5
    margin = settings.margin if settings.margin is not None else settings.diameter_max / 2
    margin /= settings.voxel_size
    upper = np.asarray(tomogram.shape) - 1 - margin
    inside = np.all((centres >= margin) & (centres <= upper), axis=1)
    centres, scores = centres[inside], table[inside, 3]
    threshold = settings.threshold if settings.threshold is not None else auto_threshold(scores)
    keep = scores > threshold
    picks = pd.DataFrame(centres[keep], columns=["z", "y", "x"])
    picks["score"] = scores[keep]
    if settings.max_count is not None:
        picks = picks.head(settings.max_count)
    picks.attrs.update(voxel_size=settings.voxel_size, threshold=float(threshold))
    return picks


def auto_threshold(scores: np.ndarray) -> float:
    """The triangle threshold of the candidates' scores (see the module's description)."""
    from skimage.filters import threshold_triangle

    if len(np.unique(scores)) < 2:
        return 0.0
    return float(threshold_triangle(np.asarray(scores, dtype=np.float64)))


def _binned(
    tomogram: np.ndarray, binning: int, lo: int, hi: int, binned_shape: np.ndarray
) -> np.ndarray:
    """Rows ``lo:hi`` (binned y) of the tomogram binned by ``binning``, read from the file."""
    nz, _, nx = binned_shape * binning
    block = np.asarray(tomogram[:nz, lo * binning : hi * binning, :nx], dtype=np.float32)
    if binning == 1:
        return block
    shape = (binned_shape[0], binning, hi - lo, binning, binned_shape[2], binning)
    return block.reshape(shape).mean(axis=(1, 3, 5))


def _suppress(table: np.ndarray, distance: float) -> np.ndarray:
    """Greedy non-maximum suppression of score-sorted (z, y, x, score) rows."""
    if len(table) == 0:
        return table
    tree = cKDTree(table[:, :3])
    keep = np.ones(len(table), dtype=bool)
    for i in range(len(table)):
        if keep[i]:
            neighbours = tree.query_ball_point(table[i, :3], distance - 1e-9)
            keep[[j for j in neighbours if j > i]] = False
    return table[keep]
