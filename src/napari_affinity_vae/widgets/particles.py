"""The Particles dock widget: import a coordinate file, pick by hand or with the automatic picker,
and keep the session's particle table in step with the Points layer."""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
import pandas as pd
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    PushButton,
)
from napari.layers import Points
from napari.utils.notifications import show_info

from napari_affinity_vae import text
from napari_affinity_vae.colours import CATEGORY_COLOURS, colours_for
from napari_affinity_vae.errors import ParticleFileError
from napari_affinity_vae.io.particles import (
    PARTICLE_SUFFIXES,
    read_particles_for,
    tomogram_names,
)
from napari_affinity_vae.io.projects import Project
from napari_affinity_vae.io.star import plain_blocks
from napari_affinity_vae.io.tomogram import Tomogram
from napari_affinity_vae.io.validate import outside_rows
from napari_affinity_vae.layers import (
    PLACED_KEY,
    moved_with_voxel_size,
    particles_layer_data,
    points_to_particles,
)
from napari_affinity_vae.operations import hand_edits
from napari_affinity_vae.schema import (
    ANGSTROM_ORIGIN,
    AXES,
    CLUSTER,
    COORDINATE_BINNING,
    STAR_BLOCKS,
    TOMO_NAME,
    derived_columns,
)
from napari_affinity_vae.session import EMBEDDED_BY, Session
from napari_affinity_vae.widgets.clipboard import bind_clipboard
from napari_affinity_vae.widgets.dialogs import choose, scrolling, stays_in_project
from napari_affinity_vae.widgets.highlight import (
    COLOUR_KEY,
    ROLE,
    colour_particles,
    forget_selection,
    is_highlight,
    remove_orphans,
    show_selection,
)
from napari_affinity_vae.widgets.notify import (
    errors_as_notifications,
    typed_path,
    warnings_as_notifications,
)
from napari_affinity_vae.widgets.picker import (
    REMEMBERED,
    PickerControls,
    place_scores,
)
from napari_affinity_vae.widgets.settings import remember
from napari_affinity_vae.widgets.tasks import Task
from napari_affinity_vae.widgets.viewer_session import (
    DECODED_KEY,
    OF_TOMOGRAM,
    SCORES_KEY,
    TABLE_ROWS,
    current_tomogram,
    focus_on,
    of_tomogram,
    session_for,
    tomogram_identity,
)
from napari_affinity_vae.widgets.waiting import place_waiting_particles

PAST_ACTIONS = ("added", "removed", "changed")  # napari's data events after the change
HAND_SOURCE = "hand picks"  # the layer name of picks by hand: "<tomogram> hand picks"
SOURCE = "source"  # a particles layer's metadata: where its particles came from
LEFT = "left project"  # a left project's points layer's metadata: the project's files


