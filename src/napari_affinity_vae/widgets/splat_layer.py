"""A splat model's Gaussians as a napari Points layer lying on the volume decoded with them: one
point per splat, two standard deviations across, its opacity the square of its weight relative
to the heaviest splat's, so that the many faint, broad splats a model lays over the box as a
background fade and the molecule's own stand out."""

from __future__ import annotations

from collections.abc import Sequence

import napari
import numpy as np
from napari.layers import Points

from napari_affinity_vae.model.inference import Splats
from napari_affinity_vae.widgets.viewer_session import active_layer_kept

SPLAT_COLOUR = (0.35, 0.9, 1.0)  # cyan, apart from the volume's magma
DIAMETER_SDS = 2.0  # a point's diameter in the splat's standard deviations


def splats_name(volume_name: str) -> str:
    """The Points layer of the splats of the volume layer ``volume_name``."""
    return f"{volume_name} splats"


def splat_points(
    splats: Splats, voxel_size: float, box: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point coordinates in voxels (``voxel_size`` Angstrom) of the ``box``-voxel volume decoded
    with ``splats``, a leading step for several volumes; diameters in the same voxels; RGBA
    colours whose alpha is :func:`opacity`."""
    n, k = splats.weights.shape
    coordinates = (splats.centres / voxel_size + box // 2).reshape(n * k, 3)
    if n > 1:
        coordinates = np.column_stack([np.repeat(np.arange(n), k), coordinates])
    sizes = DIAMETER_SDS * splats.widths.ravel() / voxel_size
    alpha = opacity(splats.weights).ravel()
    colours = np.column_stack([np.tile(SPLAT_COLOUR, (n * k, 1)), alpha])
    return coordinates, sizes, colours


def opacity(weights: np.ndarray) -> np.ndarray:
    """Each splat's opacity: (weight / the heaviest weight of its volume) squared."""
    heaviest = weights.max(axis=-1, keepdims=True)
    return (weights / np.where(heaviest > 0, heaviest, 1)) ** 2


def show_splats(
    viewer: napari.Viewer,
    name: str,
    splats: Splats,
    voxel_size: float,
    box: int,
    scale: Sequence[float],
    translate: Sequence[float],
    metadata: dict,
) -> Points:
    """Show ``splats`` as the Points layer ``name`` with the volume's ``scale`` and
    ``translate`` (a layer of that name is updated in place)."""
    data, sizes, colours = splat_points(splats, voxel_size, box)
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data, layer.scale, layer.translate = data, scale, translate
        layer.metadata.update(metadata)
    else:
        with active_layer_kept(viewer):
            layer = viewer.add_points(
                data,
                name=name,
                scale=scale,
                translate=translate,
                border_width=0,
                shading="spherical",
                metadata=metadata,
            )
    layer.size, layer.face_color = sizes, colours
    return layer
