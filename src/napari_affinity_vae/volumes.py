"""Operations on cubic (z, y, x) volumes and stacks of them: resampling, cropping and padding.

Neutral: numpy and scipy only, usable by every layer (simulation, extraction, the model).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def resample(volume: np.ndarray, factor: float) -> np.ndarray:
    """Resample the last three axes of a map (or a stack of maps) by ``factor`` (output voxels per
    input voxel), low-passed when shrinking."""
    volume = np.asarray(volume, dtype=np.float32)
    if np.isclose(factor, 1.0):
        return volume.copy()
    leading = (0,) * (volume.ndim - 3)
    if factor < 1:
        volume = ndimage.gaussian_filter(volume, sigma=leading + (0.5 / factor,) * 3)
    factors = (1,) * len(leading) + (factor,) * 3
    return ndimage.zoom(volume, factors, order=1, mode="grid-constant", grid_mode=True)


def fit_box(volume: np.ndarray, box: int) -> np.ndarray:
    """Centre-crop or zero-pad the last three axes of a map (or a stack of maps) to ``box``."""
    out = np.zeros((*volume.shape[:-3], box, box, box), dtype=np.float32)
    src, dst = [Ellipsis], [Ellipsis]
    for n in volume.shape[-3:]:
        if n >= box:
            start = (n - box) // 2
            src.append(slice(start, start + box))
            dst.append(slice(0, box))
        else:
            start = (box - n) // 2
            src.append(slice(0, n))
            dst.append(slice(start, start + n))
    out[tuple(dst)] = volume[tuple(src)]
    return out
