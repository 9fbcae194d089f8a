"""One :class:`~napari_affinity_vae.session.Session` per napari viewer, shared by its dock widgets,
and the tomogram a layer holds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from weakref import WeakKeyDictionary

import napari
import numpy as np
from napari.layers import Image, Points

from napari_affinity_vae.io.tomogram import Level, Tomogram
from napari_affinity_vae.layers import LEVELS_KEY, TOMOGRAM_KEY
from napari_affinity_vae.session import Session
from napari_affinity_vae.widgets.highlight import ROLE

DECODED_KEY = "decoded by"  # metadata of volumes (and splats) the model made, valued with it
OF_TOMOGRAM = "of tomogram"  # a particles layer's metadata: its tomogram (tomogram_identity)
SCORES_KEY = "template scores of"  # metadata of template-matching score maps: the tomogram
TABLE_ROWS = "table rows"  # metadata of a project tomogram's particles: their rows in the table
HIDDEN_FOR = "hidden for another tomogram"  # metadata of layers focus_on hid, to show again

_SESSIONS: WeakKeyDictionary[napari.Viewer, Session] = WeakKeyDictionary()
_GUESSED: WeakKeyDictionary[Session, Tomogram] = WeakKeyDictionary()  # not chosen in a dock


def session_for(viewer: napari.Viewer) -> Session:
    """The session of ``viewer`` (plugin widgets receive a proxy of it; the session is keyed by
    the viewer itself), created on first use."""
    viewer = getattr(viewer, "__wrapped__", viewer)
    if viewer not in _SESSIONS:
        _SESSIONS[viewer] = Session()
    return _SESSIONS[viewer]


def current_tomogram(viewer: napari.Viewer) -> Tomogram | None:
    """The tomogram particles belong to: the one chosen in the Tomogram dock while a layer
    shows it, else the newest tomogram layer's (never a volume the model decoded), or None."""
    session = session_for(viewer)
    images = [layer for layer in viewer.layers if is_tomogram(layer)]
    shown = [tomogram_from_layer(layer) for layer in images]
    chosen = session.tomogram
    by_dock = chosen is not None and chosen is not _GUESSED.get(session)
    if by_dock and any(same_tomogram(chosen, tomogram) for tomogram in shown):
        return chosen
    opened = [t for t, layer in zip(shown, images, strict=True) if opened_as_tomogram(layer)]
    newest = (opened or shown or [None])[-1]
    if newest is None or chosen is None or not same_tomogram(chosen, newest):
        session.set_tomogram(newest)
        if newest is not None:
            _GUESSED[session] = newest
    return session.tomogram


def tomogram_from_layer(layer: Image) -> Tomogram:
    """The tomogram an Image layer shows: its data (memory-mapped if opened from a file), its
    voxel size and, for the name particles carry, its file or layer name."""
    path = layer.metadata.get("path")
    levels = _levels(layer) if layer.multiscale else ()
    return Tomogram(
        path=Path(path) if path else Path(layer.name),
        data=levels[0].data if levels else layer.data,
        voxel_size=layer.metadata.get("voxel_size"),
        voxel_size_from_header=bool(layer.metadata.get("voxel_size_from_header")),
        tomo_name=layer.metadata.get("tomo_name"),
        levels=levels,
    )


def _levels(layer: Image) -> tuple[Level, ...]:
    """A multiscale layer's levels: as the file described them, or for a layer another reader
    made, by their shapes (each voxel the mean of the finer ones it covers)."""
    arrays = list(layer.data)
    described = layer.metadata.get(LEVELS_KEY)
    if described is None:
        factors = [arrays[0].shape[-1] / array.shape[-1] for array in arrays]
        described = [(f, ((f - 1) / 2,) * 3) for f in factors]
    pairs = zip(arrays, described, strict=True)
    return tuple(Level(array, float(f), tuple(offset)) for array, (f, offset) in pairs)


def same_tomogram(first: Tomogram, second: Tomogram) -> bool:
    """Whether two tomograms are the same data: the same file (or layer) and shape."""
    return tomogram_identity(first) == tomogram_identity(second)


def tomogram_identity(tomogram: Tomogram) -> str:
    """What tells a tomogram from another of the same name (``TS_01/tomogram.mrc`` and
    ``TS_02/tomogram.mrc``): its file (or layer) and shape."""
    return f"{tomogram.path.resolve()} {tomogram.shape}"


def is_tomogram(layer: object) -> bool:
    """A 3D grey Image layer that is neither a volume the model decoded nor a score map."""
    return (
        isinstance(layer, Image)
        and layer.ndim == 3
        and not layer.rgb
        and DECODED_KEY not in layer.metadata
        and SCORES_KEY not in layer.metadata
    )


