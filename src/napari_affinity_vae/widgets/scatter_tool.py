"""The mouse on the latent scatter: a lasso, a rectangle or a click selects (Shift adds, Alt or
Ctrl removes), Pan drags the view, the wheel zooms in every mode, Escape clears. The tool draws
the outline on the canvas and reports each finished gesture; it selects nothing itself."""

from __future__ import annotations

import numpy as np
from psygnal import Signal

from napari_affinity_vae.widgets.scatter_canvas import ScatterCanvas

LASSO, RECTANGLE, CLICK, PAN = "Lasso", "Rectangle", "Click", "Pan"
MODES = (LASSO, RECTANGLE, CLICK, PAN)
CLICK_PIXELS = 4  # a press and release closer on screen is a click, however the hand shook


class SelectionTool:
    """Turns mouse gestures on a :class:`ScatterCanvas` into selection requests."""

    lasso = Signal(object, str)  # the polygon (n, 2) in data units, and the selection mode
    rectangle = Signal(object, object, str)  # two opposite corners, and the selection mode
    point = Signal(object, str)  # a clicked point, and the selection mode
    cleared = Signal()  # Escape

    def __init__(self, canvas: ScatterCanvas, mode: str = LASSO) -> None:
        self._canvas = canvas
        self._drawn: list[np.ndarray] = []  # the lasso or rectangle being drawn, in data units
        self._pressed = np.zeros(2)  # where on screen (pixels) the gesture began
        self.mode = mode
        events = canvas.canvas.events
        events.mouse_press.connect(self._press)
        events.mouse_move.connect(self._move)
        events.mouse_release.connect(self._release)
        events.mouse_wheel.connect(self._wheel)
        events.key_press.connect(self._key)
        self.set_mode(mode)

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self._canvas.view.camera.interactive = mode == PAN

    @staticmethod
    def selection_mode(event: object) -> str:
        """What a gesture does to the selection, from the keys held."""
        names = {getattr(k, "name", str(k)) for k in getattr(event, "modifiers", ())}
        if "Shift" in names:
            return "add"
        if names & {"Alt", "Control"}:
            return "remove"
        return "replace"

    def _press(self, event: object) -> None:
        if self.mode == PAN or event.button != 1:
            return
        self._drawn = [self._canvas.to_data(event.pos)]
        self._pressed = np.asarray(event.pos[:2], dtype=float)

    def _move(self, event: object) -> None:
        if not self._drawn or self.mode not in (LASSO, RECTANGLE):
            return
        here = self._canvas.to_data(event.pos)
        if self.mode == LASSO:
            self._drawn.append(here)
            shape = np.array([*self._drawn, self._drawn[0]])
        else:
            (x0, y0), (x1, y1) = self._drawn[0], here
            self._drawn = [self._drawn[0], here]
            shape = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])
        self._canvas.show_outline(shape)

    def _release(self, event: object) -> None:
        drawn, self._drawn = self._drawn, []
        self._canvas.show_outline(None)
        if not drawn:
            return
        mode = self.selection_mode(event)
        moved = np.hypot(*(np.asarray(event.pos[:2], dtype=float) - self._pressed))
        here = self._canvas.to_data(event.pos)  # the last move seen may be short of it
        if self.mode == CLICK or moved < CLICK_PIXELS:
            self.point.emit(drawn[0], mode)
        elif self.mode == LASSO:
            self.lasso.emit(np.array([*drawn, here]), mode)
        else:
            self.rectangle.emit(drawn[0], here, mode)

    def _wheel(self, event: object) -> None:
        camera = self._canvas.view.camera
        if camera.interactive:
            return  # the camera zooms itself in Pan mode
        factor = (1 + camera.zoom_factor) ** (-event.delta[1] * 30)
        camera.zoom(factor, center=self._canvas.to_data(event.pos))

    def _key(self, event: object) -> None:
        if getattr(event.key, "name", None) == "Escape":
            self.cleared.emit()
