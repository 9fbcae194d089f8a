"""Picks against known particles: which pick finds which particle, and where the picker finds
each particle of a simulated tomogram (to train a model on boxes centred as picks are).

Particles are known by class (``class_name``); the caller says how large each class is, as a
function from a class name to its diameter in Angstrom (the simulator's ``extent``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from napari_affinity_vae.particles.picking import PickSettings, pick
from napari_affinity_vae.schema import AXES, CLASS_NAME

Diameter = Callable[[str], float]  # a class name -> the diameter of its particles, Angstrom


def radii_of(particles: pd.DataFrame, voxel_size: float, diameter: Diameter) -> np.ndarray:
    """Each particle's radius in voxels: half its class's ``diameter``."""
    return np.array([diameter(name) / 2 / voxel_size for name in particles[CLASS_NAME]])


def match_picks(picks_zyx: np.ndarray, truth_zyx: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """For each particle, the index of the pick that finds it, or -1: the nearest pick within half
    its radius (voxels) that no earlier particle took."""
    found = np.full(len(truth_zyx), -1)
    if len(truth_zyx) == 0 or len(picks_zyx) == 0:
        return found
    tree = cKDTree(picks_zyx)
    used: set[int] = set()
    for row, (position, radius) in enumerate(zip(truth_zyx, radii, strict=True)):
        near = [i for i in tree.query_ball_point(position, radius / 2) if i not in used]
        if near:
            found[row] = min(near, key=lambda i: np.linalg.norm(tree.data[i] - position))
            used.add(int(found[row]))
    return found


def picked_centres(
    tomogram: np.ndarray,
    particles: pd.DataFrame,
    voxel_size: float,
    diameter: Diameter,
    inverted: bool = False,
) -> np.ndarray:
    """Where the built-in picker, given the particles' range of diameters, finds each simulated
    particle (z, y, x voxels), or NaN where it finds none."""
    diameters = [diameter(name) for name in particles[CLASS_NAME].unique()]
    settings = PickSettings(min(diameters), max(diameters), voxel_size, inverted=inverted)
    picked = pick(tomogram, settings)[list(AXES)].to_numpy()
    truth = particles[list(AXES)].to_numpy()
    found = match_picks(picked, truth, radii_of(particles, voxel_size, diameter))
    centres = np.full(truth.shape, np.nan)
    centres[found >= 0] = picked[found[found >= 0]]
    return centres