def focus_on(viewer: napari.Viewer, tomogram: Tomogram) -> None:
    """Show ``tomogram`` alone: the shown tomogram images, particles and score maps of other
    tomograms are hidden (else another's picks lie over it, looking like its own, and a tomogram
    opened before it covers it), and its own that this hid are shown again. Where that hides
    or shows any, the view is fitted to the tomogram (another's size no longer counts: a small
    one opened after a large one sat in a corner). Nothing is hidden in napari's grid mode,
    where layers sit side by side."""
    if viewer.grid.enabled:
        return
    switched, own = False, []
    for layer in list(viewer.layers):
        owner = of_tomogram(layer, tomogram)
        if owner is None:
            continue
        if owner:
            own.append(layer)
            if layer.metadata.pop(HIDDEN_FOR, False):
                layer.visible = switched = True
        elif layer.visible:
            layer.visible, switched = False, True
            layer.metadata[HIDDEN_FOR] = True
    _images_below_points(viewer, own)
    if switched and own:
        fit_view(viewer, [x for x in own if x.visible] or own)


def _images_below_points(viewer: napari.Viewer, own: list) -> None:
    """Move a tomogram's shown images below the particles shown (its own, a project's), which
    they would hide (a copy of a project's tomogram opened again above them)."""
    layers = viewer.layers
    for image in [x for x in own if is_tomogram(x) and x.visible]:
        points = [i for i, x in enumerate(layers) if isinstance(x, Points) and x.visible]
        if points and layers.index(image) > min(points):
            layers.move(layers.index(image), min(points))


def fit_view(viewer: napari.Viewer, layers: list) -> None:
    """Fit the view to ``layers``, not to all (hidden ones count in napari's extent); napari
    before 0.9 fits it to all."""
    try:
        viewer.fit_to_view(layers=layers)
    except TypeError:  # no ``layers`` before napari 0.9
        viewer.reset_view()


def of_tomogram(layer: object, tomogram: Tomogram) -> bool | None:
    """Whether ``layer`` is of ``tomogram``; None for a layer of no tomogram (a decoded volume,
    a highlight) or one that follows the tomogram shown (an open project's particles)."""
    name, identity = tomogram.name, tomogram_identity(tomogram)
    metadata = getattr(layer, "metadata", {})
    if is_tomogram(layer):
        return tomogram_identity(tomogram_from_layer(layer)) == identity
    if TABLE_ROWS in metadata or ROLE in metadata:
        return None
    if OF_TOMOGRAM in metadata:  # two tomograms may share a name
        return metadata[OF_TOMOGRAM] == identity
    if SCORES_KEY in metadata:
        return metadata[SCORES_KEY] == name
    return metadata["tomo_name"] == name if "tomo_name" in metadata else None


def opened_as_tomogram(layer: object) -> bool:
    """A tomogram layer the user opened as one (the reader, the Tomogram or Project dock, the
    sample), not any 3D image dropped in (a reference map to compare with, say)."""
    return is_tomogram(layer) and bool(layer.metadata.get(TOMOGRAM_KEY))


@contextlib.contextmanager
def active_layer_kept(viewer: napari.Viewer) -> Iterator[None]:
    """Add layers in the block without making them napari's active layer (whose controls show)."""
    active = viewer.layers.selection.active
    yield
    if active is not None:
        viewer.layers.selection.active = active


def camera_of(viewer: napari.Viewer) -> object:
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def view_centre(viewer: napari.Viewer) -> np.ndarray:
    """The (z, y, x) point in Angstrom the viewer looks at: its planes and its camera centre."""
    dims = viewer.dims
    offset = dims.ndim - 3  # z, y, x are the last world axes (a traversal stack adds one)
    here = np.asarray(dims.point[offset:], dtype=float)
    shown = [axis - offset for axis in dims.displayed if axis >= offset]
    here[shown] = np.asarray(camera_of(viewer).center)[-len(shown) :]
    return here


def centre_on(viewer: napari.Viewer, world: np.ndarray) -> None:
    """Move the viewer's planes and camera to a (z, y, x) point in Angstrom."""
    dims = viewer.dims
    offset = dims.ndim - 3
    for axis, value in enumerate(world):
        dims.set_point(axis + offset, float(value))
    shown = [axis - offset for axis in dims.displayed if axis >= offset]
    camera_of(viewer).center = tuple(float(v) for v in np.asarray(world)[shown])
