"""The Latent scatter dock widget: every particle a point of the 2D embedding on a vispy canvas,
coloured by a column, with lasso, rectangle and click selection linked to the viewer through the
session. Shift adds to the selection, Alt (or Ctrl) removes from it, Escape clears it."""

from __future__ import annotations

import napari
import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton, RadioButtons
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication, QComboBox, QLabel, QSizePolicy, QVBoxLayout, QWidget
from vispy.scene import SceneCanvas, visuals
from vispy.scene.cameras import PanZoomCamera
from vispy.visuals.transforms import STTransform

from napari_affinity_vae.analysis.selection import PlaneIndex
from napari_affinity_vae.colours import NOISE_LABEL, colours_for, is_categorical
from napari_affinity_vae.schema import (
    AXES,
    CLASS_NAME,
    CLUSTER,
    EMBEDDING,
    RECONSTRUCTION_ERROR,
    SCORE,
)
from napari_affinity_vae.text import count
from napari_affinity_vae.widgets.viewer_session import centre_on, session_for, view_centre

LASSO, RECTANGLE, CLICK, PAN = "Lasso", "Rectangle", "Click", "Pan"
DENSITY_ABOVE = 200_000  # points; more than this start in the density view
DENSITY_BINS = 256
CLICK_PIXELS = 8  # a click selects the nearest point within this many screen pixels
BACKGROUND = "#262930"  # napari's dark theme
LINK_STYLE = "color:{};text-decoration:none"
NOT_COLOURED = (*AXES, *EMBEDDING)


