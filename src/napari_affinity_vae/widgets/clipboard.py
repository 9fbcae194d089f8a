"""Ctrl+C and Ctrl+V on a particles layer. napari's own paste fails on 3D points (0.9) and adds
what it pastes without a data event, so the table and a project never heard of it. Here a
paste is an addition like a click in Add mode: the copied points, put on the plane shown,
are hand picks (no features of the particles copied; a project's tomogram edge holds)."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import napari
import numpy as np
import pandas as pd
from app_model.types import KeyCode, KeyMod
from napari.layers import Points
from napari.utils.notifications import show_info

COPY, PASTE = KeyMod.CtrlCmd | KeyCode.KeyC, KeyMod.CtrlCmd | KeyCode.KeyV


@dataclass(frozen=True)
class _Copy:
    """Points copied, and the tomogram and voxel size they were copied at (a project shows
    each of its tomograms in one layer)."""

    points: np.ndarray
    tomogram: str | None
    scale: tuple[float, ...]


_copied: weakref.WeakKeyDictionary[Points, _Copy] = weakref.WeakKeyDictionary()


def bind_clipboard(viewer: napari.Viewer, layer: Points) -> None:
    """Ctrl+C copies ``layer``'s selected points, Ctrl+V adds them on the plane shown."""
    layer.bind_key(COPY, _copy, overwrite=True)
    layer.bind_key(PASTE, lambda points: _paste(viewer, points), overwrite=True)


def _copy(layer: Points) -> None:
    chosen = sorted(layer.selected_data)
    if not chosen:  # as napari's copy: nothing selected, nothing to paste
        _copied.pop(layer, None)
        return
    points = np.array(layer.data[chosen], dtype=float)
    _copied[layer] = _Copy(points, layer.metadata.get("tomo_name"), tuple(layer.scale))


def _paste(viewer: napari.Viewer, layer: Points) -> None:
    copy = _copied.get(layer)
    if copy is None:
        return
    tomogram = layer.metadata.get("tomo_name")
    if copy.tomogram != tomogram:
        show_info(f"Nothing pasted: the points were copied in {copy.tomogram}, not {tomogram}")
        return
    if copy.scale != tuple(layer.scale):
        show_info("Nothing pasted: the points were copied before the voxel size changed")
        return
    hidden = list(viewer.dims.not_displayed)
    if not hidden:
        show_info("Nothing pasted: Ctrl+V puts points on the plane shown; switch to 2D")
        return
    points = copy.points.copy()
    points[:, hidden] = np.asarray(layer.world_to_data(viewer.dims.point), dtype=float)[hidden]
    there = pd.MultiIndex.from_arrays(np.asarray(layer.data, dtype=float).T)
    new = ~pd.MultiIndex.from_arrays(points.T).isin(there)
    if not new.any():
        show_info("Nothing pasted: the points copied are on this plane already")
        return
    layer.add(points[new])
