"""Template-free particle picking: a difference-of-Gaussians band-pass matched to the particle size,
local maxima, non-maximum suppression and an automatic threshold, chunk by chunk.

The tomogram is binned so that the smallest particle spans about ``BIN_TARGET`` voxels, band-passed
between Gaussians of ``d_min / 2`` and ``d_max / 2`` (particles dark unless ``inverted``), and
every local maximum at least ``d_min / 2`` from a larger one is a candidate. Candidates on sheets
(membranes: the middle eigenvalue of the Hessian under a ``MIN_ROUNDNESS`` share of the largest)
are dropped, and each peak is placed to a fraction of a voxel by a parabola through its
neighbours. The automatic threshold is ``AUTO_SIGMAS`` standard deviations of the band-passed
tomogram's noise, estimated as 1.4826 x the median absolute band value (particles fill a small
share of the voxels, so the median sees noise); it does not depend on how many particles there
are, so it holds in crowded tomograms as in sparse ones.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from napari_affinity_vae.progress import Progress, run_steps

MIN_ROUNDNESS = 0.3  # Hessian |middle| / |largest| eigenvalue: blobs and rods above, sheets below
NOISE_STRIDE = 3  # band voxels sampled for the noise level, along each axis
AUTO_SIGMAS = 3.3  # the automatic threshold, in noise standard deviations of the band
BIN_TARGET = 5.0  # voxels across the smallest particle after binning
CHUNK_VOXELS = 16_000_000  # binned voxels per chunk before its overlap


@dataclass(frozen=True)
class PickSettings:
    """Diameters in Angstrom; ``margin`` (Angstrom, default the smallest radius) keeps picks away
    from the faces."""

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
    candidates, noise = [], []
    for done, start in enumerate(range(0, int(binned_shape[1]), rows), start=1):
        stop = min(start + rows, int(binned_shape[1]))
        lo, hi = max(0, start - halo), min(int(binned_shape[1]), stop + halo)
        block = _binned(tomogram, binning, lo, hi, binned_shape)
        if not settings.inverted:
            block = -block
        smooth = ndimage.gaussian_filter(block, sigma_low)
        band = smooth - ndimage.gaussian_filter(block, sigma_high)
        first = start + (-start) % NOISE_STRIDE - lo  # the same sample whatever the chunks
        sample = band[::NOISE_STRIDE, first : stop - lo : NOISE_STRIDE, ::NOISE_STRIDE]
        noise.append(np.abs(sample).ravel())
        peaks = (band == ndimage.maximum_filter(band, size=2 * min_distance + 1)) & (band > 0)
        z, y, x = np.nonzero(peaks)
        core = (y + lo >= start) & (y + lo < stop)
        at = np.column_stack([z[core], y[core], x[core]])
        found = at + _subvoxel(band, at) + [0, lo, 0]
        candidates.append(np.column_stack([found, band[tuple(at.T)], _roundness(smooth, at)]))
        yield done
    table = np.concatenate(candidates) if candidates else np.zeros((0, 5))
    table = table[table[:, 4] >= MIN_ROUNDNESS]  # membranes and other sheets
    table = table[np.argsort(-table[:, 3], kind="stable")]
    table = _suppress(table, min_distance)
    centres = (table[:, :3] + 0.5) * binning - 0.5
    margin = settings.margin if settings.margin is not None else settings.diameter_min / 2
    margin /= settings.voxel_size
    upper = np.asarray(tomogram.shape) - 1 - margin
    inside = np.all((centres >= margin) & (centres <= upper), axis=1)
    centres, scores, roundness = centres[inside], table[inside, 3], table[inside, 4]
    noise_level = 1.4826 * float(np.median(np.concatenate(noise))) if noise else 0.0
    threshold = settings.threshold if settings.threshold is not None else AUTO_SIGMAS * noise_level
    keep = scores > threshold
    picks = pd.DataFrame(centres[keep], columns=["z", "y", "x"])
    picks["score"] = scores[keep]
    picks["roundness"] = roundness[keep]
    if settings.max_count is not None:
        picks = picks.head(settings.max_count)
    picks.attrs.update(
        voxel_size=settings.voxel_size, threshold=float(threshold), noise=noise_level
    )
    return picks


def _roundness(volume: np.ndarray, at: np.ndarray) -> np.ndarray:
    """|middle| / |largest| eigenvalue of the Hessian of ``volume`` at ``at``: near 1 for a blob
    or a rod, near 0 for a sheet such as a membrane."""
    inner = np.clip(at, 1, np.asarray(volume.shape) - 2)

    def value(*steps: tuple[int, int]) -> np.ndarray:
        p = inner.copy()
        for axis, step in steps:
            p[:, axis] += step
        return volume[tuple(p.T)]

    hessian = np.zeros((len(at), 3, 3))
    centre = value()
    for i in range(3):
        hessian[:, i, i] = value((i, 1)) - 2 * centre + value((i, -1))
        for j in range(i + 1, 3):
            cross = value((i, 1), (j, 1)) - value((i, 1), (j, -1))
            cross += value((i, -1), (j, -1)) - value((i, -1), (j, 1))
            hessian[:, i, j] = hessian[:, j, i] = cross / 4
    eigen = np.sort(np.abs(np.linalg.eigvalsh(hessian)), axis=1)
    return eigen[:, 1] / np.maximum(eigen[:, 2], 1e-12)


def _subvoxel(band: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Offsets (within half a voxel) of the peaks at ``at`` from a parabola through each peak
    and its two neighbours along each axis."""
    offsets = np.zeros(at.shape, dtype=float)
    centre = band[tuple(at.T)]
    for axis in range(3):
        below, above = at.copy(), at.copy()
        below[:, axis] = np.maximum(at[:, axis] - 1, 0)
        above[:, axis] = np.minimum(at[:, axis] + 1, band.shape[axis] - 1)
        lower, upper = band[tuple(below.T)], band[tuple(above.T)]
        curvature = lower - 2 * centre + upper
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(curvature < 0, 0.5 * (lower - upper) / curvature, 0.0)
        offsets[:, axis] = np.clip(step, -0.5, 0.5)
    return offsets


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
