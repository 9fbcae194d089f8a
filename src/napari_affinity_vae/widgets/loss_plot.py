"""The Train dock's loss plot: one small panel per loss term, epochs along a shared axis, the
training value in the term's colour and the validation value in white. It draws the history it
is given and knows nothing of training."""

from __future__ import annotations

import numpy as np
from vispy.scene import AxisWidget, SceneCanvas, visuals

from napari_affinity_vae.widgets.scatter_canvas import BACKGROUND

TERMS = {  # history column: (panel title, colour)
    "reconstruction": ("recon.", "#1f77b4"),
    "kl": ("KL", "#ff7f0e"),
    "affinity": ("affinity", "#2ca02c"),
    "tc": ("TC", "#d62728"),
    "pose": ("pose", "#9467bd"),
}
VALIDATION_COLOUR = "#ffffff"


class LossPlot:
    """Panels stacked in a vispy canvas, one per term the history has that is not always 0 (the
    total correlation is estimated whether or not it is trained: its panel shows how entangled
    the latent dimensions are)."""

    def __init__(self) -> None:
        self.canvas = SceneCanvas(keys=None, bgcolor=BACKGROUND, size=(360, 300))
        self.canvas.native.setMinimumSize(240, 220)
        self.grid = self.canvas.central_widget.add_grid(spacing=2, margin=4)
        self.terms: list[str] = []
        self.panels: list = []  # the grid's widgets, removed when the terms change
        self.views: dict = {}
        self.lines: dict = {}
        self.points: dict = {}  # a dot per epoch: one epoch is no line
        self.epochs: AxisWidget | None = None  # under the panels, once laid out

    def show(self, history: list[dict]) -> None:
        """Draw the history: each term's training and validation values by epoch."""
        epochs = np.array([row["epoch"] for row in history], dtype=float)
        terms = [t for t in TERMS if np.any(_column(history, t))]
        if terms != self.terms:
            self._lay_out(terms)
        last = max(float(epochs.max(initial=1.0)), 2.0)
        for term in terms:
            drawn = []
            for key in (term, f"val_{term}"):
                series = _column(history, key)
                self.lines[key].visible = self.points[key].visible = series is not None
                if series is not None:
                    values = np.column_stack([epochs, series]).astype(np.float32)
                    self.lines[key].set_data(values)
                    colour = self.lines[key].color
                    self.points[key].set_data(values, size=4, edge_width=0, face_color=colour)
                    drawn.append(series)
            low, high = float(np.min(drawn)), float(np.max(drawn))
            pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
            self.views[term].camera.set_range(  # z given: no bounds asked of hidden dots
                x=(0.5, last + 0.5), y=(low - pad, high + pad), z=(-1.0, 1.0), margin=0
            )
        if self.epochs is not None:
            self.epochs.axis.domain = (0.5, last + 0.5)
        self.canvas.update()

    def _lay_out(self, terms: list[str]) -> None:
        """A panel (axis, view, two lines) per term, and the epoch axis under the last."""
        for widget in self.panels:
            self.grid.remove_widget(widget)
        self.terms, self.panels, self.views, self.lines, self.points = terms, [], {}, {}, {}
        for row, term in enumerate(terms):
            title, colour = TERMS[term]
            axis = AxisWidget(
                orientation="left", axis_label=title, axis_font_size=7, tick_font_size=6
            )
            axis.width_max = 60
            self.grid.add_widget(axis, row=row, col=0)
            view = self.grid.add_view(row=row, col=1, camera="panzoom", border_color="#555555")
            self.panels += [axis, view]
            view.camera.interactive = False
            axis.link_view(view)
            self.views[term] = view
            for key, colour_of, width in ((term, colour, 2), (f"val_{term}", VALIDATION_COLOUR, 1)):
                self.lines[key] = visuals.Line(color=colour_of, width=width, parent=view.scene)
                self.points[key] = visuals.Markers(parent=view.scene)
        epochs = AxisWidget(
            orientation="bottom", axis_label="epoch", axis_font_size=7, tick_font_size=6
        )
        epochs.height_max = 46
        self.grid.add_widget(epochs, row=len(terms), col=1)
        self.panels.append(epochs)
        self.epochs = epochs  # its range set with the views': linked, it kept the one it had
        # before the grid placed it until the range changed (one epoch: never)


def _column(history: list[dict], key: str) -> np.ndarray | None:
    """One column of the history, or None if an epoch lacks it."""
    if not history or any(key not in row for row in history):
        return None
    return np.array([row[key] for row in history], dtype=float)
