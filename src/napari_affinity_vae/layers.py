"""Conversions between the program's objects and napari layer data tuples (no Qt, no viewer)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from napari_affinity_vae.colours import CATEGORY_COLOURS, DEFAULT_COLOUR
from napari_affinity_vae.io.frame import follow_voxel_size
from napari_affinity_vae.io.tomogram import Tomogram, central_block, contrast_limits
from napari_affinity_vae.schema import (
    ANGSTROM_ORIGIN,
    AXES,
    COORDINATE_BINNING,
    STAR_BLOCKS,
    TOMO_NAME,
)

POINT_SIZE_VOXELS = 12.0
PLACED_KEY = "placed from Angstrom"  # a particles layer's metadata: where a file put its points
LEVELS_KEY = "levels"  # a multiscale tomogram layer's metadata: (factor, offset) of each level
TOMOGRAM_KEY = "opened as tomogram"  # metadata of an Image layer opened as a tomogram


def tomogram_layer_data(tomogram: Tomogram) -> tuple[np.ndarray, dict[str, Any], str]:
    """An Image layer tuple scaled to Angstrom, with the voxel size and path in its metadata;
    multiscale for a tomogram with levels (OME-Zarr)."""
    metadata = {
        "path": str(tomogram.path),
        "voxel_size_from_header": tomogram.voxel_size_from_header,
        "tomo_name": tomogram.name,
    }
    if not tomogram.levels:
        return image_layer_data(tomogram.data, tomogram.voxel_size, tomogram.name, metadata)
    # a multiscale layer, napari showing the level the zoom needs; contrast from the finest
    # level's central chunk (a coarser level, averaged, has less noise: a range from it would
    # saturate the full-resolution view)
    _, kwargs, kind = image_layer_data(
        central_block(tomogram.data), tomogram.voxel_size, tomogram.name, metadata
    )
    kwargs["multiscale"] = True
    kwargs["metadata"][LEVELS_KEY] = [(lv.factor, lv.offset) for lv in tomogram.levels]
    return [lv.data for lv in tomogram.levels], kwargs, kind


def image_layer_data(
    data: np.ndarray, voxel_size: float | None, name: str, metadata: dict[str, Any]
) -> tuple[np.ndarray, dict[str, Any], str]:
    """A grey Image layer tuple of a tomogram: scale = voxel size (1 if unknown), contrast from a
    sample."""
    scale = voxel_size or 1.0
    kwargs = {
        "name": name,
        "scale": (scale, scale, scale),
        "contrast_limits": contrast_limits(data),
        "colormap": "gray",
        "metadata": {"voxel_size": voxel_size, TOMOGRAM_KEY: True, **metadata},
    }
    return data, kwargs, "image"


def particles_layer_data(
    particles: pd.DataFrame,
    name: str,
    metadata: dict[str, Any] | None = None,
    colour_by: str | None = None,
    colour: str = DEFAULT_COLOUR,
) -> tuple[np.ndarray, dict[str, Any], str]:
    """A Points layer tuple: z, y, x voxels as data, other columns as features, outlines
    coloured by the ``colour_by`` column if given, else in ``colour``."""
    voxel_size = particles.attrs.get("voxel_size")
    scale = voxel_size or 1.0
    features = particles.drop(columns=list(AXES)).reset_index(drop=True)
    kwargs = {
        "name": name,
        "scale": (scale, scale, scale),
        "features": features,
        "size": POINT_SIZE_VOXELS,
        "face_color": "transparent",
        "border_color": colour_by or colour,
        "border_width": 0.2,
        "projection_mode": "rescale_spherical",
        "metadata": {"voxel_size": voxel_size, **_carried(particles.attrs), **(metadata or {})},
    }
    if colour_by is not None:
        kwargs["border_color_cycle"] = list(CATEGORY_COLOURS)
    # a copy napari may change in place (a dragged point), not pandas' read-only view
    data = np.array(particles[list(AXES)], dtype=float)
    if ANGSTROM_ORIGIN in particles.attrs:  # where a file's Angstrom put them, to follow them
        kwargs["metadata"][PLACED_KEY] = data.copy()
    return data, kwargs, "points"


def moved_with_voxel_size(layer: Any, ratio: float) -> tuple[np.ndarray, int]:
    """A particles layer's points after its tomogram's voxel size changed (``ratio``: old over
    new; see :func:`follow_voxel_size`), and how many stayed; the placements are updated."""
    data, layer.metadata[PLACED_KEY], stayed = follow_voxel_size(
        layer.data, layer.metadata[PLACED_KEY], layer.metadata[ANGSTROM_ORIGIN], ratio
    )
    return data, stayed


def points_to_particles(data: np.ndarray, attributes: dict[str, Any]) -> pd.DataFrame:
    """A particle table from a Points layer's data and attributes (as napari gives a writer)."""
    data = np.asarray(data, dtype=float)
    if data.ndim != 2 or data.shape[1] != 3:
        raise ValueError(
            f"particles need 3D points (z, y, x); this layer's points are {data.shape[-1]}D"
        )
    features = attributes.get("features")
    features = pd.DataFrame(features) if features is not None else pd.DataFrame()
    stale = [a for a in AXES if a in features]  # the points hold the positions
    features = features.drop(columns=stale)
    particles = pd.concat(
        [pd.DataFrame(data, columns=list(AXES)), features.reset_index(drop=True)], axis=1
    )
    metadata = attributes.get("metadata") or {}
    tomo_name = metadata.get("tomo_name")
    if tomo_name and TOMO_NAME not in particles:
        particles.insert(0, TOMO_NAME, tomo_name)
    elif tomo_name:  # points added by hand carry no features yet
        particles[TOMO_NAME] = particles[TOMO_NAME].fillna(tomo_name)
    voxel_size = metadata.get("voxel_size")
    if voxel_size is None:
        scale = np.asarray(attributes.get("scale", (1.0, 1.0, 1.0)), dtype=float)
        if not np.allclose(scale, 1.0):
            voxel_size = float(scale[-1])
    if voxel_size is not None:
        particles.attrs["voxel_size"] = float(voxel_size)
    particles.attrs |= _carried(metadata)
    return particles


def _carried(attrs: dict[str, Any]) -> dict[str, Any]:
    """What a particle table's source file carries for writing it back (a STAR file's other
    blocks, the binning of its pixels, where its Angstrom count from), between the table's
    attrs and its layer's metadata."""
    kept = (STAR_BLOCKS, COORDINATE_BINNING, ANGSTROM_ORIGIN)
    return {key: attrs[key] for key in kept if key in attrs}
