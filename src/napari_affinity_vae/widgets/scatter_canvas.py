"""The latent scatter's vispy canvas: the points, a density image, the selection drawn over a
dimmed background, and the outline of a lasso or rectangle being drawn. It draws what it is
given and knows nothing of particles or sessions."""

from __future__ import annotations

import numpy as np
from vispy.scene import SceneCanvas, visuals
from vispy.scene.cameras import PanZoomCamera
from vispy.visuals.transforms import STTransform

BACKGROUND = "#262930"  # napari's dark theme
DENSITY_BINS = 256  # at most, along each axis
DIM_COLOUR = (0.15, 0.16, 0.19, 0.75)


class ScatterCanvas:
    """A pan-zoom view of 2D points with the visuals the scatter needs."""

    def __init__(self) -> None:
        self.canvas = SceneCanvas(keys=None, bgcolor=BACKGROUND, size=(360, 360))
        self.canvas.native.setMinimumSize(240, 160)  # a short screen keeps room for the steps
        self.view = self.canvas.central_widget.add_view()
        self.view.camera = PanZoomCamera(aspect=None)
        scene = self.view.scene
        self.points = visuals.Markers(parent=scene)
        self.heat = visuals.Image(np.zeros((1, 1), np.float32), cmap="viridis", parent=scene)
        self.dim = visuals.Rectangle(center=(0, 0), width=1, height=1, parent=scene)
        self.dim.color = DIM_COLOUR
        self.selected = visuals.Markers(parent=scene)
        self.outline = visuals.Line(color="white", width=1.5, parent=scene)
        for order, visual in enumerate((self.heat, self.points, self.dim, self.selected)):
            visual.order = order
            visual.set_gl_state("translucent", depth_test=False)
        self.outline.order = 10
        for visual in (self.heat, self.dim, self.selected, self.outline):
            visual.visible = False

    # -- coordinates ----------------------------------------------------------------------------
    def to_data(self, pos: tuple[float, float]) -> np.ndarray:
        """A canvas position (pixels) in data units."""
        return self.canvas.scene.node_transform(self.view.scene).map(pos)[:2]

    def pixel(self) -> float:
        """The width of one screen pixel in data units."""
        return float(self.view.camera.rect.width) / max(1, self.canvas.size[0])

    # -- drawing --------------------------------------------------------------------------------
    def show_points(self, xy: np.ndarray, fit: bool = True) -> None:
        """New points: the view fits them (with ``fit``) and the density image is computed (a
        few points per bin, so that few points are seen as well as a million)."""
        xy, _ = _placed(xy)
        if not len(xy):
            return
        centre, span = _extent(xy)
        if fit:
            self.view.camera.rect = (*(centre - 0.55 * span), *(1.1 * span))
        self.dim.center = tuple(centre)
        self.dim.width, self.dim.height = span * 100
        bins = int(np.clip(np.sqrt(len(xy)) / 2, 8, DENSITY_BINS))
        edges = np.column_stack([centre - span / 2, centre + span / 2])
        counts, xs, ys = np.histogram2d(xy[:, 0], xy[:, 1], bins=bins, range=edges)
        density = np.log1p(counts.T).astype(np.float32)
        self.heat.set_data(density)
        self.heat.clim = (0.0, max(float(density.max()), 1e-6))
        self.heat.transform = STTransform(
            scale=(xs[1] - xs[0], ys[1] - ys[0]), translate=(xs[0], ys[0])
        )

    def colour_points(self, xy: np.ndarray, colours: np.ndarray) -> None:
        xy, colours = _placed(xy, colours)
        size = 3 if len(xy) > 50_000 else 6
        self.points.set_data(xy.astype(np.float32), face_color=colours, edge_width=0, size=size)

    def show_view(self, has_points: bool, density: bool) -> None:
        """The points, or their density, or nothing."""
        self.heat.visible = has_points and density
        self.points.visible = has_points and not density
        self.canvas.update()

    def show_selection(self, xy: np.ndarray, colours: np.ndarray | str) -> None:
        """Draw ``xy`` selected, over the other points dimmed (none: nothing dimmed)."""
        xy, colours = _placed(xy, colours)
        self.dim.visible = self.selected.visible = len(xy) > 0
        if len(xy):
            self.selected.set_data(
                xy.astype(np.float32),
                face_color=colours,
                edge_color="white",
                edge_width=1.0,
                size=9 if len(xy) < 10_000 else 5,
            )
        self.canvas.update()

    def show_outline(self, shape: np.ndarray | None) -> None:
        """The closed outline of a lasso or rectangle being drawn, or none."""
        if shape is not None:
            self.outline.set_data(shape.astype(np.float32))
        self.outline.visible = shape is not None
        self.canvas.update()


def _placed(xy: np.ndarray, colours: np.ndarray | str | None = None) -> tuple:
    """The points that have a place (particles not embedded have none: NaN) and their colours."""
    placed = np.isfinite(xy).all(axis=1)
    if placed.all():
        return xy, colours
    if isinstance(colours, np.ndarray):
        colours = colours[placed]
    return xy[placed], colours


def _extent(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The centre and span of points along x and y; an axis along which they barely differ
    (two particles laid out by PCA: the second axis is rounding noise) spans as the other
    does, or 1 if neither differs."""
    low, high = xy.min(axis=0), xy.max(axis=0)
    span = high - low
    widest = float(span.max())
    scale = max(widest, float(np.abs(xy).max()))
    flat = span <= 1e-6 * scale
    span = np.where(flat, widest if widest > 1e-6 * scale else 1.0, span)
    return (low + high) / 2, span
