"""napari writer contribution: a Points layer to a RELION 4 STAR or a CSV file (by suffix)."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_affinity_vae.io.particles import write_particles
from napari_affinity_vae.layers import points_to_particles


def write_points(path: str, data: np.ndarray, attributes: dict[str, Any]) -> list[str]:
    """Save a Points layer: STAR coordinates in tomogram pixels, or CSV x, y, z then features."""
    return [str(write_particles(points_to_particles(data, attributes), path))]
