"""Class-by-class affinity from reference maps: best normalised cross-correlation over rotations.

The search: 1,000 rotations of a super-Fibonacci grid (no two more than about 19 degrees from the
nearest) on maps at half resolution, translations by FFT; then, from the best 3, local refinement at
full resolution on 3 x 3 x 3 grids of 8, 4 and 2 degree steps. The best correlations ``S`` are
scaled into [-1, 1] as ``2 (S - min) / (1 - min) - 1`` (min over pairs), so the diagonal stays 1.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from napari_affinity_vae.errors import InputFileError
from napari_affinity_vae.io.atomic import atomic_path
from napari_affinity_vae.progress import Progress
from napari_affinity_vae.simulate.density import fit_box, resample
from napari_affinity_vae.simulate.geometry import local_rotations, rotate_map, uniform_rotations

SHIPPED_VOXEL_SIZE = 10.0
SHIPPED_CORRELATIONS = Path(__file__).parent / "data" / "correlations_10A.csv"
COARSE_ROTATIONS = 1000
REFINE_STEPS = (8.0, 4.0, 2.0)
CANDIDATES = 3
ASYMMETRY_TOLERANCE = 1e-4  # larger differences between A and A.T are reported


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


def scale_affinity(raw: np.ndarray) -> np.ndarray:
    """Map correlations into [-1, 1]: the least similar pair to -1, a class with itself to 1."""
    off = raw[~np.eye(len(raw), dtype=bool)]
    if off.size == 0:
        return np.ones_like(raw)
    low = min(float(off.min()), 0.999)
    scaled = np.clip(2 * (raw - low) / (1 - low) - 1, -1, 1)
    np.fill_diagonal(scaled, 1.0)
    return scaled


def save_affinity(matrix: pd.DataFrame, path: str | Path) -> Path:
    """Write the reference implementation's layout: class names as header, then the matrix."""
    path = Path(path)
    with atomic_path(path) as tmp:
        matrix.to_csv(tmp, index=False, float_format="%.6f")
    return path


def load_affinity(path: str | Path) -> pd.DataFrame:
    """Read an affinity CSV: a header row of class names, then the square matrix, with or without
    a first column repeating the names (the reference affinity-VAE writes none; pandas one).

    An asymmetric matrix (the reference tool's may differ from its transpose by 0.2) is used as
    ``(A + A.T) / 2``, with a warning saying how asymmetric it was. A matrix that is not square,
    whose header and first column name different classes, repeats a class, holds non-numeric or
    missing values, or values outside [-1, 1] is refused with an :class:`InputFileError`.
    """
    path = Path(path)
    names, rows, values = _read_affinity_csv(path)
    if rows is not None:
        if sorted(rows) != sorted(names):
            raise InputFileError(
                path,
                f"the class names of the header ({', '.join(names)}) and of the first column "
                f"({', '.join(rows)}) disagree",
            )
        values = values[[rows.index(name) for name in names]]  # rows in the header's order
    if np.abs(values).max(initial=0.0) > 1 + 1e-6:
        i, j = np.unravel_index(np.argmax(np.abs(values)), values.shape)
        raise InputFileError(
            path,
            f"affinities must lie in [-1, 1]; found {values[i, j]:g} "
            f"({names[i]} against {names[j]})",
        )
    asymmetry = np.abs(values - values.T)
    if asymmetry.max(initial=0.0) > ASYMMETRY_TOLERANCE:
        i, j = np.unravel_index(np.argmax(asymmetry), asymmetry.shape)
        warnings.warn(
            f"{path}: the affinity matrix is not symmetric (largest |A - A.T| is "
            f"{asymmetry[i, j]:.3g}, {names[i]} against {names[j]}); using (A + A.T) / 2",
            stacklevel=2,
        )
    return pd.DataFrame((values + values.T) / 2, index=names, columns=names)


def _read_affinity_csv(path: Path) -> tuple[list[str], list[str] | None, np.ndarray]:
    """Class names of the header, of the first column (None if there is none), and the values."""
    try:
        with path.open(newline="") as file:
            lines = [row for row in csv.reader(file) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputFileError(path, f"not a readable affinity CSV ({err})") from None
    if len(lines) < 2:
        raise InputFileError(path, "not an affinity CSV: a header of class names, then a matrix")
    header, body = [c.strip() for c in lines[0]], [[c.strip() for c in r] for r in lines[1:]]
    n, widths = len(body), {len(row) for row in body}
    first_column = [row[0] for row in body]
    indexed = widths == {n + 1} and (
        len(header) == n or header[0] == "" or not all(map(_is_number, first_column))
    )
    if indexed:
        names, rows, cells = header[-n:], first_column, [row[1:] for row in body]
    elif widths == {n} and len(header) == n:
        names, rows, cells = header, None, body
    else:
        raise InputFileError(
            path,
            f"the matrix is not square: {n} row(s) of {', '.join(map(str, sorted(widths)))} "
            f"value(s) under a header of {len(header)} class name(s)",
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated or "" in names:
        raise InputFileError(
            path, f"class names must be distinct and not empty (repeated: {', '.join(repeated)})"
        )
    values = np.full((n, n), np.nan)
    row_names = names if rows is None else rows
    for i, row in enumerate(cells):
        for j, cell in enumerate(row):
            values[i, j] = float(cell) if _is_number(cell) else np.nan
            if not np.isfinite(values[i, j]):
                raise InputFileError(
                    path,
                    f"non-numeric or missing value {cell!r} ({row_names[i]} against "
                    f"{names[j]}); affinities are numbers in [-1, 1]",
                )
    return names, rows, values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
