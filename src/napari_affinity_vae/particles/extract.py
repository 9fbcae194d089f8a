"""Cut boxes around particles from a (memory-mapped) tomogram, padding those that cross an edge."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from napari_affinity_vae.volumes import fit_box, resample


def extract_boxes(
    tomogram: np.ndarray, centres_zyx: np.ndarray, box: int, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (n, box, box, box) whose voxel ``box // 2`` is each centre rounded to a voxel, and a
    flag per box that is True where it crossed the tomogram's edge (the outside is filled with the
    mean of what was inside). Reads only the boxes' voxels.

    ``scale`` is the output voxel size over the tomogram's (2 for a 5 A tomogram feeding a 10 A
    model): boxes of ``box * scale`` tomogram voxels are cut, low-passed and resampled to ``box``.
    """
    if not np.isclose(scale, 1.0):
        boxes, crossed = extract_boxes(tomogram, centres_zyx, read_size(box, scale))
        resampled = fit_box(resample(boxes, 1 / scale), box)  # the whole stack at once
        return resampled, crossed
    centres = np.round(np.asarray(centres_zyx, dtype=float)).astype(int).reshape(-1, 3)
    shape = np.asarray(tomogram.shape)
    starts = centres - box // 2
    crossed = np.any((starts < 0) | (starts + box > shape), axis=1)
    out = np.empty((len(centres), box, box, box), dtype=np.float32)
    corners = starts.tolist()

    def copy(rows: np.ndarray) -> None:  # numpy copies without the GIL, so threads run in parallel
        for i in rows:
            z, y, x = corners[i]
            out[i] = tomogram[z : z + box, y : y + box, x : x + box]

    inside = np.flatnonzero(~crossed)
    threads = min(os.cpu_count() or 1, max(1, len(inside) // 64))
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(copy, np.array_split(inside, threads)))
    for i in np.flatnonzero(crossed):
        out[i] = _padded(tomogram, starts[i], box, shape)
    return out, crossed


def read_size(box: int, scale: float) -> int:
    """The side of the boxes cut from the tomogram for output boxes of ``box`` voxels ``scale``
    times its voxel size (even, so that the centre stays on a voxel)."""
    return box if np.isclose(scale, 1.0) else int(2 * np.ceil(box * scale / 2))


def _padded(tomogram: np.ndarray, start: np.ndarray, box: int, shape: np.ndarray) -> np.ndarray:
    """The part of a box inside the tomogram, the rest filled with that part's mean (or 0)."""
    inner_start, inner_stop = np.maximum(start, 0), np.minimum(start + box, shape)
    result = np.zeros((box, box, box), dtype=np.float32)
    if np.any(inner_stop <= inner_start):
        return result
    block = np.asarray(tomogram[tuple(map(slice, inner_start, inner_stop))], dtype=np.float32)
    result[:] = block.mean()
    offset = inner_start - start
    result[tuple(slice(o, o + n) for o, n in zip(offset, block.shape, strict=True))] = block
    return result
