"""The Project dock widget: open a project of many tomograms, list them with their particles
(and how many are selected), and show one of them; only the shown tomogram is held."""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    Table,
)
from napari.layers import Image, Points

from napari_affinity_vae.errors import AffinityVAEError
from napari_affinity_vae.io.projects import Project, check_sources, open_project
from napari_affinity_vae.io.projects.copick import PickSetChoice
from napari_affinity_vae.io.projects.project import pick_set_label
from napari_affinity_vae.layers import tomogram_layer_data
from napari_affinity_vae.schema import TOMO_NAME, tomogram_codes
from napari_affinity_vae.text import count, sentence
from napari_affinity_vae.widgets.dialogs import confirm, scrolling, voxel_size_box, wrapping
from napari_affinity_vae.widgets.notify import errors_as_notifications, warnings_as_notifications
from napari_affinity_vae.widgets.viewer_session import fit_view, is_tomogram, session_for

PROJECT_KEY = "project tomogram"  # metadata of the Image layer showing a project's tomogram
COLUMNS = ("tomogram", "particles", "selected", "status")
FILE_PATTERNS = (
    "*.star *.parquet *.tbl *.doc *.vll *.json *.mrc *.rec *.map *.st *.csv *.coords *.mod"
)
EVERY_PICK_SET = "every pick set"


