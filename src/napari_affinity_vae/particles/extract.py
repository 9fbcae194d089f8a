"""Cut boxes around particles from a (memory-mapped) tomogram, padding those that cross an edge."""

from __future__ import annotations

import numpy as np

from napari_affinity_vae.simulate.density import fit_box, resample


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
        source = int(2 * np.ceil(box * scale / 2))
        boxes, crossed = extract_boxes(tomogram, centres_zyx, source)
        resampled = (
            np.stack([fit_box(resample(b, 1 / scale), box) for b in boxes])
            if len(boxes)
            else np.zeros((0, box, box, box), np.float32)
        )
        return resampled, crossed
    centres = np.round(np.asarray(centres_zyx, dtype=float)).astype(int).reshape(-1, 3)
    shape = np.asarray(tomogram.shape)
    out = np.empty((len(centres), box, box, box), dtype=np.float32)
    crossed = np.zeros(len(centres), dtype=bool)
    for i, centre in enumerate(centres):
        start = centre - box // 2
        stop = start + box
        inner_start, inner_stop = np.maximum(start, 0), np.minimum(stop, shape)
        if np.any(inner_stop <= inner_start):
            out[i] = 0.0
            crossed[i] = True
            continue
        block = np.asarray(
            tomogram[tuple(slice(a, b) for a, b in zip(inner_start, inner_stop, strict=True))],
            dtype=np.float32,
        )
        if np.array_equal(inner_start, start) and np.array_equal(inner_stop, stop):
            out[i] = block
            continue
        crossed[i] = True
        out[i] = block.mean()
        offset = inner_start - start
        out[i][tuple(slice(o, o + n) for o, n in zip(offset, block.shape, strict=True))] = block
    return out, crossed
