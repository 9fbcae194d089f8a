"""Particle orientations between RELION's Euler angles and the rotation matrices of copick and the
CryoET Data Portal.

RELION's (rot, tilt, psi) are an intrinsic ZYZ rotation ``A`` with ``particle(r) = reference(A r)``;
copick and the Portal store the rotation that turns the reference into the particle, ``A``'s
inverse (its transpose), acting on (x, y, z).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from napari_affinity_vae.schema import ANGLES


def particle_angles(particles: pd.DataFrame) -> np.ndarray:
    """The particles' RELION angles (n, 3: rot, tilt, psi) in the tomogram's frame: composed,
    as RELION 5 does, with a subtomogram orientation (``rlnTomoSubtomogramRot/Tilt/Psi``, the
    frame ``rlnAngle*`` are given in: ``A = A_sub · A_part``) where the table has one; a
    particle without angles (a pick added by hand beside imported ones) as an unaligned one,
    with angles 0."""
    from napari_affinity_vae.io.star import SUBTOMOGRAM_ANGLES

    angles = particles[list(ANGLES)].fillna(0.0).to_numpy(dtype=float)
    if not set(SUBTOMOGRAM_ANGLES) <= set(particles) or not len(angles):
        return angles
    frame = particles[list(SUBTOMOGRAM_ANGLES)].fillna(0.0).to_numpy(dtype=float)
    return matrices_to_angles(angles_to_matrices(frame) @ angles_to_matrices(angles))


def matrices_to_angles(matrices: np.ndarray) -> np.ndarray:
    """(n, 3, 3) reference-to-particle rotations on (x, y, z) as RELION angles, degrees. At tilt
    0 or 180 only rot + psi (or rot - psi) is defined: psi is then 0, silently."""
    matrices = np.asarray(matrices, dtype=float).reshape(-1, 3, 3)
    if not len(matrices):
        return np.zeros((0, 3))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Gimbal lock detected", UserWarning)
        return Rotation.from_matrix(matrices).inv().as_euler("ZYZ", degrees=True)


def angles_to_matrices(angles: np.ndarray) -> np.ndarray:
    """RELION (rot, tilt, psi) in degrees, (n, 3), as (n, 3, 3) reference-to-particle rotations."""
    angles = np.asarray(angles, dtype=float).reshape(-1, 3)
    if not len(angles):
        return np.zeros((0, 3, 3))
    return Rotation.from_euler("ZYZ", angles, degrees=True).inv().as_matrix()
