"""The selection shown in the viewer: selected particles drawn larger and bright in a layer of
their own above the particles, the other particles dimmed."""

from __future__ import annotations

import napari
import numpy as np
import pandas as pd
from napari.layers import Points

from napari_affinity_vae.colours import DEFAULT_COLOUR, colours_for

SELECTED_SCALE = 1.6  # selected points are this much larger than the particles
DIMMED_OPACITY = 0.5
HIGHLIGHT_COLOUR = "#ffffff"
ROLE = "selection of"  # metadata key marking a highlight layer, valued with the particles' name


def is_highlight(layer: object) -> bool:
    return isinstance(layer, Points) and ROLE in layer.metadata


def show_selection(viewer: napari.Viewer, particles: Points, rows: np.ndarray) -> Points | None:
    """Draw ``rows`` of ``particles`` highlighted; return the highlight layer (None if empty)."""
    name = f"{particles.name} (selected)"
    layer = next((x for x in viewer.layers if is_highlight(x) and x.name == name), None)
    particles.opacity = DIMMED_OPACITY if len(rows) else 1.0
    if not len(rows):
        if layer is not None:
            viewer.layers.remove(layer)
        return None
    data = particles.data[rows]
    features = pd.DataFrame({"row": rows})
    size = np.asarray(particles.size, dtype=float)[rows] * SELECTED_SCALE
    if layer is None:
        layer = viewer.add_points(
            data,
            name=name,
            scale=particles.scale,
            features=features,
            size=size,
            face_color="transparent",
            border_color=HIGHLIGHT_COLOUR,
            border_width=0.2,
            projection_mode="rescale_spherical",
            metadata={ROLE: particles.name},
        )
        viewer.layers.selection.active = particles  # keep the particles' tools in front
        return layer
    layer.data = data
    layer.features = features
    layer.size = size
    layer.border_color = HIGHLIGHT_COLOUR
    return layer


def colour_particles(particles: Points, column: str | None) -> None:
    """Outline the particles by a feature column (the scatter's colours), or in one colour."""
    if column is None or column not in particles.features or not len(particles.data):
        particles.border_color = DEFAULT_COLOUR
        return
    rgba, _ = colours_for(particles.features[column])
    particles.border_color = rgba
