"""Class-by-class affinity from reference maps: best normalised cross-correlation over rotations.

The search: 1,000 rotations of a super-Fibonacci grid (no two more than about 19 degrees from the
nearest) on maps at half resolution, translations by FFT; then, from the best 3, local refinement at
full resolution on 3 x 3 x 3 grids of 8, 4 and 2 degree steps. The best correlations ``S`` are
scaled into [-1, 1] as ``2 (S - min) / (1 - min) - 1`` (min over pairs), so the diagonal stays 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from napari_affinity_vae.progress import Progress
from napari_affinity_vae.simulate.geometry import local_rotations, rotate_map, uniform_rotations
from napari_affinity_vae.volumes import fit_box, resample

SHIPPED_VOXEL_SIZE = 10.0
SHIPPED_CORRELATIONS = Path(__file__).parent / "data" / "correlations_10A.csv"
COARSE_ROTATIONS = 1000
REFINE_STEPS = (8.0, 4.0, 2.0)
CANDIDATES = 3


def best_correlation(fixed: np.ndarray, moving: np.ndarray, min_angle: float = 0.0) -> float:
    """Best normalised cross-correlation of ``moving``, rotated and shifted, against ``fixed``.

    Both are cubic (z, y, x) maps of the same size and voxel size. Rotations closer than
    ``min_angle`` degrees to the identity are left out (to look for a map's symmetries).
    """
    pad = _padded_size(fixed.shape[0])
    coarse_fixed = _spectrum(fit_box(resample(fixed, 0.5), pad // 2))
    coarse_moving = resample(moving, 0.5)
    grid = uniform_rotations(COARSE_ROTATIONS)
    grid = grid[grid.magnitude() >= np.radians(min_angle)]
    scores = np.array([_score(coarse_fixed, coarse_moving, m, pad // 2) for m in grid.as_matrix()])
    fine_fixed = _spectrum(fit_box(fixed, pad))
    best = -1.0
    for start in np.argsort(scores)[-CANDIDATES:]:
        rotation = grid[int(start)]
        for step in REFINE_STEPS:
            trials = rotation * local_rotations(step)
            trials = trials[trials.magnitude() >= np.radians(min_angle)]
            trial_scores = [_score(fine_fixed, moving, m, pad) for m in trials.as_matrix()]
            k = int(np.argmax(trial_scores))
            rotation, score = trials[k], trial_scores[k]
        best = max(best, score)
    return float(best)


def affinity_matrix(
    maps: Mapping[str, np.ndarray], progress: Progress | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The scaled affinity matrix and the raw best correlations, both labelled by class name."""
    names = list(maps)
    box = max(max(m.shape) for m in maps.values())
    volumes = [fit_box(np.asarray(maps[n], dtype=np.float32), box) for n in names]
    raw = np.eye(len(names))
    pairs = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names))]
    for i, j in progress(pairs) if progress else pairs:
        raw[i, j] = raw[j, i] = best_correlation(volumes[i], volumes[j])
    return (
        pd.DataFrame(scale_affinity(raw), index=names, columns=names),
        pd.DataFrame(raw, index=names, columns=names),
    )


def builtin_affinity(
    classes: list[str] | tuple[str, ...], voxel_size: float, progress: Progress | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Affinity of built-in molecule classes: from the shipped correlations at 10 A/voxel when
    they cover the request, otherwise searched anew."""
    from napari_affinity_vae.simulate.molecules import reference_maps

    classes = list(classes)
    if np.isclose(voxel_size, SHIPPED_VOXEL_SIZE):
        shipped = pd.read_csv(SHIPPED_CORRELATIONS, index_col=0)
        if set(classes) <= set(shipped.columns):
            raw = shipped.loc[classes, classes]
            return pd.DataFrame(scale_affinity(raw.to_numpy()), index=classes, columns=classes), raw
    return affinity_matrix(reference_maps(classes, voxel_size), progress)


def library_affinity(classes: list[str], voxel_size: float) -> np.ndarray | None:
    """The scaled affinity matrix of ``classes`` if all are built-in molecules, else None: the
    fallback ``avae train`` and ``avae evaluate`` give training sets that bring no affinity CSV."""
    from napari_affinity_vae.simulate.molecules import MOLECULES

    if not all(c in MOLECULES for c in classes):
        return None
    return builtin_affinity(classes, voxel_size)[0].to_numpy()


def scale_affinity(raw: np.ndarray) -> np.ndarray:
    """Map correlations into [-1, 1]: the least similar pair to -1, a class with itself to 1."""
    off = raw[~np.eye(len(raw), dtype=bool)]
    if off.size == 0:
        return np.ones_like(raw)
    low = min(float(off.min()), 0.999)
    scaled = np.clip(2 * (raw - low) / (1 - low) - 1, -1, 1)
    np.fill_diagonal(scaled, 1.0)
    return scaled


def _padded_size(box: int) -> int:
    """A box with room for shifts without wrap-around, even and divisible by 4."""
    return int(4 * np.ceil(box * 1.5 / 4))


def _spectrum(volume: np.ndarray) -> np.ndarray:
    return np.fft.rfftn(_standardise(volume))


def _standardise(volume: np.ndarray) -> np.ndarray:
    v = volume.astype(np.float64) - volume.mean()
    norm = np.sqrt(np.sum(v * v))
    return v / norm if norm > 0 else v


def _score(fixed_spectrum: np.ndarray, moving: np.ndarray, matrix: np.ndarray, box: int) -> float:
    """Best correlation over all shifts of ``moving`` turned by ``matrix``, in a ``box`` cube."""
    turned = rotate_map(moving, matrix, output_shape=(box, box, box))
    correlation = np.fft.irfftn(
        np.conj(fixed_spectrum) * np.fft.rfftn(_standardise(turned)), s=(box, box, box)
    )
    return float(correlation.max())
