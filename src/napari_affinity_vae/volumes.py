"""Operations on cubic (z, y, x) volumes and stacks of them: resampling, cropping, padding and
normalisation.

Neutral: numpy and scipy only, usable by every layer (simulation, extraction, the model).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


class NonFiniteError(ValueError):
    """A volume holds NaN or infinite voxels (a blank region of a tomogram, say), which every
    filter, correlation and normalisation would spread; the caller names the file."""


def check_finite(volume: np.ndarray, what: str = "a region") -> None:
    """Raise :class:`NonFiniteError` if ``volume`` (read as it is, in one pass) holds a NaN or
    an infinity."""
    finite = np.isfinite(volume)
    if not finite.all():
        raise NonFiniteError(
            f"{what} holds {finite.size - np.count_nonzero(finite)} NaN or infinite voxels"
        )


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


def normalise(boxes: np.ndarray, *, in_place: bool = False, inverted: bool = False) -> np.ndarray:
    """Each box to mean 0 and standard deviation 1 (float32), as the model is trained; negated
    too with ``inverted`` (protein bright). With ``in_place``, a float32 array of the caller's is
    normalised where it is: a fresh array of a million boxes' worth costs more in page faults
    than the arithmetic does. The sums are float32 (pairwise for the mean): run on boxes still in
    the cache, as extraction does, this is a third of the cost of float64 sums."""
    if not (
        in_place
        and isinstance(boxes, np.ndarray)
        and boxes.dtype == np.float32
        and boxes.flags.c_contiguous
    ):
        boxes = np.array(boxes, dtype=np.float32)
    if not boxes.size:
        return boxes
    flat = boxes.reshape(len(boxes), -1)
    count = flat.shape[1]
    flat -= (flat.sum(axis=1) / count)[:, None]
    std = np.sqrt(np.einsum("ij,ij->i", flat, flat) / count)
    scale = (-1 if inverted else 1) / np.where(std > 0, std, 1)
    flat *= scale.astype(np.float32)[:, None]
    return boxes
