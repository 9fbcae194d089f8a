"""The state the dock widgets share, free of Qt and napari: the tomogram, its particle table (with
latents, pose, 2D embedding and clusters as columns once computed), the model and the selection.

Widgets never call each other; each changes the session and listens to its signals. Every change
of the particle table bumps :attr:`Session.version`, so a worker that started on an older table
can tell that its result is stale and must be discarded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from psygnal import Signal

from napari_affinity_vae.operations import hand_edits
from napari_affinity_vae.schema import (
    AXES,
    CLUSTER,
    EMBEDDING,
    LABEL,
    LATENT_PREFIX,
    POSE_PREFIX,
    TOMO_NAME,
    derived_columns,
    numbered_columns,
    rows_by_tomogram,
)

if TYPE_CHECKING:  # the model's modules import torch: only for type checkers, never at run time
    from napari_affinity_vae.io.projects import Project
    from napari_affinity_vae.io.tomogram import Tomogram
    from napari_affinity_vae.model.checkpoint import ModelCard
    from napari_affinity_vae.model.network import AffinityVAE
    from napari_affinity_vae.operations.training import TrainedRun

SELECTION_MODES = ("replace", "add", "remove")
KEPT_EDITS = 1000  # hand edits a result computed before them can be carried across
EMBEDDED_BY = "embedded by"  # the particle table's attrs: the key of the model that embedded it
NOT_EMBEDDED_BY_MODEL = (
    "The particles were embedded with another model than the one chosen: run the embedding "
    "with it first"
)


def model_key(card: ModelCard) -> str:
    """What tells models apart: a digest of their card (architecture, training, classes)."""
    return hashlib.sha256(card.to_json().encode()).hexdigest()


class Session:
    """One viewer's explorer state; rows of :attr:`particles` are the particles, in a fixed order,
    and the selection is a sorted array of row indices."""

    tomogram_changed = Signal()
    project_changed = Signal()
    tomogram_requested = Signal(str)  # a project's tomogram to show (its name)
    particles_changed = Signal()
    embedding_changed = Signal()
    selection_changed = Signal(object)  # the source of the change (a widget), or None
    model_changed = Signal()
    labels_changed = Signal()
    embed_requested = Signal(object)  # a checkpoint to embed every particle with (its path)
    map_changed = Signal()  # the kind of map the project's boxes are cut from
    colour_changed = Signal()  # the column the particles are coloured by, in the scatter too

    def __init__(self) -> None:
        self.tomogram: Tomogram | None = None
        self.project: Project | None = None
        self.particles = pd.DataFrame(columns=list(AXES), dtype=float)
        self.by_hand = False  # the last new table was an edit by hand (see set_particles)
        self.version = 0
        # a version made from the one before by a hand edit: its action, rows and rows before
        self._edits: dict[int, tuple[str, np.ndarray, int]] = {}
        self.selection = np.zeros(0, dtype=np.int64)
        self._rows_by_tomogram: tuple[int, dict[str, np.ndarray]] = (-1, {})
        self.model: AffinityVAE | None = None
        self.card: ModelCard | None = None
        self.inverted = False  # protein bright in the tomograms: boxes are negated for the model
        self.colour_by = CLUSTER  # the column particles are coloured by, in the viewer too
        # the labelled classes' affinity as last set in the Train dock (kept while it is closed)
        self.affinity: pd.DataFrame | None = None
        self.trained_run: TrainedRun | None = None  # the Train dock's, kept while it is closed
        self.label_order: list[str] = []  # classes as first named: each keeps its colour

    def set_colour_by(self, column: str) -> None:
        """Colour the particles by ``column`` (the latent scatter's choice) wherever shown."""
        if column != self.colour_by:
            self.colour_by = column
            self.colour_changed.emit()

    # -- what the table holds -------------------------------------------------------------
    @property
    def latent(self) -> np.ndarray | None:
        """(n, latent_dims) latent means, or None before embedding."""
        return self._columns(LATENT_PREFIX)

    @property
    def pose(self) -> np.ndarray | None:
        return self._columns(POSE_PREFIX)

    @property
    def embedding(self) -> np.ndarray | None:
        """(n, 2) projection of the latents, or None."""
        if not all(c in self.particles for c in EMBEDDING):
            return None
        return self.particles[list(EMBEDDING)].to_numpy(dtype=float)

    @property
    def clusters(self) -> np.ndarray | None:
        if CLUSTER not in self.particles:
            return None
        return self.particles[CLUSTER].to_numpy(dtype=np.int64)

    def embedded_with(self, card: ModelCard) -> bool:
        """Whether the latents are ``card``'s model's: the model recorded as embedding them or,
        for latents from elsewhere (read from a file), one of their sizes."""
        recorded = self.particles.attrs.get(EMBEDDED_BY)
        if recorded is not None:
            return recorded == model_key(card)
        latent, pose, a = self.latent, self.pose, card.architecture
        pose_dims = 0 if pose is None else pose.shape[1]
        return latent is not None and latent.shape[1] == a.latent_dims and pose_dims == a.pose_dims

    def rows_of(self, name: str) -> np.ndarray:
        """The rows of tomogram ``name``'s particles (grouped once per table version)."""
        version, groups = self._rows_by_tomogram
        if version != self.version:
            groups = rows_by_tomogram(self.particles.get(TOMO_NAME, pd.Series(dtype=str)))
            self._rows_by_tomogram = (self.version, groups)
        return groups.get(name, np.zeros(0, dtype=np.int64))

    def _columns(self, prefix: str) -> np.ndarray | None:
        columns = numbered_columns(self.particles, prefix)
        return self.particles[columns].to_numpy(dtype=float) if columns else None

    # -- changes ----------------------------------------------------------------------------
    def set_tomogram(self, tomogram: Tomogram | None) -> None:
        if tomogram is self.tomogram:
            return
        self.tomogram = tomogram
        self.tomogram_changed.emit()

    def set_project(self, project: Project | None) -> None:
        """Explore a project: its particles (every tomogram's) become the table; the tomogram
        shown is one of its tomograms (:meth:`request_tomogram`). None leaves it (no particles)."""
        self.project = project
        self.label_order = []  # the classes named in another project take no colours here
        self.project_changed.emit()
        if project is not None:
            self.set_particles(project.particles)
        else:
            self.set_particles(pd.DataFrame(columns=list(AXES), dtype=float))

    def project_losses(self) -> list[str]:
        """What leaving the open project would discard, in words that follow "its": "embedding",
        "points added, moved or deleted by hand"."""
        if self.project is None:
            return []
        lost = {
            "embedding": self.latent is not None,
            "points added, moved or deleted by hand": self.project.edited,
        }
        return [what for what, kept in lost.items() if kept]

    def choose_map(self, kind: str) -> None:
        """Cut the open project's boxes from its tomograms' maps of ``kind`` from now on."""
        if self.project is not None and kind != self.project.map:
            self.project.map = kind
            self.map_changed.emit()

    def request_tomogram(self, name: str) -> None:
        """Ask for the project's tomogram ``name`` to be shown (the Project dock opens it)."""
        if self.tomogram is None or self.tomogram.name != name:
            self.tomogram_requested.emit(name)

    def set_model(self, model: AffinityVAE | None, card: ModelCard | None) -> None:
        self.model, self.card = model, card
        self.model_changed.emit()

    def apply_hand_edit(
        self,
        rows: np.ndarray,
        action: str,
        indices: np.ndarray,
        positions: np.ndarray,
        name: str | None,
    ) -> pd.DataFrame:
        """The table (and the project's, if open) after the points ``indices`` of a layer that
        shows table ``rows`` (of tomogram ``name``) were ``action`` ("added", "moved",
        "removed") by hand, to ``positions``; the selection stays on the particles kept.
        Returns the new table."""
        edit = hand_edits.applied(
            self.particles, rows, action, indices, positions, name, self.selection
        )
        if self.project is not None:  # first: what the signals below reach reads it
            self.project.set_particles(edit.table.drop(columns=derived_columns(edit.table)))
            self.project.edited = True
        self.set_particles(edit.table, by_hand=True, edit=(action, edit.rows))
        self.select(edit.selection)
        return edit.table

    def set_particles(
        self,
        particles: pd.DataFrame,
        by_hand: bool = False,
        edit: tuple[str, np.ndarray] | None = None,
    ) -> int:
        """A new particle table (row order is the new identity); returns the new version.
        ``by_hand``: the same table with points added, moved or removed by hand, whose views
        (the scatter's zoom and density, the Decode sliders) stay as the user left them; with
        ``edit`` (the action, "added", "changed" or "removed", and the rows it changed), a
        result computed before the edit (an embedding under way) still lands on its rows."""
        before = len(self.particles)
        self.by_hand = by_hand
        self.particles = particles.reset_index(drop=True)
        if LABEL in self.particles and not by_hand:  # labels a file or a project came with
            self._name_classes(sorted(self.particles[LABEL].dropna().astype(str).unique()))
        if edit is None:
            self._edits = {}
        self._edited(None if edit is None else (edit[0], np.asarray(edit[1]), before))
        self.selection = np.zeros(0, dtype=np.int64)
        self.particles_changed.emit()
        self.selection_changed.emit(None)
        return self.version

    def add_columns(
        self,
        version: int,
        columns: pd.DataFrame,
        replace_derived: bool = False,
        embedded_by: ModelCard | None = None,
    ) -> bool:
        """Add result columns computed on table ``version``; a stale result is dropped (False),
        unless only hand edits came since and it is all derived columns: then it lands on the
        rows it was computed for. ``replace_derived`` first removes every earlier latent,
        embedding and cluster column; ``embedded_by`` is the model of new latents, recorded
        with them."""
        if version != self.version:
            where = self._rows_since(version)
            if where is None or set(columns) - set(derived_columns(columns)):
                return False
            columns = hand_edits.carried(columns, where, len(self.particles))
        if len(columns) != len(self.particles):
            raise ValueError(f"{len(columns)} result rows for {len(self.particles)} particles")
        table = self.particles
        if replace_derived:
            table = table.drop(columns=derived_columns(table))
        table = table.drop(columns=[c for c in columns if c in table])
        attrs = dict(self.particles.attrs)
        if embedded_by is not None:
            attrs[EMBEDDED_BY] = model_key(embedded_by)
        self.particles = pd.concat([table, columns.set_axis(table.index)], axis=1)
        self.particles.attrs = attrs
        self.by_hand = False  # new results: their views are fitted to them
        self._edited(("added", np.zeros(0, dtype=np.int64), len(table)))  # the same rows
        self.embedding_changed.emit()
        return True

    def _edited(self, edit: tuple[str, np.ndarray, int] | None) -> None:
        """A new version of the table, made from the last one by ``edit`` (the action, the rows
        it changed, the rows before; see :func:`hand_edits.rows_after`), or of other particles
        (None)."""
        self.version += 1
        if edit is not None:
            self._edits[self.version] = edit
            for old in sorted(self._edits)[:-KEPT_EDITS]:
                del self._edits[old]

    def _rows_since(self, version: int) -> np.ndarray | None:
        """Where the rows of table ``version`` are now (-1: removed or moved by hand), if
        only hand edits and added columns came since; else None."""
        steps = [self._edits.get(v) for v in range(version + 1, self.version + 1)]
        if None in steps:
            return None
        where = np.arange(steps[0][2])
        for action, rows, before in steps:
            if action != "added":  # rows appended (or columns added) leave the others be
                step = hand_edits.rows_after(before, action, rows)
                where = np.where(where >= 0, step[np.maximum(where, 0)], -1)
        return where

    def set_labels(self, rows: Iterable[int], label: str) -> None:
        """Name ``rows`` as class ``label`` in the ``label`` column (an empty name takes their
        label away: None). Labels are the user's: the table's version and derived columns stay."""
        rows = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.int64)
        if LABEL not in self.particles:
            self.particles[LABEL] = pd.Series(None, index=self.particles.index, dtype=object)
        self.particles.loc[self.particles.index[rows], LABEL] = label.strip() or None
        self._name_classes([label.strip()] if label.strip() else [])
        self.labels_changed.emit()

    def labels_from(self, column: str) -> None:
        """Every particle labelled by its ``column`` value (clusters: ``cluster3``; HDBSCAN's
        unclustered particles are left unlabelled)."""
        self.particles[LABEL] = self.labels_of(column)
        self._name_classes(sorted(self.particles[LABEL].dropna().unique()))
        self.labels_changed.emit()

    def _name_classes(self, names: list[str]) -> None:
        self.label_order += [n for n in names if n not in self.label_order]

    def known_categories(self, column: str) -> list[str]:
        """The categories of ``column`` whose colours are to stay put: the labels, in the order
        they came (a table's own, sorted, as it is set; then each as the user names it), so
        that naming a class moves none of them (:func:`colours.colours_for`)."""
        return self.label_order if column == LABEL else []

    def labels_of(self, column: str) -> pd.Series:
        """The labels :meth:`labels_from` would give (None: unlabelled)."""
        values = self.particles[column]
        if column == CLUSTER:
            numbers = pd.to_numeric(values, errors="coerce")
            named = numbers >= 0  # NaN (a tomogram not embedded) and -1 (noise): unlabelled
            text = "cluster" + numbers[named].astype(np.int64).astype(str)
        else:
            named = values.notna()
            text = values[named].astype(str)
        labels = pd.Series(None, index=values.index, dtype=object)
        labels[named] = text
        return labels

    def select(self, rows: Iterable[int], mode: str = "replace", source: object = None) -> None:
        """Replace, add to or remove from the selection; rows outside the table are ignored."""
        if mode not in SELECTION_MODES:
            raise ValueError(f"selection mode must be one of {SELECTION_MODES}, got {mode!r}")
        rows = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.int64)
        rows = np.unique(rows[(rows >= 0) & (rows < len(self.particles))])
        if mode == "add":
            rows = np.union1d(self.selection, rows)
        elif mode == "remove":
            rows = np.setdiff1d(self.selection, rows)
        if np.array_equal(rows, self.selection):
            return
        self.selection = rows
        self.selection_changed.emit(source)

    def clear_selection(self, source: object = None) -> None:
        self.select(np.zeros(0, dtype=np.int64), source=source)
