"""Class-by-class affinity from reference maps: best normalised cross-correlation over rotations.

The search: the identity and 1,000 rotations of a super-Fibonacci grid (no two more than about 19
degrees from the nearest) on maps at half resolution, translations by FFT; then, from the best 3
starts at least 20 degrees apart, a compass search at full resolution: steps of 8 degrees about
each axis while one improves, halved down to 1 degree. A pair is searched both ways round (each
map turned against the other) and the better kept, so that the order maps are given in does not
change their affinity.

A best correlation ``c`` becomes the affinity ``2c - 1``, clipped to [-1, 1]
(:func:`scale_affinity`): a pair's affinity depends on that pair alone, not on which other classes
are in the matrix. A map against itself, or a turned copy of it (0.95 to 0.99), lands at or near
1; the median pair of the built-in classes at 10 A/voxel (0.50) at 0, orthogonal latent
directions; maps that share nothing (``c <= 0``) at -1.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from napari_affinity_vae.progress import Progress, run_steps
from napari_affinity_vae.rotations import uniform_rotations
from napari_affinity_vae.simulate.geometry import rotate_map
from napari_affinity_vae.volumes import fit_box, resample

SCALING = "2c - 1"  # the affinity of a best correlation c, as outputs and docs name it
SHIPPED_VOXEL_SIZE = 10.0
SHIPPED_CORRELATIONS = Path(__file__).parent / "data" / "correlations_10A.csv"
COARSE_ROTATIONS = 1000
CANDIDATES = 3
CANDIDATE_SEPARATION = 20.0  # degrees
FIRST_STEP, LAST_STEP = 8.0, 1.0  # degrees
MAX_ROUNDS = 40  # of six turns each: a bound on the climb, which takes under 20
_TURNS = np.vstack([np.eye(3), -np.eye(3)])  # compass directions: about +-x, +-y, +-z


class SearchStopped(Exception):
    """A correlation search stopped by its caller (a cancel) before it was done."""


def best_correlation(
    fixed: np.ndarray,
    moving: np.ndarray,
    min_angle: float = 0.0,
    stop: Callable[[], bool] | None = None,
) -> float:
    """Best normalised cross-correlation of ``moving``, rotated and shifted, against ``fixed``.

    Both are cubic (z, y, x) maps of the same size and voxel size. Rotations closer than
    ``min_angle`` degrees to the identity are left out (to look for a map's symmetries). Once
    ``stop()`` is true the search raises :class:`SearchStopped` at its next rotation.
    """
    smallest = np.radians(min_angle)
    pad = _padded_size(fixed.shape[0])
    stopped = stop or (lambda: False)

    def score(spectrum: np.ndarray, volume: np.ndarray, matrix: np.ndarray, size: int) -> float:
        if stopped():
            raise SearchStopped
        return _score(spectrum, volume, matrix, size)

    coarse_fixed = _spectrum(fit_box(resample(fixed, 0.5), pad // 2))
    coarse_moving = resample(moving, 0.5)
    grid = Rotation.concatenate([Rotation.identity(), uniform_rotations(COARSE_ROTATIONS)])
    grid = grid[grid.magnitude() >= smallest]
    scores = np.array([score(coarse_fixed, coarse_moving, m, pad // 2) for m in grid.as_matrix()])
    fine_fixed = _spectrum(fit_box(fixed, pad))

    def fine_score(rotation: Rotation) -> float:
        if rotation.magnitude() < smallest:
            return -1.0
        return score(fine_fixed, moving, rotation.as_matrix(), pad)

    return max(_climb(fine_score, start) for start in _starts(grid, scores))


def _starts(grid: Rotation, scores: np.ndarray) -> list[Rotation]:
    """The best-scoring rotations, at most ``CANDIDATES``, each ``CANDIDATE_SEPARATION`` or more
    from those before it: distinct peaks rather than one peak's neighbours."""
    starts: list[Rotation] = []
    apart = np.radians(CANDIDATE_SEPARATION)
    for k in np.argsort(scores)[::-1]:
        rotation = grid[int(k)]
        if all((start.inv() * rotation).magnitude() >= apart for start in starts):
            starts.append(rotation)
            if len(starts) == CANDIDATES:
                break
    return starts


def _climb(score: Callable[[Rotation], float], rotation: Rotation) -> float:
    """Compass search from ``rotation``: take the best of the six turns by ``step`` about the
    map's axes while it improves the score, then halve ``step``, down to ``LAST_STEP``."""
    best, step, rounds = score(rotation), FIRST_STEP, 0
    while step >= LAST_STEP and rounds < MAX_ROUNDS:
        rounds += 1
        trials = rotation * Rotation.from_rotvec(np.radians(step) * _TURNS)
        trial_scores = [score(trial) for trial in trials]
        k = int(np.argmax(trial_scores))
        if trial_scores[k] > best:
            rotation, best = trials[k], trial_scores[k]
        else:
            step /= 2
    return best


def affinity_matrix(
    maps: Mapping[str, np.ndarray],
    progress: Progress | None = None,
    known: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The scaled affinity matrix and the raw best correlations, both labelled by class name.
    Pairs of classes that ``known`` (raw correlations labelled by class name) holds are taken
    from it rather than searched."""
    names = list(maps)
    box = max(max(m.shape) for m in maps.values())
    volumes = [fit_box(np.asarray(maps[n], dtype=np.float32), box) for n in names]
    raw = np.eye(len(names))
    held = set() if known is None else set(known.index) & set(known.columns)
    pairs = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if names[i] in held and names[j] in held:
                raw[i, j] = raw[j, i] = known.loc[names[i], names[j]]
            else:
                pairs.append((i, j))
    steps = correlation_steps(volumes, raw, pairs)
    run_steps(steps, len(pairs), "pairs", progress if pairs else None)  # no bar of nothing
    return (
        pd.DataFrame(scale_affinity(raw), index=names, columns=names),
        pd.DataFrame(raw, index=names, columns=names),
    )


def correlation_steps(
    volumes: Sequence[np.ndarray],
    raw: np.ndarray | None = None,
    pairs: list[tuple[int, int]] | None = None,
    stop: Callable[[], bool] | None = None,
) -> Generator[int, None, np.ndarray]:
    """Fill ``raw`` (default: the identity) with the best correlation of each pair of
    ``volumes`` (cubic maps of one size; default: every pair), yielding the pairs done; return
    it. ``stop`` ends the search within a pair (:func:`best_correlation`)."""
    n = len(volumes)
    raw = np.eye(n) if raw is None else raw
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)] if pairs is None else pairs
    for done, (i, j) in enumerate(pairs, 1):
        raw[i, j] = raw[j, i] = pair_correlation(volumes[i], volumes[j], stop)
        yield done
    return raw


def pair_correlation(
    first: np.ndarray, second: np.ndarray, stop: Callable[[], bool] | None = None
) -> float:
    """The best correlation of two maps whichever is given first: the better of turning
    either against the other (the search, from a few starts, can settle on a lesser peak one
    way round)."""
    return max(
        best_correlation(first, second, stop=stop), best_correlation(second, first, stop=stop)
    )


def class_affinity(
    maps: Mapping[str, np.ndarray], voxel_size: float, progress: Progress | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Affinity of a simulation's classes from their maps (built-in and users' molecules alike):
    pairs of built-in classes from the shipped correlations at 10 A/voxel, the others searched."""
    known = None
    if np.isclose(voxel_size, SHIPPED_VOXEL_SIZE):
        known = pd.read_csv(SHIPPED_CORRELATIONS, index_col=0)
    return affinity_matrix(maps, progress, known)


def builtin_affinity(
    classes: list[str] | tuple[str, ...], voxel_size: float, progress: Progress | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Affinity of built-in molecule classes: from the shipped correlations at 10 A/voxel,
    otherwise searched anew."""
    from napari_affinity_vae.simulate.molecules import reference_maps

    return class_affinity(reference_maps(list(classes), voxel_size), voxel_size, progress)


def library_affinity(classes: list[str], voxel_size: float) -> np.ndarray | None:
    """The scaled affinity matrix of ``classes`` if all are built-in molecules, else None: the
    fallback ``avae train`` and ``avae evaluate`` give training sets that bring no affinity CSV."""
    from napari_affinity_vae.simulate.molecules import MOLECULES

    if not all(c in MOLECULES for c in classes):
        return None
    return builtin_affinity(classes, voxel_size)[0].to_numpy()


def scale_affinity(raw: np.ndarray) -> np.ndarray:
    """Affinity ``2c - 1`` of each best correlation ``c``, clipped to [-1, 1]; 1 on the diagonal."""
    scaled = np.clip(2 * np.asarray(raw, dtype=float) - 1, -1, 1)
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
