"""Boxes from a chunked, compressed tomogram (OME-Zarr) with each chunk decompressed once: the
boxes are read in chunk order, and a chunk is kept only while a box still to be read needs it."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np

ChunkKey = tuple[int, int, int]


def is_chunked(data: Any) -> bool:
    """Whether ``data`` is a chunked array read chunk by chunk (Zarr), not a NumPy array."""
    chunks = getattr(data, "chunks", None)
    return (
        not isinstance(data, np.ndarray)
        and isinstance(chunks, tuple)
        and all(isinstance(n, int) for n in chunks)
    )


def planned_reads(data: Any, centres_zyx: np.ndarray, box: int) -> tuple[Any, np.ndarray]:
    """The array to cut boxes of ``box`` voxels around ``centres_zyx`` from, and the order to cut
    them in: for a chunked array a :class:`ChunkCache` and the boxes sorted by chunk; otherwise
    ``data`` itself and the boxes sorted by slabs of half a box in z, then by y. Each row of a
    box lies on a page of its own, and boxes near each other in z and y read the same pages: cut
    one after the other, they find the pages' address translations still cached (cutting on one
    core took a sixth less time than in a random order here)."""
    if not is_chunked(data):
        centres = np.round(np.asarray(centres_zyx, dtype=float)).astype(int).reshape(-1, 3)
        return data, np.lexsort((centres[:, 1], centres[:, 0] // max(1, box // 2)))
    starts, stops = box_regions(data.shape, centres_zyx, box)
    chunks = np.asarray(data.chunks)
    first = starts // chunks
    order = np.lexsort(first.T[::-1]) if len(first) else np.arange(0)
    return ChunkCache(data, starts[order], stops[order]), order


def box_regions(
    shape: tuple[int, ...], centres_zyx: np.ndarray, box: int
) -> tuple[np.ndarray, np.ndarray]:
    """The part of each box inside the tomogram: start and stop voxels (z, y, x)."""
    centres = np.round(np.asarray(centres_zyx, dtype=float)).astype(int).reshape(-1, 3)
    starts = centres - box // 2
    limit = np.asarray(shape)
    return np.clip(starts, 0, limit), np.clip(starts + box, 0, limit)


class ChunkCache:
    """A read-only view of a chunked array for a planned list of regions: a chunk is decompressed
    when a region first needs it and dropped once no planned region still does. Thread-safe."""

    def __init__(self, array: Any, starts: np.ndarray, stops: np.ndarray) -> None:
        self._array = array
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self._chunks = np.asarray(array.chunks)
        self._pending = _chunk_uses(starts, stops, self._chunks)
        self._cache: dict[ChunkKey, np.ndarray] = {}
        self._lock = threading.Lock()
        self.decompressed = 0  # chunks read from the array so far

    @property
    def held(self) -> int:
        """Chunks held in memory now."""
        return len(self._cache)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        start = np.array([s.indices(n)[0] for s, n in zip(key, self.shape, strict=True)])
        stop = np.array([s.indices(n)[1] for s, n in zip(key, self.shape, strict=True)])
        out = np.empty(np.maximum(stop - start, 0), dtype=self.dtype)
        for chunk in self._keys(start, stop):
            low = np.asarray(chunk) * self._chunks
            block = self._take(chunk)
            a, b = np.maximum(start, low), np.minimum(stop, low + block.shape)
            out[tuple(map(slice, a - start, b - start))] = block[
                tuple(map(slice, a - low, b - low))
            ]
        return out

    def _take(self, chunk: ChunkKey) -> np.ndarray:
        """The chunk's voxels, decompressed now unless held; released if no planned read is left."""
        with self._lock:
            block = self._cache.get(chunk)
            if block is None:
                low = np.asarray(chunk) * self._chunks
                high = np.minimum(low + self._chunks, self.shape)
                block = np.asarray(self._array[tuple(map(slice, low, high))])
                self.decompressed += 1
            self._pending[chunk] -= 1
            if self._pending[chunk] > 0:
                self._cache[chunk] = block
            else:
                self._cache.pop(chunk, None)
            return block

    def _keys(self, start: np.ndarray, stop: np.ndarray) -> Iterator[ChunkKey]:
        if np.any(stop <= start):
            return iter(())
        ranges = [
            range(a // c, (b - 1) // c + 1)
            for a, b, c in zip(start, stop, self._chunks, strict=True)
        ]
        return itertools.product(*ranges)  # type: ignore[return-value]


def _chunk_uses(starts: np.ndarray, stops: np.ndarray, chunks: np.ndarray) -> Counter[ChunkKey]:
    """How many of the regions [start, stop) touch each chunk, counted for all regions at once
    (a region spans few chunks along each axis: the offsets are looped over, not the regions)."""
    starts, stops = np.asarray(starts).reshape(-1, 3), np.asarray(stops).reshape(-1, 3)
    filled = np.all(stops > starts, axis=1)
    first, last = starts[filled] // chunks, (stops[filled] - 1) // chunks
    if not len(first):
        return Counter()
    touched = [
        first[np.all(first + offset <= last, axis=1)] + offset
        for offset in np.ndindex(*(last - first).max(axis=0) + 1)
    ]
    keys, counts = np.unique(np.concatenate(touched), axis=0, return_counts=True)
    return Counter(
        {tuple(int(k) for k in key): int(n) for key, n in zip(keys, counts, strict=True)}
    )