class ParticlesWidget(PickerControls, Container):
    """Particles of the session's tomogram, as an editable Points layer; picked by hand, imported
    or picked automatically (:class:`PickerControls`)."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.session = session_for(viewer)
        self._watched: Points | None = None
        self._sources: tuple[str, ...] = ()  # those of the open project (none: unnamed)
        self._watched_name = ""  # its name, for its highlight to follow a new one
        patterns = " ".join(f"*{s}" for s in PARTICLE_SUFFIXES)
        self.tomogram_label = Label(label="Tomogram", value="none open")
        self.file = FileEdit(label="File", mode="r", filter=f"Coordinates ({patterns})")
        self.skip_unusable = CheckBox(text="Skip rows with NaN or outside the tomogram")
        self.skip_unusable.tooltip = "Import the other rows, with a warning saying how many"
        self.import_button = PushButton(text="Import")
        self.hand_button = PushButton(text="Pick by hand")
        self.hand_button.tooltip = "Click on the plane to add particles; points stay editable"
        picker = self._picker_fields()
        self.layer = ComboBox(label="Particles", choices=self._points_layers, nullable=True)
        self.count = Label(label="Count", value="0")
        super().__init__()
        scrolling(
            self,
            [
                self.tomogram_label,
                self.file,
                self.skip_unusable,
                self.import_button,
                self.hand_button,
                *picker,
                self.layer,
                self.count,
            ],
        )
        self.task = Task(self.native)
        self.import_button.changed.connect(self.import_file)
        self.hand_button.changed.connect(self.pick_by_hand)
        viewer.dims.events.ndisplay.connect(self._follow_ndisplay)
        self._connect_picker()
        self.task.running_changed.connect(self._show_running)
        self.layer.changed.connect(self._watch)
        viewer.layers.events.inserted.connect(self._refresh_layers)
        viewer.layers.events.removed.connect(self._refresh_layers)
        self.session.tomogram_changed.connect(self._tomogram_changed)
        self.session.project_changed.connect(self._project_changed)
        self.session.embedding_changed.connect(self._copy_results)
        self.session.labels_changed.connect(self._copy_results)
        self.session.colour_changed.connect(self._recolour)
        self.session.selection_changed.connect(self._show_selection)
        remember(
            "particles",
            {
                "skip_unusable": self.skip_unusable,
                **{name: getattr(self, name) for name in REMEMBERED},
            },
        )
        self._refresh_layers()
        self._tomogram_changed()

    # -- the tomogram the particles belong to ------------------------------------------------
    def _tomogram(self) -> Tomogram | None:
        """The session's tomogram; with none chosen yet, the newest tomogram layer's."""
        tomogram = current_tomogram(self._viewer)
        if tomogram is None:
            napari.utils.notifications.show_error("Open a tomogram first")
        return tomogram

    def _tomogram_changed(self) -> None:
        tomogram = self.session.tomogram
        if tomogram is None:  # every tomogram closed: their particles are not explored
            self.tomogram_label.value = "none open"
            if self.session.project is None:
                self.layer.value = None
            return
        self._explore(tomogram)
        focus_on(self._viewer, tomogram)

    def _explore(self, tomogram: Tomogram) -> None:
        """Explore the particles of ``tomogram``: the project's (leaving a project it is none
        of), else the newest layer made for it (a file's dropped before it opened among them)."""
        with warnings_as_notifications():
            place_waiting_particles(self._viewer, tomogram)
        z, y, x = tomogram.shape
        size = f"{tomogram.voxel_size:g} Å" if tomogram.voxel_size else "voxel size unknown"
        self.tomogram_label.value = f"{tomogram.name}: {z} x {y} x {x}, {size}"
        for layer in self._viewer.layers:
            if (
                SCORES_KEY in layer.metadata
                and of_tomogram(layer, tomogram)
                and tomogram.voxel_size
            ):
                place_scores(layer, tomogram.voxel_size)
        project = self.session.project
        if project is not None:
            entry = project.tomograms.get(tomogram.name)
            files = {f.resolve() for f in entry.files.values()} if entry is not None else set()
            if tomogram.path.resolve() in files:  # by a link or "..", the same file
                if tomogram.voxel_size and tomogram.voxel_size != entry.voxel_size:
                    # corrected in the Tomogram dock: the project embeds with it too
                    stayed = project.correct_voxel_size(entry.name, tomogram.voxel_size)
                    self._drop_project_embedding(entry.name, moved=stayed is not None)
                    if stayed is not None:
                        placed = project.particles.iloc[project.rows_of(entry.name)]
                        outside = int(
                            outside_rows(placed[list(AXES)].to_numpy(), tomogram.shape).sum()
                        )
                        _say_moved(
                            entry.name, entry.voxel_size, tomogram.voxel_size, stayed, outside
                        )
                self._show_project_particles()
                return
            self._leave_project(f"{tomogram.name} is not one of the project's tomograms")
        own = self._own_layers()
        rescaled = [layer for layer in own if self._rescale(layer, tomogram.voxel_size)]
        embedded = [layer for layer in rescaled if derived_columns(layer.features)]
        for layer in rescaled:  # boxes cut at another scale: latents and clusters are stale
            _drop_derived(layer)
        if embedded:
            _say_embedding_dropped(tomogram.name)
        if self.layer.value not in own:  # another tomogram's particles are not used with this
            self.layer.value = own[-1] if own else None
        elif self.layer.value in rescaled:
            self._sync_from_layer()

    def _drop_project_embedding(self, name: str, moved: bool = False) -> None:
        """A project tomogram's voxel size was corrected: the embedding, of boxes cut at the
        old scale, goes; with ``moved``, the particles take their new places from the project.
        Labels and the selection stay."""
        table = self.session.particles
        derived = derived_columns(table)
        table, selection = table.drop(columns=derived), self.session.selection
        if moved:
            table[list(AXES)] = self.session.project.particles[list(AXES)].to_numpy()
        self.session.set_particles(table)  # a new version: an embedding under way is stale
        self.session.select(selection)
        if derived:
            _say_embedding_dropped(name)

    def _own_layers(self, source: str | None = None) -> list[Points]:
        """The particles layers of the session's tomogram (by the name they were made for, and
        the file where known: two tomograms may share a name), of ``source`` if given."""
        tomogram = self.session.tomogram
        if tomogram is None:
            return []
        identity = tomogram_identity(tomogram)
        return [
            x
            for x in self._points_layers()
            if x.metadata.get("tomo_name") == tomogram.name
            and x.metadata.get(OF_TOMOGRAM, identity) == identity
            and (source is None or x.metadata.get(SOURCE) == source)
        ]

    def _replaced(self, source: str) -> list[Points]:
        """The layers of ``source`` that ``show_particles`` replaces: by their name, so that
        one the user renamed (to keep it) stays."""
        name = f"{self.session.tomogram.name} {source}"
        return [x for x in self._own_layers(source) if x.name == name]

    def _rescale(self, layer: Points, voxel_size: float | None) -> bool:
        """Follow a new voxel size of the tomogram: points read from Angstrom move to where
        those Angstrom now lie; the others (pixels, picks) stay on their voxels."""
        old = layer.metadata.get("voxel_size")
        if not voxel_size or old == voxel_size:
            return False
        layer.metadata["voxel_size"] = voxel_size
        layer.scale = (voxel_size,) * 3
        placed = layer.metadata.get(PLACED_KEY)
        if layer.metadata.get(ANGSTROM_ORIGIN) is None or placed is None or not old:
            return True
        data, stayed = moved_with_voxel_size(layer, old / voxel_size)
        with layer.events.data.blocker(self._edited):
            layer.data = data
        outside = int(outside_rows(data, self.session.tomogram.shape).sum())
        _say_moved(layer.name, old, voxel_size, stayed, outside)
        return True

    # -- getting particles ---------------------------------------------------------------------
    def import_file(self, path: str | Path | None = None) -> Points | None:
        """Read a coordinate file into a Points layer on the tomogram."""
        tomogram = self._tomogram()
        if tomogram is None or self._stays_in_project("Importing particles"):
            return None
        with errors_as_notifications("Importing particles"):
            if not isinstance(path, str | Path):
                path = typed_path(self.file.value, "of the particles to import")
            path = Path(path)
            names = tomogram_names(path)
            tomo_name = None
            if len(names) > 1:  # never merged: this tomogram's rows, or the user says which
                tomo_name = (
                    tomogram.name if tomogram.name in names else self.ask_tomogram(path, names)
                )
                if tomo_name is None:
                    return None
            with warnings_as_notifications():
                skip = self.skip_unusable.value  # else refused, naming the rows
                particles = read_particles_for(path, tomogram, tomo_name, skip)
            if not len(particles):
                raise ParticleFileError(path, "holds no particles")
            if (
                path.suffix.lower() != ".tbl"
                and names
                and tomo_name is None
                and names[0] != tomogram.name
            ):
                show_info(
                    f"{path.name} names tomogram {names[0]}, not {tomogram.name}: its "
                    f"particles are placed on {tomogram.name}"
                )
            return self.show_particles(particles, f"{path.stem}")
        return None

    def ask_tomogram(self, path: Path, names: list[str]) -> str | None:
        """Which tomogram's particles to import from a file holding several (a dialog)."""
        question = (
            f"{path.name} holds particles of {len(names)} tomograms, none named "
            f"{self.session.tomogram.name}. Import those of:"
        )
        return choose(self.native, "Which tomogram?", question, names)

    def pick_by_hand(self) -> Points | None:
        """The tomogram's hand-picks layer (new and empty the first time) in add mode: each
        click on the plane adds a particle."""
        tomogram = self._tomogram()
        if tomogram is None or self._stays_in_project("Picking by hand"):
            return None
        own = self._own_layers(HAND_SOURCE)
        if own:
            layer = self.layer.value = own[-1]
        else:
            layer = self.show_particles(pd.DataFrame(columns=list(AXES), dtype=float), HAND_SOURCE)
        self._viewer.layers.selection.active = layer
        if self._viewer.dims.ndisplay == 3:
            self._viewer.dims.ndisplay = 2
            show_info("Particles are picked by hand on a plane: the view is a plane again")
        layer.mode = "add"
        return layer

    def _follow_ndisplay(self, _event: object = None) -> None:
        """In a 3D view a click adds a point at a depth the user did not choose: a particles
        layer adding points stops, saying so."""
        if self._viewer.dims.ndisplay != 3:
            return
        adding = [x for x in self._points_layers() if x.mode == "add"]
        for layer in adding:
            layer.mode = "pan_zoom"
        if adding:
            show_info(
                "Points are no longer added by clicks: in a 3D view a click lands at no depth "
                "you chose. Pick by hand on a plane"
            )

    def show_particles(
        self, particles: pd.DataFrame, source: str = "particles", replace: bool = False
    ) -> Points:
        """Particles of the session's tomogram as the Points layer being explored: a new layer
        (napari numbers a repeated name), or with ``replace`` the layer of the same name."""
        tomogram = self.session.tomogram
        particles = particles.copy()
        if TOMO_NAME not in particles:
            particles.insert(0, TOMO_NAME, tomogram.name)
        particles.attrs["voxel_size"] = tomogram.voxel_size
        name = f"{tomogram.name} {source}"
        for layer in self._replaced(source) if replace else ():
            self._viewer.layers.remove(layer)
        colour = CATEGORY_COLOURS[(len(self._points_layers()) + 7) % len(CATEGORY_COLOURS)]
        metadata = {
            "tomo_name": tomogram.name,
            OF_TOMOGRAM: tomogram_identity(tomogram),
            SOURCE: source,
            COLOUR_KEY: colour,
        }
        data, kwargs, _ = particles_layer_data(particles, name, metadata, colour=colour)
        layer = self._viewer.add_points(data, **kwargs)
        self.layer.value = layer
        return layer

    def _show_project_particles(self) -> Points:
        """The shown project tomogram's particles as the layer explored, in the layer that
        showed the last tomogram's (napari adds and removes layers slowly); each point knows
        its row of the project's table."""
        tomogram = self.session.tomogram
        rows = self.session.rows_of(tomogram.name)
        particles = self.session.particles.iloc[rows]
        particles.attrs = {"voxel_size": tomogram.voxel_size}
        project = self.session.project
        if project.blocks:  # File > Save writes them as RELION reads them
            particles.attrs[STAR_BLOCKS] = plain_blocks(project.blocks)
        if project.binning != 1:  # ... and in the pixels the project's files gave
            particles.attrs[COORDINATE_BINNING] = project.binning
        name = f"{tomogram.name} particles"
        colour = CATEGORY_COLOURS[7 % len(CATEGORY_COLOURS)]
        metadata = {
            "tomo_name": tomogram.name,
            OF_TOMOGRAM: tomogram_identity(tomogram),  # a lone tomogram of its name is another
            COLOUR_KEY: colour,
            TABLE_ROWS: rows,
        }
        data, kwargs, _ = particles_layer_data(particles, name, metadata, colour=colour)
        layer = next((x for x in self._viewer.layers if TABLE_ROWS in x.metadata), None)
        if layer is None:
            layer = self._viewer.add_points(data, **kwargs)
        else:  # the session's selection stays: it may hold other tomograms' rows
            with (
                layer.events.data.blocker(self._edited),
                layer.selected_data.events.items_changed.blocked(),
            ):
                layer.selected_data = set()
                layer.data = data
            layer.features = kwargs["features"]
            for key in (STAR_BLOCKS, COORDINATE_BINNING, ANGSTROM_ORIGIN, PLACED_KEY):
                layer.metadata.pop(key, None)
            layer.metadata.update(kwargs["metadata"])
            layer.name, layer.scale = name, kwargs["scale"]  # napari may number a taken name
        self.layer.value = layer
        self._sync_from_layer()  # the count, also when the layer was already the one watched
        self._colour(layer)
        self._show_selection(None)
        return layer

    def _rename_highlight(self, old: str, new: str) -> None:
        """The highlight of the layer once named ``old`` follows its new name; one whose name
        napari changed (another layer holds it) is removed, to be made anew when needed."""
        for highlight in [x for x in self._viewer.layers if is_highlight(x)]:
            if highlight.metadata.get(ROLE) != old:
                continue
            highlight.metadata[ROLE] = new
            highlight.name = f"{new} (selected)"
            if highlight.name != f"{new} (selected)":
                self._viewer.layers.remove(highlight)

    # -- keeping the layer and the session in step -----------------------------------------
    @property
    def particles_layer(self) -> Points | None:
        return self.layer.value

    def _points_layers(self, _widget: ComboBox | None = None) -> list[Points]:
        return [
            x
            for x in self._viewer.layers
            if isinstance(x, Points)
            and not is_highlight(x)
            and x.ndim == 3
            and DECODED_KEY not in x.metadata  # a splat model's Gaussians
        ]

    def _refresh_layers(self, _event: object = None) -> None:
        """The particles layers offered; the chosen one stays chosen, also when renamed (which
        the list would otherwise take for a new one, leaving the session's particles and
        coming back to them); one removed, or none chosen, gives way to the newest of the
        tomogram's shown (one opened with File > Open: not a hidden ground truth), or none."""
        current = self.layer.value
        with self.layer.changed.blocked():
            self.layer.reset_choices()
            if current is not None and current in self.layer.choices:
                self.layer.value = current
            else:  # what the user sees of the tomogram's
                own = [x for x in self._own_layers() if x.visible]
                self.layer.value = own[-1] if own else None
        remove_orphans(self._viewer)
        if self.layer.value is not current:
            self._watch(self.layer.value)

    def _watch(self, layer: Points | None) -> None:
        """Follow ``layer``: its edits and its napari selection go to the session. Another
        tomogram's particles, chosen in the box, are refused (their boxes would be cut from the
        tomogram shown)."""
        old = self._watched
        tomogram = self.session.tomogram
        if layer is not None and tomogram is not None and of_tomogram(layer, tomogram) is False:
            show_info(
                f"{layer.name} are the particles of another tomogram than {tomogram.name}: "
                "open or choose theirs in the Tomogram dock to explore them"
            )
            with self.layer.changed.blocked():
                self.layer.value = old if old in self.layer.choices else None
            return
        if old is not None:
            old.events.data.disconnect(self._edited)
            old.events.name.disconnect(self._renamed)
            old.selected_data.events.items_changed.disconnect(self._viewer_selected)
            forget_selection(self._viewer, old)
        self._watched = layer
        if layer is not None:
            self._watched_name = layer.name
            layer.events.data.connect(self._edited)
            layer.events.name.connect(self._renamed)
            layer.selected_data.events.items_changed.connect(self._viewer_selected)
            bind_clipboard(self._viewer, layer)
        self._sync_from_layer()

    def _renamed(self, _event: object = None) -> None:
        """The explored layer's highlight follows its new name."""
        old, self._watched_name = self._watched_name, self._watched.name
        self._rename_highlight(old, self._watched_name)

    def _edited(self, event: object) -> None:
        action = str(getattr(getattr(event, "action", None), "value", "changed"))
        if action not in PAST_ACTIONS:
            return
        rows = self._table_rows(self._watched)
        indices = np.asarray(getattr(event, "data_indices", ()), dtype=np.int64)
        if rows is None:
            outside = action != "removed" and _outside(self._watched, indices, self.session)
            if outside:  # the points as they were: the session's table holds them
                show_info(f"This edit was undone: {outside}")
                with self._watched.events.data.blocker(self._edited):
                    self._watched.data = self.session.particles[list(AXES)].to_numpy(float)
                return
            self._watched.metadata.pop(LEFT, None)  # the user's own points now
            if action == "added" and len(indices):  # by hand: no other particle's features
                layer = self._watched
                layer.features = hand_edits.hand_picked(layer.features, indices)
            if not self._edit_embedded(action, indices):
                self._sync_from_layer(edited=True)
            return
        self._edit_project(action, rows, indices)

    def _edit_embedded(self, action: str, indices: np.ndarray) -> bool:
        """Points of a tomogram's layer added, moved or removed by hand, as a project's are:
        those added or moved wait for the next embedding (one running lands on the others),
        the others keep theirs (and stay selected). False where the points are not the
        table's after a hand edit."""
        layer, table = self._watched, self.session.particles
        change = {"added": len(indices), "removed": -len(indices)}.get(action, 0)
        if not len(table) or len(layer.data) != len(table) + change:
            return False
        name = layer.metadata.get("tomo_name")  # or what the others share, as hand_picked
        if action == "added" and len(indices) and TOMO_NAME in layer.features:
            shared = layer.features[TOMO_NAME].iloc[indices[0]]
            name = shared if pd.notna(shared) else name
        edited = self._hand_edit(np.arange(len(table)), action, indices, name)
        layer.features = edited.drop(columns=list(AXES)).reset_index(drop=True)
        self._colour(layer)
        self.count.value = str(len(layer.data))
        if self.session.latent is not None:
            _say_not_embedded(action, len(indices), "particles")
        return True

    def _hand_edit(
        self, rows: np.ndarray, action: str, indices: np.ndarray, name: str | None
    ) -> pd.DataFrame:
        """The session's table (and the project's, if open) after the points ``indices`` of
        the watched layer, which shows table ``rows`` (of tomogram ``name``), were edited by
        hand; the selection stays on the particles kept. Returns the new table."""
        positions = self._watched.data[indices] if action != "removed" else np.zeros((0, 3))
        return self.session.apply_hand_edit(rows, action, indices, positions, name)

    def _edit_project(self, action: str, rows: np.ndarray, indices: np.ndarray) -> None:
        """Points of a project's layer added, moved or removed by hand: so are the project's
        particles; those added or moved wait for the next embedding, the others keep theirs
        (and stay selected). An edit that cannot be the project's is undone, saying why."""
        layer, table = self._watched, self.session.particles
        name, tomogram = layer.metadata["tomo_name"], self.session.tomogram
        change = {"added": len(indices), "removed": -len(indices)}.get(action, 0)
        problem = None
        if tomogram is None or tomogram.name != name:
            problem = f"show {name} in the Project dock to edit its particles"
        elif len(layer.data) != len(rows) + change:  # not a hand edit (points set by code)
            problem = "only points added, moved or deleted by hand change a project"
        elif action != "removed":
            problem = _outside(layer, indices, self.session)
        if problem:
            show_info(f"This edit was undone: {problem}")
            with layer.events.data.blocker(self._edited):
                layer.data = np.array(table.iloc[rows][list(AXES)], dtype=float)
            return
        self._hand_edit(rows, action, indices, name)
        self._show_project_particles()
        if self.session.latent is not None:
            _say_not_embedded(action, len(indices), "project")

    def _sync_from_layer(self, edited: bool = False) -> None:
        """The session's table from the layer; an edit drops latents computed before it. A
        project's layer shows rows of the project's table, which stays as it is; choosing
        another layer leaves the project."""
        layer = self._watched
        if self.session.project is not None:
            if layer is None or self._table_rows(layer) is not None:
                shown = 0 if layer is None else len(layer.data)
                self.count.value = f"{shown} of {len(self.session.particles)}"
                return
            self._leave_project(f"{layer.name} is not one of the project's particles")
        if layer is None:
            self.session.set_particles(pd.DataFrame(columns=list(AXES), dtype=float))
            self.count.value = "0"
            return
        particles = points_to_particles(
            layer.data,
            {"features": layer.features, "metadata": layer.metadata, "scale": layer.scale},
        )
        if edited:
            _drop_derived(layer)
            particles = particles.drop(columns=derived_columns(particles))
        elif layer.metadata.get(EMBEDDED_BY):  # the model that embedded them (shown again)
            particles.attrs[EMBEDDED_BY] = layer.metadata[EMBEDDED_BY]
        self.session.set_particles(particles)
        self.count.value = str(len(particles))

    def _leave_project(self, why: str) -> None:
        """Leave the open project, telling the user so, and that its embedding is lost."""
        embedded = self.session.latent is not None
        self.session.set_project(None)
        lost = " and its embedding discarded" if embedded else ""
        show_info(f"{why}: the project was left{lost} (open it again in the Project dock)")

    def _stays_in_project(self, doing: str) -> bool:
        return stays_in_project(self.native, self.session, doing)

    def _recolour(self) -> None:
        if self._watched is not None:
            self._colour(self._watched)

    def _colour(self, layer: Points) -> None:
        """Colour ``layer``'s particles as the latent scatter colours them (by cluster until
        it says otherwise, and where its column is not the layer's): from every particle's
        values, so that a project's tomogram without cluster 0 keeps the others' colours."""
        shown = [c for c in (self.session.colour_by, CLUSTER) if c in layer.features]
        table, rows = self.session.particles, self._table_rows(layer)
        column = shown[0] if shown else None
        if column in table and len(table if rows is None else rows) == len(layer.data):
            rgba, _ = colours_for(table[column], known=self.session.known_categories(column))
            layer.border_color = rgba if rows is None else rgba[rows]
        else:
            colour_particles(layer, column)

    def _copy_results(self) -> None:
        """New latents, embedding or clusters become features of the layer, coloured by cluster."""
        layer = self._watched
        if layer is None:
            return
        table, rows = self.session.particles, self._table_rows(layer)
        if rows is not None:
            table = table.iloc[rows]
        if len(layer.data) != len(table):
            return
        layer.features = table.drop(columns=list(AXES)).reset_index(drop=True)
        layer.metadata[EMBEDDED_BY] = table.attrs.get(EMBEDDED_BY)
        self._colour(layer)

    def _viewer_selected(self, *_args: object) -> None:
        layer = self._watched
        rows = np.fromiter(sorted(layer.selected_data), dtype=np.int64)
        table_rows = self._table_rows(layer)
        self.session.select(rows if table_rows is None else table_rows[rows], source=self)

    def _show_selection(self, source: object) -> None:
        layer = self._watched
        if layer is None:
            return
        rows, table_rows = self.session.selection, self._table_rows(layer)
        if table_rows is not None:  # the selected rows of the tomogram shown, as its points
            rows = np.flatnonzero(np.isin(table_rows, rows))
        if source is not self and len(layer.selected_data):
            with layer.selected_data.events.items_changed.blocked():
                layer.selected_data = set()
        show_selection(self._viewer, layer, rows)

    def _table_rows(self, layer: Points | None) -> np.ndarray | None:
        """The table rows of the open project's points (None for any other layer)."""
        if layer is None or self.session.project is None:
            return None
        return layer.metadata.get(TABLE_ROWS)

    def _project_changed(self) -> None:
        """A project opened: an earlier project's points are cleared until one of its tomograms
        is shown, the points left when this project was left before (and not edited since) go,
        and no other layer stays the one explored. Left: its points layer becomes an ordinary
        one of its tomogram (its rows belonged to the project's table), hidden unless explored:
        what is explored now is what the user sees."""
        project = self.session.project
        if project is not None:
            for layer in [x for x in self._viewer.layers if TABLE_ROWS in x.metadata]:
                with layer.events.data.blocker(self._edited):  # an earlier project's points
                    layer.selected_data = set()
                    layer.data = np.zeros((0, 3))
                layer.metadata[TABLE_ROWS] = np.zeros(0, dtype=np.int64)
            sources = _sources(project)
            left = [x for x in self._points_layers() if sources and x.metadata.get(LEFT) == sources]
            for layer in left:  # shown again as the project's
                self._viewer.layers.remove(layer)
            if self.layer.value is not None and TABLE_ROWS not in self.layer.value.metadata:
                self.layer.value = None
            self._sources = sources
            return
        for layer in [x for x in self._viewer.layers if TABLE_ROWS in x.metadata]:
            del layer.metadata[TABLE_ROWS]
            layer.metadata[LEFT] = self._sources
            layer.visible = layer is self._watched

    def _show_running(self, running: bool) -> None:
        self.pick_button.enabled = not running
        self.cancel_button.enabled = running and not self.task.cancelling


def _sources(project: Project) -> tuple[str, ...]:
    """The files a project was opened from, which name it (none for one made in memory)."""
    return tuple(str(path) for path in project.sources)


def _outside(layer: Points, indices: np.ndarray, session: Session) -> str | None:
    """Why points ``indices`` of ``layer``, added or moved by hand, cannot be particles of the
    session's tomogram: one lies outside it (a click beside the image); None if all are in."""
    tomogram = session.tomogram
    if tomogram is None or not outside_rows(layer.data[indices], tomogram.shape).any():
        return None
    shape = " x ".join(map(str, tomogram.shape))
    return f"a particle must lie inside {tomogram.name} ({shape} voxels)"


def _drop_derived(layer: Points) -> None:
    """A layer's latents, embedding and clusters, and the model that made them, go."""
    stale = derived_columns(layer.features)
    if stale:
        layer.features = layer.features.drop(columns=stale)
        colour_particles(layer, None)
    layer.metadata.pop(EMBEDDED_BY, None)


def _say_embedding_dropped(name: str) -> None:
    show_info(
        f"The embedding was dropped: {name}'s boxes were cut at its old voxel size. Embed again"
    )


def _say_not_embedded(action: str, n: int, what: str) -> None:
    """Tell the user that ``n`` particles added or moved by hand wait for an embedding."""
    if action != "removed":
        verb = "moved" if action == "changed" else action
        show_info(
            f"{text.count(n, 'particle')} {verb} by hand: not in the scatter until the "
            f"{what} {'is' if what == 'project' else 'are'} embedded again"
        )


def _say_moved(name: str, old: float, new: float, stayed: int, outside: int = 0) -> None:
    """Particles a file gave in Angstrom moved with a corrected voxel size, in a notification
    that also counts those it moved outside the tomogram (a voxel size still wrong?)."""
    by_hand = f"; {text.count(stayed, 'point')} added or moved by hand stayed" if stayed else ""
    out = (
        f"; {text.count(outside, 'particle')} now {'lies' if outside == 1 else 'lie'} outside "
        "the tomogram: is the voxel size right?"
        if outside
        else ""
    )
    show_info(
        f"{name}: the file gave its particles in Å; they moved with the voxel size "
        f"({old:g} to {new:g} Å){by_hand}{out}"
    )
