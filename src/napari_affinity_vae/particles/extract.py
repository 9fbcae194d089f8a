"""Cut boxes around particles from a (memory-mapped) tomogram, padding those that cross an edge."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from napari_affinity_vae.volumes import fit_box, normalise, resample

CACHED_BYTES = 2**20  # boxes cut before they are normalised together, while still in the cache


def blank_boxes(boxes: np.ndarray) -> np.ndarray:
    """The indices of normalised boxes holding NaN or infinities: normalising spreads one over
    its whole box, so one voxel tells."""
    return np.flatnonzero(~np.isfinite(boxes[:, 0, 0, 0]))


def extract_boxes(
    tomogram: np.ndarray,
    centres_zyx: np.ndarray,
    box: int,
    scale: float = 1.0,
    *,
    normalised: bool = False,
    inverted: bool = False,
    out: np.ndarray | None = None,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (n, box, box, box) whose voxel ``box // 2`` is each centre rounded to a voxel, and a
    flag per box that is True where it crossed the tomogram's edge (the outside is filled with the
    mean of what was inside). Reads only the boxes' voxels.

    ``scale`` is the output voxel size over the tomogram's (2 for a 5 A tomogram feeding a 10 A
    model): boxes of ``box * scale`` tomogram voxels are cut, low-passed and resampled to ``box``.
    With ``normalised``, each box is brought to mean 0 and standard deviation 1 (negated too with
    ``inverted``), as the model takes it, a few boxes at a time as they are cut, while they are
    still in the cache. ``out`` (float32, C-contiguous) receives the boxes instead of a new array:
    a caller cutting batch after batch reuses it rather than paying for fresh pages each time.
    ``threads`` cut in parallel (at most one per box; default: one per 64 boxes, at most one per
    core).
    """
    n = len(centres_zyx)
    if out is None:
        out = np.empty((n, box, box, box), dtype=np.float32)
    elif out.shape != (n, box, box, box) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be a C-contiguous float32 array of shape {(n, box, box, box)}, "
            f"not {out.dtype} {out.shape}"
        )
    if not np.isclose(scale, 1.0):
        boxes, crossed = extract_boxes(
            tomogram, centres_zyx, read_size(box, scale), threads=threads
        )
        out[:] = fit_box(resample(boxes, 1 / scale), box)  # the whole stack at once
        _finish(out, normalised, inverted)
        return out, crossed
    centres = np.round(np.asarray(centres_zyx, dtype=float)).astype(int).reshape(-1, 3)
    shape = np.asarray(tomogram.shape)
    starts = centres - box // 2
    crossed = np.any((starts < 0) | (starts + box > shape), axis=1)
    corners, edges = starts.tolist(), crossed.tolist()
    per_chunk = max(1, CACHED_BYTES // out[:1].nbytes) if n else 1

    def cut(first: int, stop: int) -> None:  # numpy copies without the GIL: threads run in parallel
        for low in range(first, stop, per_chunk):
            high = min(low + per_chunk, stop)
            for i in range(low, high):
                z, y, x = corners[i]
                if edges[i]:
                    out[i] = _padded(tomogram, starts[i], box, shape)
                else:
                    out[i] = tomogram[z : z + box, y : y + box, x : x + box]
            _finish(out[low:high], normalised, inverted)

    threads = min(threads, max(n, 1)) if threads else min(os.cpu_count() or 1, max(1, n // 64))
    bounds = np.linspace(0, n, threads + 1).astype(int)
    if threads == 1:
        cut(0, n)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(cut, bounds[:-1], bounds[1:]))
    return out, crossed


def read_size(box: int, scale: float) -> int:
    """The side of the boxes cut from the tomogram for output boxes of ``box`` voxels ``scale``
    times its voxel size (even, so that the centre stays on a voxel)."""
    return box if np.isclose(scale, 1.0) else int(2 * np.ceil(box * scale / 2))


def _finish(boxes: np.ndarray, normalised: bool, inverted: bool) -> None:
    """Normalise and/or negate cut boxes where they are."""
    if normalised:
        normalise(boxes, in_place=True, inverted=inverted)
    elif inverted:
        np.negative(boxes, out=boxes)


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
