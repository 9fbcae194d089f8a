"""The Latent scatter dock widget: every particle a point of the 2D embedding on a vispy canvas,
coloured by a column, with lasso, rectangle and click selection linked to the viewer through the
session. Shift adds to the selection, Alt (or Ctrl) removes from it, Escape clears it."""

from __future__ import annotations

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    Label,
    LineEdit,
    PushButton,
    RadioButtons,
)
from qtpy.QtWidgets import QComboBox, QVBoxLayout, QWidget

from napari_affinity_vae.analysis.selection import PlaneIndex
from napari_affinity_vae.colours import (
    NOISE_LABEL,
    colours_for,
    has_missing_entry,
    is_categorical,
    is_missing,
)
from napari_affinity_vae.schema import (
    AXES,
    CLASS_NAME,
    CLUSTER,
    EMBEDDING,
    LABEL,
    RECONSTRUCTION_ERROR,
    SCORE,
    TOMO_NAME,
)
from napari_affinity_vae.text import count
from napari_affinity_vae.widgets.dialogs import confirm
from napari_affinity_vae.widgets.scatter_canvas import ScatterCanvas
from napari_affinity_vae.widgets.scatter_legend import Legend
from napari_affinity_vae.widgets.scatter_tool import LASSO, MODES, SelectionTool
from napari_affinity_vae.widgets.viewer_session import centre_on, session_for, view_centre

DENSITY_ABOVE = 200_000  # points; more than this start in the density view
UNLABELLED = "unlabelled"  # the legend's name for particles without a label
CLICK_PIXELS = 8  # a click selects the nearest point within this many screen pixels
NOT_COLOURED = ("z", "y", "x", *EMBEDDING)
FIRST_COLOURS = (CLUSTER, LABEL, CLASS_NAME, SCORE, RECONSTRUCTION_ERROR)
MISSING_WORDS = ("nan", "na", "n/a", "<na>", "none", "null")  # files read them as missing


