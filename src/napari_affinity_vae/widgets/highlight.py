"""The selection shown in the viewer: selected particles drawn larger and bright in a layer of
their own above the particles, the other particles dimmed."""

from __future__ import annotations

import napari
import numpy as np
from napari.layers import Points

from napari_affinity_vae.colours import DEFAULT_COLOUR, colours_for

SELECTED_SCALE = 1.6  # selected points are this much larger than the particles
DIMMED_OPACITY = 0.7
HIGHLIGHT_COLOUR = "#ffffff"
ROLE = "selection of"  # metadata key marking a highlight layer, valued with the particles' name
ROWS = "rows"  # metadata key of a highlight layer: the particles' rows it shows
COLOUR_KEY = "colour"  # metadata key of a particles layer: its outline colour when not coloured


def is_highlight(layer: object) -> bool:
    return isinstance(layer, Points) and ROLE in layer.metadata


def show_selection(viewer: napari.Viewer, particles: Points, rows: np.ndarray) -> Points | None:
    """Draw ``rows`` of ``particles`` highlighted: a layer holding only the selected points,
    which looks the same in the plane and the volume view."""
    particles.opacity = DIMMED_OPACITY if len(rows) else 1.0
    name = f"{particles.name} (selected)"
    layer = next((x for x in viewer.layers if is_highlight(x) and x.name == name), None)
    if layer is None and not len(rows):
        return None
    rows = np.asarray(rows, dtype=np.int64)
    data = np.asarray(particles.data)[rows]
    size = np.asarray(particles.size, dtype=float)[rows] * SELECTED_SCALE
    if layer is None:
        layer = viewer.add_points(
            data,
            name=name,
            scale=particles.scale,
            size=size,
            face_color="transparent",
            border_color=HIGHLIGHT_COLOUR,
            border_width=0.2,
            projection_mode="rescale_spherical",
            metadata={ROLE: particles.name, ROWS: rows},
        )
        viewer.layers.selection.active = particles  # keep the particles' tools in front
        return layer
    with layer.events.blocker_all():
        layer.data = data
        layer.size = size
    layer.scale = particles.scale
    layer.metadata[ROWS] = rows
    layer.visible = len(rows) > 0
    layer.refresh()
    return layer


def highlighted_rows(layer: Points) -> np.ndarray:
    """The rows of the particles a highlight layer shows."""
    return np.asarray(layer.metadata.get(ROWS, []), dtype=np.int64)


def colour_particles(particles: Points, column: str | None) -> None:
    """Outline the particles by a feature column (the scatter's colours), or in their layer's
    own colour."""
    if column is None or column not in particles.features or not len(particles.data):
        particles.border_color = particles.metadata.get(COLOUR_KEY, DEFAULT_COLOUR)
        return
    rgba, _ = colours_for(particles.features[column])
    particles.border_color = rgba
