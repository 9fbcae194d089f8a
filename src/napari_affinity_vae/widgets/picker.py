"""The Particles dock's automatic picker: its fields, the blob picker or template matching run
in the background, and the picks shown as the dock's particles. A mixin of the dock
(:class:`~napari_affinity_vae.widgets.particles.ParticlesWidget`), whose session, task and
layers it uses."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, Container, FileEdit, FloatSpinBox, PushButton, SpinBox
from napari.layers import Image
from napari.utils.notifications import show_info

from napari_affinity_vae import text
from napari_affinity_vae.errors import AffinityVAEError, ParticleFileError
from napari_affinity_vae.io.tomogram import Tomogram
from napari_affinity_vae.operations.defaults import DIAMETERS
from napari_affinity_vae.operations.pick import pick_chunks, pick_tomogram_steps, plan_match
from napari_affinity_vae.particles.picking import PickSettings
from napari_affinity_vae.particles.templates import MatchResult, MatchSettings
from napari_affinity_vae.schema import LABEL
from napari_affinity_vae.widgets.dialogs import confirm
from napari_affinity_vae.widgets.notify import errors_as_notifications
from napari_affinity_vae.widgets.viewer_session import (
    OF_TOMOGRAM,
    SCORES_KEY,
    of_tomogram,
    same_tomogram,
    tomogram_identity,
)

if TYPE_CHECKING:
    import napari

    from napari_affinity_vae.session import Session
    from napari_affinity_vae.widgets.tasks import Task

BINNING_KEY = "binning"  # a template-score map's metadata: tomogram voxels per map voxel
PICKER_SOURCE = "picks"  # the picks' layer name: "<tomogram> picks"
TEMPLATE_FILTER = "Maps and models (*.mrc *.map *.gz *.bz2 *.pdb *.cif)"
REMEMBERED = (  # the picker's fields whose values the dock remembers
    "diameter_min",
    "diameter_max",
    "auto_threshold",
    "threshold",
    "max_count",
    "inverted",
    "angular_step",
    "refine",
)


class PickerControls:
    """The picker's fields and work, for a dock that provides the viewer, session and task
    declared here, and ``_tomogram()``, ``_stays_in_project(doing)``, ``_keeps_labels``'
    ``_replaced(source)``, ``_own_layers(source)``, ``show_particles(...)`` and
    ``particles_layer``."""

    _viewer: napari.viewer.Viewer
    session: Session
    task: Task
    native: object

    def _picker_fields(self) -> list:
        """Make the picker's fields; the widgets to lay out, in order."""
        low, high = DIAMETERS
        self.diameter_min = FloatSpinBox(label="Diameter min (Å)", min=1, max=5000, value=low)
        self.diameter_max = FloatSpinBox(label="Diameter max (Å)", min=1, max=5000, value=high)
        self.auto_threshold = CheckBox(text="Automatic threshold", value=True)
        self.threshold = FloatSpinBox(
            label="Threshold (noise SD)", min=0, max=100, step=0.1, enabled=False
        )
        self.max_count = SpinBox(label="Max picks (0: all)", min=0, max=10_000_000, value=0)
        self.inverted = CheckBox(text="Protein bright (inverted contrast)", value=False)
        self.templates = FileEdit(label="Templates", mode="rm", filter=TEMPLATE_FILTER)
        self.templates.tooltip = (
            "Reference maps or atomic models: Pick matches them over rotations instead of "
            "finding blobs of the diameters above"
        )
        self.angular_step = FloatSpinBox(label="Angular step (°)", min=3, max=90, value=30)
        self.refine = CheckBox(text="Refine picks at full size", value=True)
        self.refine.tooltip = (
            "Score each match again at the tomogram's voxel size and refine its angles to a "
            "fraction of the step (elongated and pseudo-symmetric molecules need it)"
        )
        self.pick_button = PushButton(text="Pick")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        return [
            self.diameter_min,
            self.diameter_max,
            self.auto_threshold,
            self.threshold,
            self.max_count,
            self.inverted,
            self.templates,
            self.angular_step,
            self.refine,
            Container(widgets=[self.pick_button, self.cancel_button], layout="horizontal"),
        ]

    def _connect_picker(self) -> None:
        self.pick_button.changed.connect(self.run_picker)
        self.cancel_button.changed.connect(self.task.cancel)
        self.auto_threshold.changed.connect(
            lambda auto: setattr(self.threshold, "enabled", not auto)
        )

    def run_picker(self) -> None:
        """Run the picker (or, with templates chosen, template matching) on the tomogram in the
        background; the picks replace the layer."""
        tomogram = self._tomogram()
        if tomogram is None or self._stays_in_project("Picking") or self._keeps_labels():
            return
        with errors_as_notifications("Picking"):
            if tomogram.voxel_size is None:
                raise ParticleFileError(tomogram.path, "the voxel size is unknown; set it first")
            templates = [Path(p) for p in self.templates.value or () if str(p) not in ("", ".")]
            if templates:
                self._match(tomogram, templates)
                return
            low, high = self.diameter_min.value, self.diameter_max.value
            if low > high:
                raise AffinityVAEError(
                    f"The minimum diameter ({low:g} Å) is above the maximum ({high:g} Å)"
                )
            settings = PickSettings(
                low,
                high,
                tomogram.voxel_size,
                threshold=None if self.auto_threshold.value else self.threshold.value,
                max_count=self.max_count.value or None,
                inverted=self.inverted.value,
            )
            version = self.session.version
            self.task.start(
                lambda: pick_tomogram_steps(tomogram, settings),
                total=pick_chunks(tomogram, settings),
                desc="Picking particles",
                on_result=lambda picks: self._picked(tomogram, version, picks),
            )

    def _keeps_labels(self) -> bool:
        """Whether the user would rather keep the labels of the picks a new pick replaces
        (asked only when some are labelled)."""
        layers = self._replaced(PICKER_SOURCE)
        labels = layers[-1].features.get(LABEL) if layers else None
        labelled = 0 if labels is None else int((labels.fillna("").astype(str) != "").sum())
        if not labelled:
            return False
        question = (
            f"Picking again replaces {layers[-1].name} and the labels of "
            f"{text.count(labelled, 'particle')} of them. Go on?"
        )
        return not confirm(self.native, "Replace the picks?", question)

    def _match(self, tomogram: Tomogram, templates: list[Path]) -> None:
        settings = MatchSettings(
            voxel_size=tomogram.voxel_size,
            angular_step=self.angular_step.value,
            threshold=None if self.auto_threshold.value else self.threshold.value,
            inverted=self.inverted.value,
            max_count=self.max_count.value or None,
            refine=self.refine.value,
        )
        plan = plan_match(tomogram, templates, settings)  # the templates read once, here
        version = self.session.version
        self.task.start(
            plan.steps,
            total=plan.work(),
            desc="Matching templates",
            on_result=lambda result: self._matched(tomogram, version, result),
        )

    def _matched(self, tomogram: Tomogram, version: int, result: MatchResult) -> None:
        """The picks, and the best score at every voxel as a layer over the tomogram."""
        if self._picked(tomogram, version, result.picks):
            scores = result.best_scores()
            name = f"{tomogram.name} template scores"
            for old in [x for x in self._viewer.layers if x.metadata.get(SCORES_KEY)]:
                if of_tomogram(old, tomogram):  # not another tomogram's of the same name
                    self._viewer.layers.remove(old)
            layer = self._viewer.add_image(
                scores,
                name=name,
                colormap="magma",
                blending="additive",
                opacity=0.6,
                contrast_limits=(0.0, max(float(np.nanmax(scores)), 1e-6)),
                metadata={
                    SCORES_KEY: tomogram.name,
                    OF_TOMOGRAM: tomogram_identity(tomogram),
                    BINNING_KEY: result.binning,
                },
            )
            place_scores(layer, tomogram.voxel_size)
            if self.particles_layer is not None:
                self._viewer.layers.selection.active = self.particles_layer  # the picks' tools

    def _picked(self, tomogram: Tomogram, version: int, picks: pd.DataFrame) -> bool:
        """Show the picks (none found: the earlier stay, and the user is told), unless another
        tomogram is open or the particles changed meanwhile; whether the result stands."""
        current = self.session.tomogram
        if current is None or not same_tomogram(current, tomogram):
            now = "it was closed" if current is None else "another tomogram is open now"
            show_info(f"Picks of {tomogram.path} discarded: {now}")
            return False
        if self.session.version != version and self._replaced(PICKER_SOURCE):
            # the picks they would replace were edited meanwhile (not just deleted)
            show_info("Picks discarded: the particles changed while the picker ran")
            return False
        if current.voxel_size != tomogram.voxel_size:  # diameters and templates were in Å
            now = f"{current.voxel_size:g} Å" if current.voxel_size else "unknown"
            show_info(
                f"Picks discarded: the voxel size changed while the picker ran "
                f"({tomogram.voxel_size:g} Å to {now}): pick again"
            )
            return False
        self.threshold.value = picks.attrs.get("threshold", self.threshold.value)
        if picks.empty:  # the earlier picks are worth more than none
            kept = "; the earlier picks were kept" if self._own_layers(PICKER_SOURCE) else ""
            show_info(
                f"No particles found in {tomogram.name} at threshold {self.threshold.value:.3g}"
                f"{kept}: lower the threshold, or check the diameters or templates and "
                "'Protein bright'"
            )
        else:
            self.show_particles(picks, PICKER_SOURCE, replace=True)
        return True


def place_scores(layer: Image, voxel_size: float) -> None:
    """A template-score map over its tomogram: each of its voxels the centre of the binned
    block of tomogram voxels it scores."""
    binning = layer.metadata[BINNING_KEY]
    layer.scale = (voxel_size * binning,) * 3
    layer.translate = ((binning - 1) / 2 * voxel_size,) * 3
