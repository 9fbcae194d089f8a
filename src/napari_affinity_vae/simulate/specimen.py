"""The specimen: particles at random non-overlapping positions and orientations, vesicles, gold.

Densities are fractions of a voxel filled with protein (lipid about 0.8, gold about 6 times the
scattering of protein per voxel), summed into a (z, y, x) volume.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from napari_affinity_vae.errors import AffinityVAEError
from napari_affinity_vae.progress import Progress
from napari_affinity_vae.schema import ANGLES, AXES, CLASS_NAME
from napari_affinity_vae.simulate.geometry import random_angles, relion_matrix, rotate_map

LIPID_DENSITY = 0.8
LEAFLET_SEPARATION = 36.0  # Angstrom between the two head-group layers of a bilayer
GOLD_DENSITY = 6.0
GOLD_RADIUS = 50.0  # Angstrom (10 nm fiducials)
MAX_ATTEMPTS = 200


class CrowdingError(AffinityVAEError, ValueError):
    """The requested particles do not fit in the volume without overlapping."""


@dataclass(frozen=True)
class Sphere:
    """A ball, or a membrane shell ``half_width`` thick on each side (centre z, y, x and radius,
    all in voxels): an obstacle when placing particles."""

    centre: np.ndarray
    radius: float
    half_width: float | None = None


def place_particles(
    classes: list[str],
    radii: Mapping[str, float],
    shape: tuple[int, int, int],
    count: int,
    rng: np.random.Generator,
    obstacles: list[Sphere] = (),  # type: ignore[assignment]
    margin: float = 0.0,
) -> pd.DataFrame:
    """``count`` particles, classes balanced and shuffled, at non-overlapping random positions
    (centres at least their radius, and at least ``margin``, from every face) with uniformly
    random orientations. Returns z, y, x, rot, tilt, psi, class_name."""
    labels = np.array([classes[i % len(classes)] for i in range(count)])
    rng.shuffle(labels)
    centres = np.empty((0, 3))
    sizes = np.empty(0)
    upper = np.asarray(shape, dtype=float) - 1
    for label in labels:
        r = radii[label]
        low = np.full(3, max(r, margin))
        high = upper - low
        if np.any(high < low):
            raise CrowdingError(f"a {label} ({2 * r:.0f} voxels across) does not fit in {shape}")
        for _ in range(MAX_ATTEMPTS):
            p = rng.uniform(low, high)
            if _clear(p, r, centres, sizes, obstacles):
                centres = np.vstack([centres, p])
                sizes = np.append(sizes, r)
                break
        else:
            raise CrowdingError(
                f"only {len(centres)} of {count} particles fit in {shape} without overlapping; "
                "ask for fewer particles or a larger volume"
            )
    table = pd.DataFrame(centres, columns=list(AXES))
    table[list(ANGLES)] = random_angles(count, rng)
    table[CLASS_NAME] = labels
    return table


def render_particles(
    volume: np.ndarray,
    particles: pd.DataFrame,
    maps: Mapping[str, np.ndarray],
    progress: Progress | None = None,
) -> None:
    """Add each particle's reference, turned by its angles and shifted sub-voxel, to ``volume``."""
    rows = particles[[*AXES, *ANGLES, CLASS_NAME]].itertuples(index=False)
    if progress:
        rows = progress(rows, desc="placing particles", total=len(particles))
    for z, y, x, rot, tilt, psi, name in rows:
        reference = maps[name]
        centre = np.array([z, y, x])
        shift = centre - np.floor(centre)
        corner = np.floor(centre).astype(int) - np.asarray(reference.shape) // 2
        turned = rotate_map(reference, relion_matrix([rot, tilt, psi]), shift)
        _add_box(volume, turned, corner)


def add_vesicles(volume: np.ndarray, vesicles: list[Sphere], voxel_size: float) -> None:
    """Lipid bilayers: two Gaussian head-group layers at the shell radius +- half the separation."""
    for v in vesicles:
        half = LEAFLET_SEPARATION / 2 / voxel_size
        sigma = max(0.5, 6.0 / voxel_size)
        reach = int(np.ceil(v.radius + half + 3 * sigma))
        corner = np.floor(v.centre).astype(int) - reach
        grid = np.indices((2 * reach + 1,) * 3).reshape(3, -1).T + corner
        distance = np.linalg.norm(grid - v.centre, axis=1) - v.radius
        layers = np.exp(-((distance - half) ** 2) / (2 * sigma**2))
        layers += np.exp(-((distance + half) ** 2) / (2 * sigma**2))
        _add_box(volume, (LIPID_DENSITY * layers).reshape((2 * reach + 1,) * 3), corner)


def add_gold(volume: np.ndarray, beads: list[Sphere]) -> None:
    """Dense gold beads, slightly blurred."""
    for bead in beads:
        reach = int(np.ceil(bead.radius + 2))
        corner = np.floor(bead.centre).astype(int) - reach
        grid = np.indices((2 * reach + 1,) * 3).reshape(3, -1).T + corner
        inside = (np.linalg.norm(grid - bead.centre, axis=1) <= bead.radius).astype(np.float32)
        ball = ndimage.gaussian_filter(inside.reshape((2 * reach + 1,) * 3), 0.7)
        _add_box(volume, GOLD_DENSITY * ball, corner)


def random_spheres(
    count: int,
    radius_range: tuple[float, float],
    shape: tuple[int, int, int],
    rng: np.random.Generator,
    existing: list[Sphere] = (),  # type: ignore[assignment]
    half_width: float | None = None,
) -> list[Sphere]:
    """Non-overlapping balls (or shells ``half_width`` thick) with radii drawn from
    ``radius_range`` (voxels), clear of ``existing``."""
    spheres = list(existing)
    upper = np.asarray(shape, dtype=float) - 1
    for _ in range(count):
        for _ in range(MAX_ATTEMPTS):
            radius = rng.uniform(*radius_range)
            margin = min(radius, upper.min() / 2)
            centre = rng.uniform(np.full(3, margin), upper - margin)
            if all(np.linalg.norm(centre - s.centre) > radius + s.radius + 2 for s in spheres):
                spheres.append(Sphere(centre, radius, half_width))
                break
    return spheres[len(existing) :]


def _clear(
    p: np.ndarray, r: float, centres: np.ndarray, sizes: np.ndarray, obstacles: list[Sphere]
) -> bool:
    if len(centres) and np.any(np.linalg.norm(centres - p, axis=1) < sizes + r):
        return False
    for obstacle in obstacles:
        distance = np.linalg.norm(p - obstacle.centre)
        if obstacle.half_width is None:
            if distance < obstacle.radius + r:
                return False
        elif abs(distance - obstacle.radius) < r + obstacle.half_width:
            return False
    return True


def _add_box(volume: np.ndarray, box: np.ndarray, corner: np.ndarray) -> None:
    """``volume[corner : corner + box.shape] += box``, clipped at the volume's faces."""
    src, dst = [], []
    for c, n, size in zip(corner, box.shape, volume.shape, strict=True):
        start, stop = max(c, 0), min(c + n, size)
        if stop <= start:
            return
        dst.append(slice(start, stop))
        src.append(slice(start - c, stop - c))
    volume[tuple(dst)] += box[tuple(src)]
