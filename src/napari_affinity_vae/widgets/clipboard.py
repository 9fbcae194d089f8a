"""Ctrl+C and Ctrl+V on a particles layer. napari's own paste fails on 3D points (0.9) and adds
what it pastes without a data event, so the table and a project never heard of it. Here a
paste is an addition like a click in Add mode: the copied points, put on the plane shown,
are hand picks (no features of the particles copied; a project's tomogram edge holds)."""

from __future__ import annotations

import weakref

import napari
import numpy as np
from app_model.types import KeyCode, KeyMod
from napari.layers import Points

COPY, PASTE = KeyMod.CtrlCmd | KeyCode.KeyC, KeyMod.CtrlCmd | KeyCode.KeyV

_copied: weakref.WeakKeyDictionary[Points, np.ndarray] = weakref.WeakKeyDictionary()


def bind_clipboard(viewer: napari.Viewer, layer: Points) -> None:
    """Ctrl+C copies ``layer``'s selected points, Ctrl+V adds them on the plane shown (in 3D,
    where they were)."""
    layer.bind_key(COPY, lambda points: _copy(viewer, points), overwrite=True)
    layer.bind_key(PASTE, lambda points: _paste(viewer, points), overwrite=True)


def _copy(viewer: napari.Viewer, layer: Points) -> None:
    chosen = sorted(layer.selected_data)
    if chosen:
        _copied[layer] = np.array(layer.data[chosen], dtype=float)


def _paste(viewer: napari.Viewer, layer: Points) -> None:
    if layer not in _copied:
        return
    points = _copied[layer].copy()
    hidden = list(viewer.dims.not_displayed)
    points[:, hidden] = np.asarray(layer.world_to_data(viewer.dims.point), dtype=float)[hidden]
    layer.add(points)