class ProjectWidget(Container):
    """Many tomograms and their particles; the scatter spans them all, the viewer shows one."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.session = session_for(viewer)
        self.files = FileEdit(label="Files", mode="rm", filter=f"Projects ({FILE_PATTERNS})")
        self.files.tooltip = (
            "RELION 5: tomograms.star and a particles STAR, or an optimisation set; a Dynamo "
            "table with its .doc or .vll; a copick configuration (.json); a STAR file naming "
            "tomograms (with the folder below)"
        )
        self.folder = FileEdit(label="Tomogram folder", mode="d")
        self.folder.tooltip = (
            "Tomograms matched to the particles' names by file name, or a CryoET Data Portal "
            "download alone"
        )
        self.binning = FloatSpinBox(label="Coordinate binning", min=0.01, max=64.0, value=1.0)
        self.binning.tooltip = "RELION 4 coordinates this many times finer than the tomograms"
        self.voxel_size = voxel_size_box()
        self.voxel_size.tooltip = (
            "0: from the files. Otherwise the tomograms' voxel size, for headers that have "
            "none or a wrong one (RELION 5's STAR files give theirs)"
        )
        self.skip_unusable = CheckBox(text="Skip rows with NaN or outside the tomogram")
        self.skip_unusable.tooltip = (
            "Leave those particles out, with a warning per tomogram saying how many; otherwise "
            "a tomogram with any of them is not embedded"
        )
        self.open_button = PushButton(text="Open project")
        self.summary = wrapping(Label(value="no project"))
        self.picks = ComboBox(label="Picks", choices=[EVERY_PICK_SET])
        self.picks.tooltip = "The pick set of a copick project or Portal download to explore"
        self.picks.visible = False
        self.shown = ComboBox(label="Show", choices=[])
        self.kind = ComboBox(label="Map", choices=[])
        self.kind.tooltip = (
            "Which reconstruction of the tomograms to view, embed and train on (denoised first)"
        )
        self.table = Table(value={c: [] for c in COLUMNS})
        self.table.read_only = True
        self._codes: tuple[np.ndarray, list[str]] = (np.zeros(0, np.int64), [])
        self._listed: tuple[list[str], str] = ([], "")  # the table's tomograms, the summary
        self._opened: list[Path] = []  # the paths of the open project
        self._pick_sets: dict[str, tuple[str, str, str]] = {}  # by their label
        self._picks_opened = EVERY_PICK_SET  # the pick set of the open project
        super().__init__()
        scrolling(
            self,
            [
                self.files,
                self.folder,
                self.binning,
                self.voxel_size,
                self.skip_unusable,
                self.open_button,
                self.summary,
                self.picks,
                self.shown,
                self.kind,
                self.table,
            ],
        )
        self.open_button.changed.connect(self._clicked)
        self.shown.changed.connect(self._chosen)
        viewer.layers.events.removed.connect(self._layer_removed)
        self.picks.changed.connect(self._pick_set_chosen)
        self.kind.changed.connect(self._map_chosen)
        self.kind.native.activated.connect(self._map_activated)
        self.table.native.cellDoubleClicked.connect(self._double_clicked)
        self.session.tomogram_requested.connect(self.show_tomogram)
        self.session.selection_changed.connect(self._count_selected)
        self.session.particles_changed.connect(self._list_tomograms)
        self.session.project_changed.connect(self._project_changed)
        self.session.tomogram_changed.connect(self._follow_tomogram)

    def _clicked(self) -> None:
        self.open_files()

    def open_files(
        self, paths: list[Path] | None = None, pick_sets: PickSetChoice | None = None
    ) -> Project | None:
        """Open the project the files (and folder) name, with ``pick_sets`` the chosen picks of a
        copick project or Portal download (default all), and show its first tomogram."""
        if paths is None:
            paths = whole_paths([str(p) for p in self.files.value or ()])
            folder = str(self.folder.value)
            if folder not in ("", "."):
                paths.append(Path(folder))
        ready = False
        with errors_as_notifications("Opening the project"):
            if not paths:
                raise AffinityVAEError("Choose the project's files first")
            check_sources(paths)  # a typo is said before any question
            ready = True
        if not ready:
            return None
        lost = self.session.project_losses()
        if lost:  # reopened (Skip rows ticked, another pick set) or another project
            question = (
                f"Opening a project discards the open project's {' and its '.join(lost)} "
                "(export them to keep them). Go on?"
            )
            if not confirm(self.native, "Discard the open project's work?", question):
                return None
        with errors_as_notifications("Opening the project"):
            voxel_size = self.voxel_size.value or None
            with warnings_as_notifications():
                project = open_project(
                    paths,
                    binning=self.binning.value,
                    voxel_size=voxel_size,
                    pick_sets=pick_sets,
                    skip_unusable=self.skip_unusable.value,
                )
            self._opened = paths
            self.session.set_project(project)
            self.summary.value = project.summary()
            self._list_pick_sets(project, pick_sets)
            for note in project.notes:
                napari.utils.notifications.show_info(sentence(note))
            names = list(project.tomograms)
            with self.shown.changed.blocked():
                self.shown.choices = names
            usable = [n for n in names if not project.tomograms[n].problem]
            first = next((n for n in usable if len(project.rows_of(n))), None)
            first = first or next(iter(usable), None)  # a project of tomograms alone
            if first is not None:
                self.show_tomogram(first)
            elif names:  # none opens: none is shown, and the user is told why
                with self.shown.changed.blocked():
                    self.shown.native.setCurrentIndex(-1)
                problems = "; ".join(f"{n}: {project.tomograms[n].problem}" for n in names[:3])
                more = f"; and {len(names) - 3} more" if len(names) > 3 else ""
                napari.utils.notifications.show_warning(
                    f"No tomogram of the project can be shown ({problems}{more})"
                )
            return project
        return None

    def _list_pick_sets(self, project: Project, chosen: PickSetChoice | None) -> None:
        """Offer the project's pick sets (only a copick project or Portal download has them)."""
        self._pick_sets = {pick_set_label(key): key for key in project.pick_sets}
        current = EVERY_PICK_SET
        if chosen is not None and chosen.object_name is not None:
            current = pick_set_label((chosen.object_name, chosen.user, chosen.session))
        with self.picks.changed.blocked():
            self.picks.choices = [EVERY_PICK_SET, *self._pick_sets]
            self.picks.value = current if current in self.picks.choices else EVERY_PICK_SET
        self._picks_opened = self.picks.value
        self.picks.visible = bool(project.pick_sets) or chosen is not None

    def _pick_set_chosen(self, label: str) -> None:
        """Reopen the project with the chosen pick set as its particles; if it is not (the user
        keeps the embedding, or it fails), the box shows the pick set open again."""
        key = self._pick_sets.get(label)
        if self.open_files(self._opened, PickSetChoice(*key) if key else PickSetChoice()) is None:
            with self.picks.changed.blocked():
                self.picks.value = self._picks_opened

    def _follow_tomogram(self) -> None:
        """Show names the project's tomogram shown, also when it was opened elsewhere (the
        Tomogram dock): else choosing the one named before would change nothing."""
        tomogram, project = self.session.tomogram, self.session.project
        if tomogram is not None and project is not None and tomogram.name in project.tomograms:
            with self.shown.changed.blocked():
                self.shown.value = tomogram.name

    def _chosen(self, _value: object = None) -> None:
        if self.shown.value:
            self.show_tomogram(self.shown.value)

    def _map_chosen(self, kind: str | None) -> None:
        """View the map ``kind`` of the tomograms; Embed and training cut boxes from it too."""
        project = self.session.project
        if project is not None and kind and kind != project.map:
            self.session.choose_map(kind)
            shown = project.tomograms.get(self.shown.value)
            first = next(iter(shown.files), None) if shown else None
            embedded = project.embedded_map or first  # each tomogram's first: the one shown's
            if self.session.latent is not None and kind != embedded:
                napari.utils.notifications.show_info(
                    f"The embedding was cut from the {embedded or 'first'} maps: embed again to "
                    f"cut boxes from the {kind} maps"
                )
        self._chosen()

    def _map_activated(self, _index: int) -> None:
        """A map chosen in the box that the box already showed: a tomogram without the map
        chosen before shows its first, which can then be chosen for every tomogram."""
        project = self.session.project
        if project is not None and self.kind.value != project.map:
            self._map_chosen(self.kind.value)

    def _double_clicked(self, row: int, _column: int) -> None:
        self.show_tomogram(self.table.data[row][0])  # also the one shown, if it was closed

    def _layer_removed(self, _event: object = None) -> None:
        """The shown tomogram closed: none is shown, and choosing it again shows it."""
        if not any(PROJECT_KEY in x.metadata for x in self._viewer.layers):
            with self.shown.changed.blocked():
                self.shown.native.setCurrentIndex(-1)

    def show_tomogram(self, name: str) -> Image | None:
        """Show the project's tomogram ``name`` in place of the one shown before."""
        project = self.session.project
        if project is None or name not in project.tomograms:
            return None
        entry = project.tomograms[name]
        kind = project.map if project.map in entry.files else None  # else the first
        if lacking := entry.lacks(project.map):
            napari.utils.notifications.show_info(
                f"{name}: {lacking}; it is shown in its first and is not embedded or trained on"
            )
        with self.kind.changed.blocked():
            self.kind.choices = list(entry.files)
            if entry.files:
                self.kind.value = kind or next(iter(entry.files))
        with errors_as_notifications(f"Showing tomogram {name}"):
            tomogram = project.open(name, kind)
            data, kwargs, _ = tomogram_layer_data(tomogram)
            kwargs["metadata"][PROJECT_KEY] = name
            layers = self._viewer.layers
            old = [x for x in layers if PROJECT_KEY in x.metadata]
            for x in old:  # hidden first: else its switch to the new one fits the view
                x.visible = False
            layer = self._viewer.add_image(data, **kwargs)
            layers.move(layers.index(layer), self._place_for_tomogram(old))
            for x in old:
                layers.remove(x)
            layer.name = kwargs["name"]  # napari numbered it while the old one was there
            if not old or old[0].data.shape != tomogram.shape:  # keep the view of alike ones
                fit_view(self._viewer, [layer])  # not of other, hidden tomograms
            with self.shown.changed.blocked():
                self.shown.value = name
            return layer
        self._layer_removed()  # the one shown before, if any, stays the one named
        shown = [x.metadata[PROJECT_KEY] for x in self._viewer.layers if PROJECT_KEY in x.metadata]
        if shown:
            with self.shown.changed.blocked():
                self.shown.value = shown[0]
        return None

    def _place_for_tomogram(self, old: list) -> int:
        """Where a project tomogram's new layer goes: in the old one's place (else at the
        bottom) but above any tomogram opened alone, which would hide it; below the particles."""
        layers = self._viewer.layers
        alone = [
            i for i, x in enumerate(layers) if is_tomogram(x) and PROJECT_KEY not in x.metadata
        ]
        lowest = max(alone) + 1 if alone else 0
        place = max(layers.index(old[0]), lowest) if old else lowest
        points = [i for i, x in enumerate(layers) if isinstance(x, Points)]
        return min([place, *points])  # a copy opened again above them stays above

    def _project_changed(self) -> None:
        """A project left: nothing of it is listed any more."""
        if self.session.project is not None:
            return
        self.summary.value = "no project"
        for combo in (self.shown, self.kind):
            with combo.changed.blocked():
                combo.choices = []
        self.picks.visible = False

    def _list_tomograms(self) -> None:
        """The tomograms with their particles, selected particles and problems."""
        project = self.session.project
        if project is None:
            self.table.value = {c: [] for c in COLUMNS}
            return
        self._codes = tomogram_codes(self.session.particles[TOMO_NAME])
        counts = project.counts()
        self._listed = (list(counts.index), project.summary())
        selected = self._selected_counts()
        self.table.value = {
            "tomogram": list(counts.index),
            "particles": [int(n) for n in counts],
            "selected": [selected.get(name, 0) for name in counts.index],
            "status": [_status(project, name) for name in counts.index],
        }

    def _count_selected(self, _source: object = None) -> None:
        project = self.session.project
        if project is None:
            return
        selected = self._selected_counts()
        column = COLUMNS.index("selected")
        names, summary = self._listed
        for row, name in enumerate(names):
            self.table.native.item(row, column).setText(str(selected.get(name, 0)))
        total = len(self.session.selection)
        self.summary.value = f"{summary}; {count(total, 'particle')} selected"

    def _selected_counts(self) -> dict[str, int]:
        """Selected particles per tomogram (a count of codes: fast at a million particles)."""
        codes, names = self._codes
        counts = np.bincount(codes[self.session.selection], minlength=len(names))
        return dict(zip(names, counts.tolist(), strict=True))


def _status(project: Project, name: str) -> str:
    entry = project.tomograms.get(name)
    if entry is None:
        return "no tomogram of this name"
    return entry.problem or ", ".join(entry.files)


def whole_paths(parts: list[str]) -> list[Path]:
    """The files of a field of several, which magicgui splits at ", ": pieces of a path that
    holds ", " itself (``my project, v2/particles.star``) are joined again where that names a
    file or folder."""
    paths, start = [], 0
    while start < len(parts):
        end = next(
            (
                end
                for end in range(start + 1, len(parts) + 1)
                if Path(", ".join(parts[start:end])).exists()
            ),
            start + 1,
        )
        paths.append(Path(", ".join(parts[start:end])))
        start = end
    return paths
