"""Greedy non-maximum suppression of picks, shared by the blob picker and template matching."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def kept(points: np.ndarray, radii: float | np.ndarray) -> np.ndarray:
    """Which of ``points`` (best first) to keep: none within ``radii`` (one, or one per point:
    the better point's) of a better point that is kept."""
    keep = np.ones(len(points), dtype=bool)
    if not len(points):
        return keep
    near = cKDTree(points).query_ball_point(points, radii, workers=-1)
    for i, neighbours in enumerate(near):  # all neighbours found at once; only the flags here
        if keep[i]:
            keep[[j for j in neighbours if j > i]] = False
    return keep
