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
    which looks the same in the plane and the volume view (napari ignores per-point ``shown``
    in 3D)."""
    opacity = DIMMED_OPACITY if len(rows) else 1.0
    if particles.opacity != opacity:  # napari redraws the 1e6-point thumbnail on every set
        particles.opacity = opacity
    name = f"{particles.name} (selected)"
    layer = next((x for x in viewer.layers if is_highlight(x) and x.name == name), None)
    rows = np.asarray(rows, dtype=np.int64)
    if layer is None and not len(rows):
        return None
    if layer is not None:
        layer.metadata[ROWS] = rows
        layer.visible = len(rows) > 0
        if not len(rows):
            return layer
    data, size = _selected_points(
        particles, rows, _capacity(len(layer.data) if layer else 0, len(rows))
    )
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
    if not np.array_equal(layer.scale, particles.scale):
        layer.scale = particles.scale
    layer.refresh()
    return layer


def forget_selection(viewer: napari.Viewer, particles: Points) -> None:
    """``particles`` no longer explored: their highlight layer goes and they are not dimmed."""
    for layer in [x for x in viewer.layers if is_highlight(x)]:
        if layer.metadata[ROLE] == particles.name:
            viewer.layers.remove(layer)
    if particles.opacity != 1.0:
        particles.opacity = 1.0


def remove_orphans(viewer: napari.Viewer) -> None:
    """Remove highlight layers whose particles layer is gone."""
    names = {x.name for x in viewer.layers if isinstance(x, Points) and not is_highlight(x)}
    for layer in [x for x in viewer.layers if is_highlight(x)]:
        if layer.metadata[ROLE] not in names:
            viewer.layers.remove(layer)


def _capacity(held: int, selected: int) -> int:
    """How many points the highlight layer should hold for ``selected``: what it holds while
    that is enough and not over three times too many, else half as many again as selected, so
    that selections of similar size neither grow nor shrink it."""
    if selected <= held <= 3 * selected:
        return held
    return selected + selected // 2


def _selected_points(
    particles: Points, rows: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray | float]:
    """Positions and sizes of the selected points, padded to ``length`` with copies of the last
    one: drawn over it they change nothing, and the layer keeps its length (napari checks every
    point's symbol again whenever a layer grows: a tenth of a second per 100,000 points)."""
    sizes = np.asarray(particles.size, dtype=float)
    if sizes.min() == sizes.max():  # as usual: one size for all
        size: np.ndarray | float = float(sizes[0]) * SELECTED_SCALE
    else:
        size = sizes[rows] * SELECTED_SCALE
    data = np.asarray(particles.data)[rows]
    pad = length - len(rows)
    if pad > 0:
        data = np.concatenate([data, np.repeat(data[-1:], pad, axis=0)])
        if isinstance(size, np.ndarray):
            size = np.concatenate([size, np.repeat(size[-1:], pad)])
    return data, size


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
