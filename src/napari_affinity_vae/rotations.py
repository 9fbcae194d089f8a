"""Near-uniform grids of 3D rotations, for searches over orientations (affinity, template
matching). Neutral: numpy and scipy only, usable by every layer."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

_GOLDEN_PSI = 1.533751168755204288118041  # super-Fibonacci constant (Alexa, CVPR 2022)


def uniform_rotations(n: int) -> Rotation:
    """``n`` rotations spread near-uniformly over SO(3): a deterministic super-Fibonacci spiral."""
    s = np.arange(n) + 0.5
    r = np.sqrt(s / n)
    big_r = np.sqrt(1.0 - s / n)
    alpha = 2 * np.pi * s / np.sqrt(2)
    beta = 2 * np.pi * s / _GOLDEN_PSI
    quaternions = np.stack(
        [r * np.sin(alpha), r * np.cos(alpha), big_r * np.sin(beta), big_r * np.cos(beta)], axis=1
    )
    return Rotation.from_quat(quaternions)
