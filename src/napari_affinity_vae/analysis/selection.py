"""Fast selection of points in a 2D embedding by lasso, rectangle or click, for a million points:
a grid over the plane finds the cells wholly inside a lasso at once, and only points in cells the
lasso's outline crosses are tested exactly."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.measure import approximate_polygon, points_in_poly

CELLS = 512  # grid cells along each axis


class PlaneIndex:
    """Rows of ``xy`` (n, 2) inside shapes drawn on the plane."""

    def __init__(self, xy: np.ndarray, cells: int = CELLS) -> None:
        self.xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        self.x, self.y = np.ascontiguousarray(self.xy[:, 0]), np.ascontiguousarray(self.xy[:, 1])
        self.cells = cells
        self.placed = np.isfinite(self.xy).all(axis=1)  # rows without a place are never chosen
        placed = self.xy[self.placed]
        self.low = placed.min(axis=0) if len(placed) else np.zeros(2)
        span = (placed.max(axis=0) - self.low) if len(placed) else np.ones(2)
        self.size = np.where(span > 0, span, 1.0) / cells
        grid = np.nan_to_num((self.xy - self.low) / self.size)
        ij = np.clip(grid.astype(np.int64), 0, cells - 1)
        self.cell = (ij[:, 0] * cells + ij[:, 1]).astype(np.int32)

    def in_rectangle(self, corner: np.ndarray, opposite: np.ndarray) -> np.ndarray:
        low, high = np.minimum(corner, opposite), np.maximum(corner, opposite)
        x, y = self.x, self.y
        inside = (x >= low[0]) & (x <= high[0]) & (y >= low[1]) & (y <= high[1])
        return np.flatnonzero(inside)

    def in_polygon(self, vertices: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
        """Sorted rows inside the closed polygon ``vertices`` (m, 2), first simplified so that
        no outline point moves more than ``tolerance`` (e.g. one screen pixel)."""
        vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 2)
        if tolerance > 0 and len(vertices) > 3:
            vertices = approximate_polygon(np.vstack([vertices, vertices[:1]]), tolerance)[:-1]
        if len(vertices) < 3 or not len(self.xy):
            return np.zeros(0, dtype=np.int64)
        grid = (vertices - self.low) / self.size
        outline = _outline(grid, self.cells)
        chosen = (_fill(grid, self.cells) & ~outline).ravel()[self.cell] & self.placed
        undecided = np.flatnonzero(outline.ravel()[self.cell] & self.placed)
        chosen[undecided[points_in_poly(self.xy[undecided], vertices)]] = True
        return np.flatnonzero(chosen)

    def nearest(self, point: np.ndarray, radius: float) -> int | None:
        """The row nearest ``point``, if it lies within ``radius``."""
        if not len(self.xy):
            return None
        x, y = point
        near = np.flatnonzero(
            (self.x >= x - radius)
            & (self.x <= x + radius)
            & (self.y >= y - radius)
            & (self.y <= y + radius)
        )
        if not len(near):
            return None
        distance = np.sum((self.xy[near] - point) ** 2, axis=1)
        best = int(np.argmin(distance))
        return int(near[best]) if distance[best] <= radius**2 else None


def _fill(grid: np.ndarray, cells: int) -> np.ndarray:
    """Cells whose centre is inside the polygon (grid units), by scanlines: along each row the
    outline's crossings toggle inside and outside."""
    a, b = grid, np.roll(grid, -1, axis=0)
    centres = np.arange(cells)[:, None] + 0.5
    spans = (centres >= np.minimum(a[:, 0], b[:, 0])) & (centres < np.maximum(a[:, 0], b[:, 0]))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (centres - a[:, 0]) / (b[:, 0] - a[:, 0])
    rows, edges = np.nonzero(spans)
    crossing = a[edges, 1] + t[rows, edges] * (b[edges, 1] - a[edges, 1])
    first_after = np.clip(np.ceil(crossing - 0.5), 0, cells).astype(np.int64)
    toggles = np.zeros((cells, cells + 1), dtype=np.int32)
    np.add.at(toggles, (rows, first_after), 1)
    return (np.cumsum(toggles, axis=1)[:, :cells] % 2).astype(bool)


def _outline(grid: np.ndarray, cells: int) -> np.ndarray:
    """Cells the polygon's outline passes through or touches (sampled every half cell along
    each edge, then grown by one cell, so none is missed)."""
    a, b = grid, np.roll(grid, -1, axis=0)
    steps = np.ceil(np.linalg.norm(b - a, axis=1) / 0.5).astype(np.int64) + 1
    edge = np.repeat(np.arange(len(a)), steps)
    t = (np.arange(steps.sum()) - np.repeat(np.cumsum(steps) - steps, steps)) / np.repeat(
        np.maximum(steps - 1, 1), steps
    )
    samples = np.floor(a[edge] + t[:, None] * (b[edge] - a[edge])).astype(np.int64)
    keep = np.all((samples >= 0) & (samples < cells), axis=1)
    outline = np.zeros((cells, cells), dtype=bool)
    outline[samples[keep, 0], samples[keep, 1]] = True
    return ndimage.binary_dilation(outline, np.ones((3, 3), dtype=bool))
