"""The selection shown in the viewer: selected particles drawn larger and bright in a layer of
their own above the particles, the other particles dimmed."""

from __future__ import annotations

import napari
import numpy as np
from napari.layers import Points

from napari_affinity_vae.colours import DEFAULT_COLOUR, colours_for

SELECTED_SCALE = 1.6  # selected points are this much larger than the particles
DIMMED_OPACITY = 0.5
HIGHLIGHT_COLOUR = "#ffffff"
ROLE = "selection of"  # metadata key marking a highlight layer, valued with the particles' name


def is_highlight(layer: object) -> bool:
    return isinstance(layer, Points) and ROLE in layer.metadata


def show_selection(viewer: napari.Viewer, particles: Points, rows: np.ndarray) -> Points | None:
    """Draw ``rows`` of ``particles`` highlighted. The highlight layer holds every particle and
    shows only the selected ones, so a new selection costs the same however large it is."""
    particles.opacity = DIMMED_OPACITY if len(rows) else 1.0
    name = f"{particles.name} (selected)"
    layer = next((x for x in viewer.layers if is_highlight(x) and x.name == name), None)
    if layer is None and not len(rows):
        return None
    shown = np.zeros(len(particles.data), dtype=bool)
    shown[rows] = True
    if layer is None:
        layer = viewer.add_points(
            particles.data,
            name=name,
            scale=particles.scale,
            size=_selected_size(particles),
            shown=shown,
            face_color="transparent",
            border_color=HIGHLIGHT_COLOUR,
            border_width=0.2,
            projection_mode="rescale_spherical",
            metadata={ROLE: particles.name},
        )
        viewer.layers.selection.active = particles  # keep the particles' tools in front
        return layer
    if len(layer.data) != len(particles.data) or not np.array_equal(layer.data, particles.data):
        with layer.events.blocker_all():
            layer.data = particles.data  # the particles were edited since the last selection
            layer.size = _selected_size(particles)
    layer.shown = shown
    layer.visible = len(rows) > 0
    return layer


def _selected_size(particles: Points) -> np.ndarray:
    return np.asarray(particles.size, dtype=float) * SELECTED_SCALE


def highlighted_rows(layer: Points) -> np.ndarray:
    """The rows a highlight layer shows."""
    return np.flatnonzero(layer.shown)


def colour_particles(particles: Points, column: str | None) -> None:
    """Outline the particles by a feature column (the scatter's colours), or in one colour."""
    if column is None or column not in particles.features or not len(particles.data):
        particles.border_color = DEFAULT_COLOUR
        return
    rgba, _ = colours_for(particles.features[column])
    particles.border_color = rgba