class LatentScatterWidget(QWidget):
    """The 2D latent space of the session's particles, linked both ways to the viewer."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self.session = session_for(viewer)
        self.index = PlaneIndex(np.zeros((0, 2)))
        self._colours = np.zeros((0, 4), dtype=np.float32)
        self.highlighted = np.zeros(0, dtype=np.int64)  # the rows drawn as selected
        self.colour_by = ComboBox(label="Colour by", choices=[CLUSTER], value=CLUSTER)
        self.colour_by.native.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.colour_by.native.setMinimumContentsLength(12)
        self.mode = RadioButtons(
            label="Select", choices=list(MODES), value=LASSO, orientation="horizontal"
        )
        self.density = CheckBox(text="Density view", value=False)
        self.go_button = PushButton(text="Go to selected")
        self.go_button.tooltip = "Centre the viewer on the selected particle nearest its view"
        self.summary = Label(value="Run Embed to see the latent space")
        self.label_name = LineEdit(label="Label")
        self.label_name.native.setPlaceholderText("class name")
        self.label_name.tooltip = "The class the selected particles are (empty: unlabel them)"
        self.label_button = PushButton(text="Label selection")
        self.clusters_button = PushButton(text="Clusters as labels")
        self.clusters_button.tooltip = "Label every particle by its cluster (cluster0, ...)"
        labelling = Container(
            widgets=[self.label_name, self.label_button, self.clusters_button],
            layout="horizontal",
            labels=False,
        )
        viewing = Container(  # one row: a short screen keeps room for the steps above
            widgets=[self.density, self.go_button], layout="horizontal", labels=False
        )
        controls = Container(widgets=[self.colour_by, self.mode, viewing, labelling, self.summary])
        for nested in (viewing, labelling, controls):  # the dock's own margins are enough
            nested.margins = (0, 0, 0, 0)
        self.plot = ScatterCanvas()
        self.tool = SelectionTool(self.plot, self.mode.value)
        self.legend = Legend()
        layout = QVBoxLayout(self)
        layout.addWidget(controls.native)
        layout.addWidget(self.plot.canvas.native, stretch=1)
        layout.addWidget(self.legend)
        self.colour_by.changed.connect(self._recolour)
        self.mode.changed.connect(self.tool.set_mode)
        self.density.changed.connect(self._show_density)
        self.go_button.changed.connect(self.go_to_selected)
        self.label_button.changed.connect(self.label_selection)
        self.label_name.native.returnPressed.connect(self.label_selection)
        self.clusters_button.changed.connect(self.label_clusters)
        self.tool.lasso.connect(self.select_lasso)
        self.tool.rectangle.connect(self.select_rectangle)
        self.tool.point.connect(self._clicked)
        self.tool.cleared.connect(lambda: self.session.clear_selection(source=self))
        self.legend.clicked.connect(
            lambda label, shift: self.select_category(
                self.colour_by.value, label, "add" if shift else "replace"
            )
        )
        self.session.particles_changed.connect(self._redraw)
        self.session.embedding_changed.connect(self._redraw)
        self.session.selection_changed.connect(self._show_selection)
        self.session.labels_changed.connect(self._relabelled)
        self._redraw()

    # the canvas and its visuals, as scripts and tests reach them
    canvas = property(lambda self: self.plot.canvas)
    view = property(lambda self: self.plot.view)
    points = property(lambda self: self.plot.points)
    heat = property(lambda self: self.plot.heat)
    selected = property(lambda self: self.plot.selected)

    # -- selection, as the mouse or a script drives it ------------------------------------------
    def select_lasso(self, vertices: np.ndarray, mode: str = "replace") -> None:
        """Select the particles inside a closed polygon of embedding coordinates."""
        rows = self.index.in_polygon(vertices, tolerance=self.plot.pixel() / 2)
        self.session.select(rows, mode, source=self)

    def select_rectangle(
        self, corner: np.ndarray, opposite: np.ndarray, mode: str = "replace"
    ) -> None:
        rows = self.index.in_rectangle(np.asarray(corner), np.asarray(opposite))
        self.session.select(rows, mode, source=self)

    def select_at(self, point: np.ndarray, mode: str = "replace") -> int | None:
        """Select the particle nearest ``point`` within a few screen pixels; return its row."""
        row = self.index.nearest(np.asarray(point, dtype=float), CLICK_PIXELS * self.plot.pixel())
        if row is None:
            if mode == "replace":
                self.session.clear_selection(source=self)
            return None
        self.session.select([row], mode, source=self)
        return row

    def _clicked(self, point: np.ndarray, mode: str = "replace") -> None:
        """A click selects the nearest point; in a project, the viewer also goes to it."""
        row = self.select_at(point, mode)
        if row is not None and mode == "replace" and self.session.project is not None:
            self.go_to_selected()

    def select_category(self, column: str, label: str | None, mode: str = "replace") -> None:
        """Select the particles whose ``column`` reads ``label`` (as the legend shows it), or
        with ``label`` None those without a value (unlabelled; noise, a negative cluster)."""
        values = self.session.particles[column]
        if label is None:
            rows = np.flatnonzero(is_missing(values))
        else:
            rows = np.flatnonzero(values.astype(str).to_numpy() == label)
        self.session.select(rows, mode, source=self)

    # -- labels ---------------------------------------------------------------------------------
    def label_selection(self, _value: object = None) -> None:
        """Name the selected particles as the class typed in the Label field."""
        rows, name = self.session.selection, self.label_name.value.strip()
        if not len(rows):
            napari.utils.notifications.show_info("Select particles to label first")
            return
        if name.lower() in MISSING_WORDS:
            napari.utils.notifications.show_info(
                f"{name!r} is how STAR and CSV files write a missing value: a class of that name "
                "would be lost on export; choose another name"
            )
            return
        particles = self.session.particles
        had = int(particles[LABEL].iloc[rows].notna().sum()) if LABEL in particles else 0
        if not name and not had:
            napari.utils.notifications.show_info(
                f"None of the {count(len(rows), 'selected particle')} has a label to remove: "
                "type a class name in Label to label them"
            )
            return
        self.session.set_labels(rows, name)
        said = (
            f"{count(len(rows), 'particle')} labelled {name}"
            if name
            else f"{count(had, 'particle')} unlabelled"
        )
        napari.utils.notifications.show_info(said)

    def label_clusters(self, _value: object = None) -> None:
        """Label every particle by its cluster."""
        if CLUSTER not in self.session.particles:
            napari.utils.notifications.show_info("Cluster the particles first (Embed widget)")
            return
        if not self._may_replace_labels():
            return
        self.session.labels_from(CLUSTER)
        found = self.session.particles[LABEL].nunique()
        napari.utils.notifications.show_info(
            f"Every cluster labelled: {count(found, 'class', 'classes')}"
        )

    def _may_replace_labels(self) -> bool:
        """Whether labelling by cluster may replace the labels given otherwise (asked)."""
        particles = self.session.particles
        if LABEL not in particles:
            return True
        labels = particles[LABEL]
        by_cluster = self.session.labels_of(CLUSTER)
        replaced = labels.notna() & (labels != by_cluster)
        if not replaced.any():
            return True
        classes = list(dict.fromkeys(labels[replaced].astype(str)))
        named = ", ".join(classes[:4]) + (", ..." if len(classes) > 4 else "")
        question = (
            f"{count(int(replaced.sum()), 'particle')} labelled otherwise ({named}) would be "
            "labelled by their cluster instead (unlabelled where they have none). Replace "
            "their labels?"
        )
        return confirm(self, "Replace the labels?", question)

    def _relabelled(self) -> None:
        """Colour by the labels (while any particle has one)."""
        self._update_colour_choices()
        if LABEL in self.colour_by.choices and self.colour_by.value != LABEL:
            self.colour_by.value = LABEL  # recolours
        else:
            self._recolour()

    def go_to_selected(self) -> int | None:
        """Centre the viewer on the selected particle nearest the current view; return its row.
        In a project, a particle of the tomogram shown if any is selected, else the first
        selected, whose tomogram is shown first."""
        rows = self.session.selection
        if not len(rows):
            napari.utils.notifications.show_info("Select particles first")
            return None
        table = self.session.particles
        if self.session.project is not None:
            names = table[TOMO_NAME].iloc[rows].astype(str).to_numpy()  # not a million
            shown = self.session.tomogram.name if self.session.tomogram else None
            if shown not in names:
                self.session.request_tomogram(names[0])
                shown = self.session.tomogram.name if self.session.tomogram else None
            rows = rows[names == shown]
            if not len(rows):
                return None
        tomogram = self.session.tomogram
        voxel = (tomogram.voxel_size if tomogram else None) or table.attrs.get("voxel_size") or 1.0
        world = table.loc[rows, list(AXES)].to_numpy(dtype=float) * voxel
        here = view_centre(self._viewer)
        nearest = int(np.argmin(np.sum((world - here) ** 2, axis=1)))
        centre_on(self._viewer, world[nearest])
        return int(rows[nearest])

    # -- drawing ------------------------------------------------------------------------------
    def _redraw(self) -> None:
        xy = self.session.embedding
        self._update_colour_choices()
        if xy is None or not len(xy):
            self.index = PlaneIndex(np.zeros((0, 2)))
            self.summary.value = "Run Embed to see the latent space"
            self.legend.show_legend("", [], False)
            self._show_density(False)
            self._show_selection(None)
            return
        self.index = PlaneIndex(xy)
        if not self.session.by_hand:  # a point edited by hand keeps the view as it was
            with self.density.changed.blocked():
                self.density.value = len(xy) > DENSITY_ABOVE
        self.plot.show_points(xy, fit=not self.session.by_hand)
        self._recolour()
        self.summary.value = count(len(xy), "particle")
        self._show_density(self.density.value)

    def _update_colour_choices(self) -> None:
        table = self.session.particles
        numeric_or_labels = [
            str(c) for c in table if c not in NOT_COLOURED and len(table) and table[c].notna().any()
        ]
        first = [c for c in FIRST_COLOURS if c in numeric_or_labels]
        choices = first + [c for c in numeric_or_labels if c not in first] or [CLUSTER]
        current, before = self.colour_by.value, list(self.colour_by.choices)
        if CLUSTER in choices and CLUSTER not in before and current != LABEL:
            current = CLUSTER  # clusters just arrived: show them, but not over the user's labels
        with self.colour_by.changed.blocked():
            self.colour_by.choices = ()  # magicgui appends new choices after the old ones
            self.colour_by.choices = choices
            self.colour_by.value = current if current in choices else choices[0]

    def _recolour(self, _value: object = None) -> None:
        xy, table = self.session.embedding, self.session.particles
        if xy is None:
            return
        column = self.colour_by.value
        self.session.set_colour_by(column)  # the viewer's particles follow
        if column in table:
            missing = UNLABELLED if column == LABEL else NOISE_LABEL
            known = self.session.known_categories(column)
            self._colours, legend = colours_for(table[column], missing, known)
        else:
            self._colours, legend = np.tile(np.float32([1, 0.82, 0.12, 1]), (len(xy), 1)), []
        self.plot.colour_points(xy, self._colours)
        categorical = bool(legend) and column in table and is_categorical(table[column])
        self.legend.show_legend(
            column, legend, categorical, categorical and has_missing_entry(legend)
        )
        self._show_selection(None)

    def _show_density(self, on: bool) -> None:
        has_points = self.session.embedding is not None and len(self.index.xy) > 0
        self.plot.show_view(has_points, on)

    def _show_selection(self, _source: object) -> None:
        rows = self.session.selection
        rows = rows[rows < len(self.index.xy)]
        self.highlighted = rows
        same = len(self._colours) == len(self.index.xy)
        self.plot.show_selection(self.index.xy[rows], self._colours[rows] if same else "white")
        total = len(self.index.xy)
        if total:
            self.summary.value = f"{len(rows)} of {count(total, 'particle')} selected"
