"""Rotations in RELION's convention, applied to (z, y, x) maps.

RELION's Euler angles (rot, tilt, psi) are an intrinsic ZYZ rotation ``A`` acting on (x, y, z);
a particle with those angles is the reference resampled as ``particle(r) = reference(A r)``,
with ``r`` measured from the particle's centre.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation


def relion_matrix(angles: np.ndarray) -> np.ndarray:
    """RELION (rot, tilt, psi) in degrees, shape (3,) or (n, 3), to (x, y, z) rotation matrices."""
    return Rotation.from_euler("ZYZ", angles, degrees=True).as_matrix()


def random_angles(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniformly random 3D orientations as RELION (rot, tilt, psi) in degrees."""
    return Rotation.random(n, random_state=rng).as_euler("ZYZ", degrees=True).reshape(n, 3)


def rotate_map(
    volume: np.ndarray,
    matrix: np.ndarray,
    shift: np.ndarray | None = None,
    output_shape: tuple[int, int, int] | None = None,
    order: int = 1,
) -> np.ndarray:
    """``out(r) = volume(matrix @ (r - shift))``, ``r`` measured from each box's centre voxel
    (index ``shape // 2``, RELION's convention).

    ``matrix`` acts on (x, y, z); ``shift`` is (z, y, x) in voxels; arrays are (z, y, x).
    """
    output_shape = output_shape or volume.shape
    m = np.asarray(matrix, dtype=float)[::-1, ::-1]  # the same rotation acting on (z, y, x)
    centre_in = np.asarray(volume.shape) // 2
    centre_out = np.asarray(output_shape) // 2 + (0 if shift is None else np.asarray(shift))
    offset = centre_in - m @ centre_out
    return ndimage.affine_transform(
        volume, m, offset=offset, output_shape=output_shape, order=order, mode="constant"
    )