class LatentScatterWidget(QWidget):
    """The 2D latent space of the session's particles, linked both ways to the viewer."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self.session = session_for(viewer)
        self.index = PlaneIndex(np.zeros((0, 2)))
        self._colours = np.zeros((0, 4), dtype=np.float32)
        self._drawn: list[np.ndarray] = []
        self.highlighted = np.zeros(
            0, dtype=np.int64
        )  # the rows drawn as selected  # the lasso or rectangle being drawn, in data units
        self.colour_by = ComboBox(label="Colour by", choices=[CLUSTER], value=CLUSTER)
        self.mode = RadioButtons(
            label="Select",
            choices=[LASSO, RECTANGLE, CLICK, PAN],
            value=LASSO,
            orientation="horizontal",
        )
        self.density = CheckBox(text="Density view", value=False)
        self.go_button = PushButton(text="Go to selected")
        self.go_button.tooltip = "Centre the viewer on the selected particle nearest its view"
        self.summary = Label(value="Run Embed to see the latent space")
        controls = Container(
            widgets=[self.colour_by, self.mode, self.density, self.go_button, self.summary]
        )
        self.canvas = SceneCanvas(keys=None, bgcolor=BACKGROUND, size=(360, 360))
        self.canvas.native.setMinimumSize(240, 240)
        self.view = self.canvas.central_widget.add_view()
        self.view.camera = PanZoomCamera(aspect=None)
        scene = self.view.scene
        self.points = visuals.Markers(parent=scene)
        self.heat = visuals.Image(np.zeros((1, 1), np.float32), cmap="viridis", parent=scene)
        self.dim = visuals.Rectangle(center=(0, 0), width=1, height=1, parent=scene)
        self.dim.color = (0.15, 0.16, 0.19, 0.75)
        self.selected = visuals.Markers(parent=scene)
        self.outline = visuals.Line(color="white", width=1.5, parent=scene)
        for order, visual in enumerate((self.heat, self.points, self.dim, self.selected)):
            visual.order = order
            visual.set_gl_state("translucent", depth_test=False)
        self.outline.order = 10
        for visual in (self.heat, self.dim, self.selected, self.outline):
            visual.visible = False
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.legend.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.colour_by.native.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.colour_by.native.setMinimumContentsLength(12)
        self.legend.setToolTip("Click a category to select its particles (Shift adds)")
        self.legend.linkActivated.connect(self._legend_clicked)
        layout = QVBoxLayout(self)
        layout.addWidget(controls.native)
        layout.addWidget(self.canvas.native, stretch=1)
        layout.addWidget(self.legend)
        self.colour_by.changed.connect(self._recolour)
        self.mode.changed.connect(self._set_mode)
        self.density.changed.connect(self._show_density)
        self.go_button.changed.connect(self.go_to_selected)
        events = self.canvas.events
        events.mouse_press.connect(self._press)
        events.mouse_move.connect(self._move)
        events.mouse_release.connect(self._release)
        events.mouse_wheel.connect(self._wheel)
        events.key_press.connect(self._key)
        self.session.particles_changed.connect(self._redraw)
        self.session.embedding_changed.connect(self._redraw)
        self.session.selection_changed.connect(self._show_selection)
        self._set_mode(self.mode.value)
        self._redraw()

    # -- selection, as the mouse or a script drives it ------------------------------------------
    def select_lasso(self, vertices: np.ndarray, mode: str = "replace") -> None:
        """Select the particles inside a closed polygon of embedding coordinates."""
        rows = self.index.in_polygon(vertices, tolerance=self._pixel() / 2)
        self.session.select(rows, mode, source=self)

    def select_rectangle(
        self, corner: np.ndarray, opposite: np.ndarray, mode: str = "replace"
    ) -> None:
        rows = self.index.in_rectangle(np.asarray(corner), np.asarray(opposite))
        self.session.select(rows, mode, source=self)

    def select_at(self, point: np.ndarray, mode: str = "replace") -> int | None:
        """Select the particle nearest ``point`` within a few screen pixels; return its row."""
        row = self.index.nearest(np.asarray(point, dtype=float), CLICK_PIXELS * self._pixel())
        if row is None:
            if mode == "replace":
                self.session.clear_selection(source=self)
            return None
        self.session.select([row], mode, source=self)
        return row

    def select_category(self, column: str, label: str, mode: str = "replace") -> None:
        """Select the particles whose ``column`` reads ``label`` (as the legend shows it)."""
        values = self.session.particles[column]
        if label == NOISE_LABEL:
            rows = np.flatnonzero(pd.to_numeric(values, errors="coerce") < 0)
        else:
            rows = np.flatnonzero(values.astype(str).to_numpy() == label)
        self.session.select(rows, mode, source=self)

    def go_to_selected(self) -> int | None:
        """Centre the viewer on the selected particle nearest the current view; return its row."""
        rows = self.session.selection
        if not len(rows):
            napari.utils.notifications.show_info("Select particles first")
            return None
        voxel = self.session.particles.attrs.get("voxel_size") or 1.0
        world = self.session.particles.loc[rows, list(AXES)].to_numpy(dtype=float) * voxel
        here = view_centre(self._viewer)
        nearest = int(np.argmin(np.sum((world - here) ** 2, axis=1)))
        centre_on(self._viewer, world[nearest])
        return int(rows[nearest])

    # -- drawing ------------------------------------------------------------------------------
    def _redraw(self) -> None:
        xy = self.session.embedding
        table = self.session.particles
        self._update_colour_choices()
        if xy is None or not len(xy):
            self.index = PlaneIndex(np.zeros((0, 2)))
            self.points.visible = self.heat.visible = False
            self.summary.value = "Run Embed to see the latent space"
            self.legend.setText("")
            self._show_selection(None)
            self.canvas.update()
            return
        self.index = PlaneIndex(xy)
        with self.density.changed.blocked():
            self.density.value = len(xy) > DENSITY_ABOVE
        low, high = xy.min(axis=0), xy.max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        self.view.camera.rect = (*(low - 0.05 * span), *(1.1 * span))
        self.dim.center = tuple((low + high) / 2)
        self.dim.width, self.dim.height = span * 100
        bins = int(np.clip(np.sqrt(len(xy)) / 2, 8, DENSITY_BINS))  # a few points per bin
        counts, xs, ys = np.histogram2d(xy[:, 0], xy[:, 1], bins=bins)
        density = np.log1p(counts.T).astype(np.float32)
        self.heat.set_data(density)
        self.heat.clim = (0.0, max(float(density.max()), 1e-6))
        self.heat.transform = STTransform(
            scale=(xs[1] - xs[0], ys[1] - ys[0]), translate=(xs[0], ys[0])
        )
        self._recolour()
        self.summary.value = count(len(table), "particle")
        self._show_density(self.density.value)

    def _update_colour_choices(self) -> None:
        table = self.session.particles
        numeric_or_labels = [
            str(c) for c in table if c not in NOT_COLOURED and len(table) and table[c].notna().any()
        ]
        first = [
            c for c in (CLUSTER, CLASS_NAME, SCORE, RECONSTRUCTION_ERROR) if c in numeric_or_labels
        ]
        choices = first + [c for c in numeric_or_labels if c not in first] or [CLUSTER]
        current, before = self.colour_by.value, list(self.colour_by.choices)
        if CLUSTER in choices and CLUSTER not in before:
            current = CLUSTER  # clusters just arrived: show them
        with self.colour_by.changed.blocked():
            self.colour_by.choices = ()  # magicgui appends new choices after the old ones
            self.colour_by.choices = choices
            self.colour_by.value = current if current in choices else choices[0]

    def _recolour(self, _value: object = None) -> None:
        xy, table = self.session.embedding, self.session.particles
        if xy is None:
            return
        column = self.colour_by.value
        if column in table:
            self._colours, legend = colours_for(table[column])
        else:
            self._colours, legend = np.tile(np.float32([1, 0.82, 0.12, 1]), (len(xy), 1)), []
        size = 3 if len(xy) > 50_000 else 6
        self.points.set_data(
            xy.astype(np.float32), face_color=self._colours, edge_width=0, size=size
        )
        categorical = len(legend) and column in table and is_categorical(table[column])
        swatches = " &nbsp;".join(  # breaks between swatches, never inside one
            f'<a href="{label}" style="{LINK_STYLE.format(colour)}">&#9679;&nbsp;{label}</a>'
            if categorical
            else f'<span style="color:{colour}">&#9679;</span>&nbsp;{label}'
            for label, colour in legend
        )
        self.legend.setText(f"<b>{column}</b>: {swatches}" if legend else "")
        self._show_selection(None)

    def _show_density(self, on: bool) -> None:
        has_points = self.session.embedding is not None and len(self.index.xy) > 0
        self.heat.visible = has_points and on
        self.points.visible = has_points and not on
        self.canvas.update()

    def _show_selection(self, _source: object) -> None:
        rows = self.session.selection
        rows = rows[rows < len(self.index.xy)]
        self.highlighted = rows
        self.dim.visible = self.selected.visible = len(rows) > 0
        if len(rows):
            colours = self._colours[rows] if len(self._colours) == len(self.index.xy) else "white"
            self.selected.set_data(
                self.index.xy[rows].astype(np.float32),
                face_color=colours,
                edge_color="white",
                edge_width=1.0,
                size=9 if len(rows) < 10_000 else 5,
            )
        total = len(self.index.xy)
        if total:
            self.summary.value = f"{len(rows)} of {count(total, 'particle')} selected"
        self.canvas.update()

    # -- the mouse and keys -------------------------------------------------------------------
    def _set_mode(self, mode: str) -> None:
        self.view.camera.interactive = mode == PAN

    def _data(self, pos: tuple[float, float]) -> np.ndarray:
        return self.canvas.scene.node_transform(self.view.scene).map(pos)[:2]

    def _pixel(self) -> float:
        """The width of one screen pixel in embedding units."""
        return float(self.view.camera.rect.width) / max(1, self.canvas.size[0])

    @staticmethod
    def _selection_mode(event: object) -> str:
        names = {getattr(k, "name", str(k)) for k in getattr(event, "modifiers", ())}
        if "Shift" in names:
            return "add"
        if names & {"Alt", "Control"}:
            return "remove"
        return "replace"

    def _press(self, event: object) -> None:
        if self.mode.value == PAN or event.button != 1:
            return
        self._drawn = [self._data(event.pos)]

    def _move(self, event: object) -> None:
        if not self._drawn or self.mode.value not in (LASSO, RECTANGLE):
            return
        here = self._data(event.pos)
        if self.mode.value == LASSO:
            self._drawn.append(here)
            shape = np.array([*self._drawn, self._drawn[0]])
        else:
            (x0, y0), (x1, y1) = self._drawn[0], here
            self._drawn = [self._drawn[0], here]
            shape = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])
        self.outline.set_data(shape.astype(np.float32))
        self.outline.visible = True
        self.canvas.update()

    def _release(self, event: object) -> None:
        drawn, self._drawn = self._drawn, []
        self.outline.visible = False
        if not drawn:
            return
        mode = self._selection_mode(event)
        if self.mode.value == CLICK or len(drawn) < 2:
            self.select_at(drawn[0], mode)
        elif self.mode.value == LASSO:
            self.select_lasso(np.array(drawn), mode)
        else:
            self.select_rectangle(drawn[0], drawn[1], mode)

    def _wheel(self, event: object) -> None:
        if self.view.camera.interactive:
            return  # the camera zooms itself in Pan mode
        factor = (1 + self.view.camera.zoom_factor) ** (-event.delta[1] * 30)
        self.view.camera.zoom(factor, center=self._data(event.pos))

    def _legend_clicked(self, label: str) -> None:
        shift = QApplication.keyboardModifiers() & Qt.KeyboardModifier.ShiftModifier
        self.select_category(self.colour_by.value, label, "add" if shift else "replace")

    def _key(self, event: object) -> None:
        if getattr(event.key, "name", None) == "Escape":
            self.session.clear_selection(source=self)
