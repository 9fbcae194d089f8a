"""How coordinates in a file relate to voxels of the tomogram they belong to."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class CoordinateFrame:
    """The tomogram a particle set belongs to, as far as it is known.

    ``voxel_size`` (Angstrom) and ``shape`` (z, y, x) are the tomogram's. ``pixel_size`` is the
    size of one pixel of the file's coordinates when it differs from the tomogram's voxels, e.g.
    RELION 4 coordinates in unbinned tilt-series pixels for a binned tomogram.
    """

    voxel_size: float | None = None
    shape: tuple[int, int, int] | None = None
    pixel_size: float | None = None

    @property
    def voxels_per_pixel(self) -> float:
        """Tomogram voxels in one file pixel (1 unless ``pixel_size`` says otherwise)."""
        if self.pixel_size is None:
            return 1.0
        if self.voxel_size is None:
            raise ValueError("a coordinate pixel size needs the tomogram's voxel size as well")
        return self.pixel_size / self.voxel_size


def binned_pixel_size(voxel_size: float | None, binning: float) -> float | None:
    """The pixel size of coordinates picked ``binning`` times finer than the tomogram's voxels
    (None for 1: the tomogram's own)."""
    return None if binning == 1 or voxel_size is None else voxel_size / binning


def follow_voxel_size(
    positions: np.ndarray, placed: np.ndarray, origin: np.ndarray, ratio: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Positions (n, 3) after a tomogram's voxel size changed by 1 / ``ratio`` (old over new):
    those still where a file's Angstrom ``placed`` them (m, 3) move ``ratio`` times as far from
    the voxel ``origin`` the Angstrom count from, the others (added or moved by hand) stay; a
    placement moves as many positions as it was made for, so a copy pasted onto a particle
    stays. Returns the positions, the new placements and how many stayed."""
    origin = np.asarray(origin, dtype=float)
    placed = np.asarray(placed, dtype=float).reshape(-1, 3)
    moved = origin + (placed - origin) * ratio
    data = np.array(positions, dtype=float).reshape(-1, 3)
    found = _numbered(placed).get_indexer(_numbered(data))  # whole rows, not per point
    from_file = found >= 0
    data[from_file] = moved[found[from_file]]
    return data, moved, int((~from_file).sum())


def _numbered(points: np.ndarray) -> pd.MultiIndex:
    """Each point (n, 3) with how many equal ones come before it: equal points told apart."""
    frame = pd.DataFrame(points)
    before = frame.groupby(list(frame.columns), dropna=False, sort=False).cumcount()
    return pd.MultiIndex.from_arrays([*points.T, before.to_numpy()])
