"""The Tomogram dock widget: open a tomogram, set its voxel size, choose plane or volume view."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import napari
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    RadioButtons,
)
from napari.layers import Image
from napari.utils.notifications import show_warning
from qtpy.QtWidgets import QFileDialog

from napari_affinity_vae.errors import NonCubicVoxelsError
from napari_affinity_vae.io.compressed import COMPRESSED_SUFFIXES
from napari_affinity_vae.io.tomogram import TOMOGRAM_SUFFIXES, open_tomogram
from napari_affinity_vae.layers import tomogram_layer_data
from napari_affinity_vae.widgets.dialogs import (
    VOXEL_DECIMALS,
    ask_number,
    scrolling,
    stays_in_project,
    voxel_size_box,
)
from napari_affinity_vae.widgets.notify import errors_as_notifications, typed_path
from napari_affinity_vae.widgets.viewer_session import (
    fit_view,
    focus_on,
    is_tomogram,
    opened_as_tomogram,
    session_for,
    tomogram_from_layer,
)

PLANE, VOLUME = "Plane", "Volume"


class TomogramWidget(Container):
    """Choose a tomogram (a file or an open Image layer) and how to look at it."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.session = session_for(viewer)
        patterns = " ".join(
            f"*{s}{c}" for c in ("", *COMPRESSED_SUFFIXES) for s in TOMOGRAM_SUFFIXES
        )
        self.file = FileEdit(label="File", mode="r", filter=f"Tomograms ({patterns})")
        self.open_button = PushButton(text="Open")
        self.open_folder_button = PushButton(text="Open OME-Zarr folder...")
        self.open_folder_button.tooltip = "A .zarr tomogram (CryoET Data Portal, copick, ...)"
        self.layer = ComboBox(label="Tomogram", choices=self._image_layers, nullable=True)
        self._shown: Image | None = None  # the layer whose tomogram is explored
        self._opened: Image | None = None  # a layer just opened, to show without asking
        self.info = Label(label="Shape", value="no tomogram")
        self.voxel_size = voxel_size_box()
        self.voxel_size.native.setKeyboardTracking(False)  # typed: taken once, when finished
        self.rendering = RadioButtons(
            label="Rendering", choices=[PLANE, VOLUME], value=PLANE, orientation="horizontal"
        )
        self.slab = FloatSpinBox(label="Slab (Å)", min=0.0, max=10000.0, step=10.0, value=0.0)
        self.slab.tooltip = "Average this thickness along the viewing axis; 0 shows one plane"
        super().__init__()
        scrolling(
            self,
            [
                self.file,
                self.open_button,
                self.open_folder_button,
                self.layer,
                self.info,
                self.voxel_size,
                self.rendering,
                self.slab,
            ],
        )
        self.open_button.changed.connect(self.open_file)
        self.open_folder_button.changed.connect(self._choose_folder)
        self.layer.changed.connect(self._show_layer)
        self.voxel_size.changed.connect(self._set_voxel_size)
        self.rendering.changed.connect(self._set_rendering)
        self.slab.changed.connect(self._set_slab)
        viewer.layers.events.inserted.connect(self._layer_added)
        viewer.layers.events.removed.connect(self._refresh_layers)
        viewer.dims.events.ndisplay.connect(self._follow_ndisplay)
        viewer.dims.events.order.connect(self._follow_order)
        self._refresh_layers()

    def open_file(
        self, path: str | Path | None = None, voxel_size: float | None = None
    ) -> Image | None:
        """Open ``path`` (or the chosen file) as a new Image layer and select it.

        ``voxel_size`` (Angstrom) overrides the header's. A header without one asks for it, the
        Voxel size box's value filled in; Cancel leaves the file unopened (None).
        """
        with errors_as_notifications("Opening the tomogram"):
            if not isinstance(path, str | Path):
                path = typed_path(self.file.value, "of the tomogram to open")
            path = Path(path)
            if self._stays_in_project(path):
                return None
            try:
                tomogram = open_tomogram(path, voxel_size, require_voxel_size=False)
            except NonCubicVoxelsError as err:  # the user says which to use
                why = f"gives voxels of {err.sizes} Å (z, y, x), not cubic"
                voxel_size = self._ask_voxel_size(path, why)
                if voxel_size is None:
                    return None
                tomogram = open_tomogram(path, voxel_size)
            if tomogram.voxel_size is None:
                voxel_size = self._ask_voxel_size(path, "gives no voxel size")
                if voxel_size is None:
                    return None
                tomogram = replace(tomogram, voxel_size=voxel_size)
            data, kwargs, _ = tomogram_layer_data(tomogram)
            layer = self._viewer.add_image(data, **kwargs)
            self.layer.value = layer
            return layer
        return None

    def _stays_in_project(self, path: Path, doing: str = "Opening") -> bool:
        """Whether the user would rather keep the open project's embedding and hand edits than
        open (or show) ``path``, which is none of its tomograms (asked only when there are
        some)."""
        project = self.session.project
        if project is None or not self.session.project_losses():
            return False
        target = path.resolve()
        files = (f for entry in project.tomograms.values() for f in entry.files.values())
        if any(target == f.resolve() for f in files):
            return False
        return stays_in_project(self.native, self.session, f"{doing} {path.name}")

    def _choose_folder(self) -> None:
        """Ask for an OME-Zarr folder (a file dialog cannot choose one) and open it."""
        folder = QFileDialog.getExistingDirectory(
            self.native, "Open an OME-Zarr tomogram (a .zarr folder)", str(self.file.value)
        )
        if folder:
            self.file.value = folder
            self.open_file(folder)

    def _ask_voxel_size(self, path: Path, why: str) -> float | None:
        """The voxel size the user gives for ``path``, whose header ``why``; None if cancelled."""
        question = f"The header of {path.name} {why}.\nVoxel size (Å):"
        guess = self.voxel_size.value or 1.0
        return ask_number(
            self.native, "Voxel size", question, guess, 0.001, self.voxel_size.max, VOXEL_DECIMALS
        )

    @property
    def tomogram_layer(self) -> Image | None:
        return self.layer.value

    def _image_layers(self, _widget: ComboBox | None = None) -> list[Image]:
        return [layer for layer in self._viewer.layers if is_tomogram(layer)]

    def _layer_added(self, event: object) -> None:
        """Follow the newest tomogram: a layer opened as a tomogram is chosen (another 3D image
        is only offered, unless there is no tomogram yet)."""
        self._refresh_layers()
        layer = getattr(event, "value", None)
        if layer in self.layer.choices and opened_as_tomogram(layer):
            self._opened = layer  # shown unasked: Open has asked already, if it had to
            self.layer.value = layer

    def _refresh_layers(self, _event: object = None) -> None:
        """The tomogram layers offered; the chosen one stays chosen (also when renamed, which
        the list would otherwise take for a new one, showing it again and clearing the
        selection), else the newest opened as a tomogram is, or the newest 3D image."""
        current = self.layer.value
        with self.layer.changed.blocked():
            self.layer.reset_choices()
            if current is not None and current in self.layer.choices:
                self.layer.value = current
        layers = [x for x in self._image_layers() if opened_as_tomogram(x)] or self._image_layers()
        if self.layer.value is None and layers:
            self.layer.value = layers[-1]
        elif self.layer.value is not current:
            self._show_layer(self.layer.value)

    def _show_layer(self, layer: Image | None) -> None:
        shown, opened, self._opened = self._shown, self._opened, None
        other = layer not in (None, shown, opened) and shown in self.layer.choices
        if other and self._stays_in_project(tomogram_from_layer(layer).path, "Showing"):
            with self.layer.changed.blocked():  # chosen in the box: the project's stays
                self.layer.value = shown
            return
        self._shown = layer
        if layer is None:
            self.info.value = "no tomogram"
            with self.voxel_size.changed.blocked():  # not the closed one's
                self.voxel_size.value = 0.0
            self.session.set_tomogram(None)
            return
        tomogram = tomogram_from_layer(layer)
        z, y, x = tomogram.shape
        self.info.value = f"{z} x {y} x {x} voxels (z, y, x)"
        voxel_size = layer.metadata.get("voxel_size")
        if tomogram.levels:
            sizes = ", ".join(f"{(voxel_size or 1.0) * lv.factor:g}" for lv in tomogram.levels)
            self.info.value += f"; levels of {sizes} {'Å' if voxel_size else 'voxels'}"
        from_header = bool(layer.metadata.get("voxel_size_from_header", voxel_size))
        with self.voxel_size.changed.blocked():
            self.voxel_size.value = voxel_size or 0.0
        self.voxel_size.tooltip = (
            "From the file header: correct it here if the header is wrong (1 Å is often a "
            "placeholder)"
            if from_header
            else "The header has none: enter it here"
        )
        if self._viewer.dims.ndim == 3:
            self._viewer.dims.axis_labels = ("z", "y", "x")
        self.session.set_tomogram(tomogram)
        focus_on(self._viewer, tomogram)

    def _set_voxel_size(self, value: float) -> None:
        layer = self.tomogram_layer
        if layer is None:
            return
        if value <= 0:  # no voxel size: the one in use stays, and the field shows it
            kept = layer.metadata.get("voxel_size") or 0.0
            with self.voxel_size.changed.blocked():
                self.voxel_size.value = kept
            if kept:
                show_warning(f"The voxel size must be above 0 Å; {layer.name} stays at {kept:g} Å")
            return
        layer.metadata["voxel_size"] = float(value)
        layer.metadata["voxel_size_from_header"] = False
        layer.scale = (value, value, value)
        if self._viewer.dims.ndim == 3:
            self._viewer.dims.axis_labels = ("z", "y", "x")
        self.session.set_tomogram(tomogram_from_layer(layer))
        fit_view(self._viewer, [layer])  # not to other, hidden tomograms
        self._set_slab(self.slab.value)

    def _set_rendering(self, value: str) -> None:
        self._viewer.dims.ndisplay = 3 if value == VOLUME else 2
        self.slab.enabled = value == PLANE

    def _follow_ndisplay(self, _event: object = None) -> None:
        """napari's own 2D/3D button switched the view: Rendering and Slab follow it."""
        shown = VOLUME if self._viewer.dims.ndisplay == 3 else PLANE
        with self.rendering.changed.blocked():
            self.rendering.value = shown
        self.slab.enabled = shown == PLANE

    def _follow_order(self, _event: object = None) -> None:
        """napari's transpose and roll look along another axis: the slab follows it."""
        if self.slab.value:
            self._set_slab(self.slab.value)

    def _set_slab(self, thickness: float) -> None:
        """Average ``thickness`` Angstrom along the viewing axis (0 shows a single plane)."""
        layer = self.tomogram_layer
        if layer is None:
            return
        dims = self._viewer.dims
        hidden = set(dims.not_displayed)
        dims.thickness = tuple(
            thickness if axis in hidden else old for axis, old in enumerate(dims.thickness)
        )
        layer.projection_mode = "mean"
