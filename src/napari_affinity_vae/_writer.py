"""napari writer contribution: a Points layer of particles to a RELION 4 STAR, CSV, Dynamo table
or TomoTwin coordinates file (by suffix); other points (2D, 4D) are napari's own business."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_affinity_vae.errors import AffinityVAEError, SaveError
from napari_affinity_vae.io.particles import write_particles
from napari_affinity_vae.layers import points_to_particles
from napari_affinity_vae.schema import TOMOGRAM_MISSING


def write_points(path: str, data: np.ndarray, attributes: dict[str, Any]) -> list[str]:
    """Save a Points layer: 3D points as particles (STAR coordinates in tomogram pixels, or in
    the pixels of the optics block of the STAR file they were read from; CSV x, y, z then
    features, ...); points of another dimension to a CSV as napari writes them."""
    if np.ndim(data) != 2 or np.shape(data)[1] != 3:
        if Path(path).suffix.lower() != ".csv":
            raise SaveError(f"{path}: only 3D points are particles; save these as .csv")
        from napari_builtins.io import napari_write_points

        written = napari_write_points(path, data, attributes)
        return [written] if written else []
    try:
        particles = points_to_particles(data, attributes)
        particles = particles.drop(columns=[TOMOGRAM_MISSING], errors="ignore")  # a project's
        return [str(write_particles(particles, path))]
    except AffinityVAEError as err:  # shown by napari as it is, not as "no writer"
        raise SaveError(str(err)) from None
