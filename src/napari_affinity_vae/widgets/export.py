"""The Export dock widget: the selected particles, every cluster to its own file, or all particles,
to RELION 4 or 5 STAR, CSV, a Dynamo table or TomoTwin coordinates, with cluster labels (and
latents if asked) and the angles imported or a splat model's, or back into a copick project as
picks. Existing files are replaced only when the user says so, a per-cluster export is written
whole or not at all, and copick picks are never written over."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import napari
import pandas as pd
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, LineEdit, PushButton
from napari.utils.notifications import show_info

from napari_affinity_vae.errors import AffinityVAEError, ParticleFileError
from napari_affinity_vae.io.projects.copick import (
    DEFAULT_USER,
    copick_config,
    next_session,
    object_names,
    write_copick_picks,
)
from napari_affinity_vae.io.star import identified
from napari_affinity_vae.operations.export import (
    ALL,
    EACH_CLUSTER,
    FORMATS,
    SELECTED,
    WITHOUT_ANGLES,
    angles_from_model,
    copick_sessions,
    export_columns,
    export_parts,
    export_path,
    format_of_suffix,
    has_model_angles,
    index_path,
    stale_cluster_files,
    without_angles,
    without_extracted_files,
    write_parts,
)
from napari_affinity_vae.schema import STAR_BLOCKS
from napari_affinity_vae.text import count
from napari_affinity_vae.widgets.dialogs import confirm, scrolling, wrapping
from napari_affinity_vae.widgets.notify import errors_as_notifications, typed_path
from napari_affinity_vae.widgets.settings import remember
from napari_affinity_vae.widgets.viewer_session import session_for

COPICK = "copick picks"
Target = TypeVar("Target", Path, str)  # a file, or a copick session


class ExportWidget(Container):
    """Write particle coordinates for the next tool in the pipeline."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.session = session_for(viewer)
        self.what = ComboBox(label="Export", choices=[SELECTED, EACH_CLUSTER, ALL], value=SELECTED)
        self.format = ComboBox(label="Format", choices=[*FORMATS, COPICK], value="RELION 4 STAR")
        self.latents = CheckBox(text="Include latents, pose and errors", value=False)
        self.model_angles = CheckBox(text="Angles from the model", value=False, visible=False)
        self.model_angles.tooltip = (
            "Write the splat model's angles (model_rot, model_tilt, model_psi) as the file's "
            "particle angles, in place of the angles imported with the particles"
        )
        patterns = " ".join(f"*{s}" for s in dict.fromkeys(s for s, _ in FORMATS.values()))
        self.file = FileEdit(label="File", mode="w", filter=f"Particles ({patterns})")
        self.copick_object = ComboBox(label="Object", choices=[])
        self.copick_object.tooltip = "The pickable object of the copick project the picks are of"
        self.new_object = LineEdit(label="or new object")
        self.new_object.tooltip = "A new object, added to the project's configuration"
        self.copick_user = LineEdit(label="User", value=DEFAULT_USER)
        self.copick_session = LineEdit(label="Session")
        self.copick_session.tooltip = "Empty: the next free number; clusters get -cluster<N>"
        self.export_button = PushButton(text="Export")
        self.status = wrapping(Label(value=""))
        super().__init__()
        scrolling(
            self,
            [
                self.what,
                self.format,
                self.latents,
                self.model_angles,
                self.file,
                self.copick_object,
                self.new_object,
                self.copick_user,
                self.copick_session,
                self.export_button,
                self.status,
            ],
        )
        self.file.changed.connect(self._follow_suffix)
        self.format.changed.connect(self._show_fields)
        self.session.project_changed.connect(self._show_fields)
        self.session.particles_changed.connect(self._offer_model_angles)
        self.session.embedding_changed.connect(self._offer_model_angles)
        self.export_button.changed.connect(self._clicked)
        remember(
            "export",
            {"format": self.format, "latents": self.latents, "model_angles": self.model_angles},
        )
        self._last_star: str | None = None  # the STAR flavour a typed .star keeps
        self._format_chosen(self.format.value)
        self.format.changed.connect(self._format_chosen)
        self._show_fields()

    def _show_fields(self, _value: object = None) -> None:
        """The file for files; the object, user and session for copick picks, the objects
        those of the open copick project; the model's angles where the particles have them and
        the format holds angles."""
        copick = self.format.value == COPICK
        self.file.visible = self.latents.visible = not copick
        self._offer_model_angles()
        for field in (self.copick_object, self.new_object, self.copick_user, self.copick_session):
            field.visible = copick
        config = copick_config(self.session.project)
        if copick and config is not None:
            with errors_as_notifications("Reading the copick project"):
                self.copick_object.choices = object_names(config)

    def _clicked(self) -> None:
        self.export()

    def _follow_suffix(self, path: Path) -> None:
        """A suffix the user types that names a format chooses that format (``.star`` the STAR
        flavour chosen last)."""
        label = format_of_suffix(Path(path).suffix, self.format.value, self._last_star)
        if label is not None:
            self.format.value = label

    def _format_chosen(self, label: str) -> None:
        if label in FORMATS and FORMATS[label][0] == ".star":
            self._last_star = label

    def export(self) -> list[Path]:
        """Write the chosen particles to the file in the File field (one per cluster if asked),
        or as copick picks into the open copick project; return the files written (for copick,
        the project's configuration), [] if nothing was written."""
        self.status.value = ""
        with errors_as_notifications("Exporting"):
            if self.format.value == COPICK:
                return self._write_copick()
            written = self._write(typed_path(self.file.value, "to export to"))
            if written:
                names = ", ".join(p.name for p in written)
                self.status.value = f"wrote {count(len(written), 'file')}: {names}"
                show_info(f"Exported to {', '.join(str(p) for p in written)}")
            return written
        self.status.value = "nothing written"
        return []

    def _write(self, path: Path) -> list[Path]:
        if not path.name or path.is_dir():
            raise ParticleFileError(path, "is a folder: type a file name to export to")
        if path.name.lower() in {suffix for suffix, _ in FORMATS.values()}:  # ".star" alone
            raise ParticleFileError(path, "is a suffix alone: type a name before it")
        self._follow_suffix(path)
        label = self.format.value
        if self.session.tomogram is None and not len(self.session.particles):
            raise AffinityVAEError(
                "No tomogram is open: open the particles' tomogram to export them (Tomogram "
                "dock), or save their layer with File > Save Selected Layers"
            )
        # hand picks named and numbered among every particle, not those of one file written
        table = identified(export_columns(self.session.particles, self.latents.value))
        path = export_path(path, label)
        parts = self._angles(export_parts(table, self.what.value, self.session.selection, path))
        index = index_path(path, label, self.session.project)
        taken = [p for p in [*parts, index] if p is not None and p.exists() and not p.is_dir()]
        stale = stale_cluster_files(parts, path) if self.what.value == EACH_CLUSTER else []
        if (taken or stale) and not self.ask_overwrite(taken, stale):
            self.status.value = "not written: the existing files were kept"
            return []
        tomogram = self.session.tomogram
        written = write_parts(
            parts,
            label,
            voxel_size=self.session.particles.attrs.get("voxel_size"),
            tomogram_shape=tomogram.shape if tomogram is not None else None,
            star_blocks=self.session.particles.attrs.get(STAR_BLOCKS),
            project=self.session.project,
            index=index,
        )
        for old in stale:
            old.unlink(missing_ok=True)
        unaligned = without_angles(parts, label)
        if unaligned:
            show_info(
                f"{count(unaligned, 'particle')} without angles (added by hand, or read from a "
                f"file without them) {'was' if unaligned == 1 else 'were'} written with angles 0"
            )
        unextracted = without_extracted_files(parts, label)
        if unextracted:
            show_info(
                f"{count(unextracted, 'particle')} without an extracted subtomogram (added by "
                "hand): the STAR file was written without rlnImageName and rlnCtfImage, which "
                "RELION would read as file names; extract the particles again in RELION"
            )
        return written

    def _write_copick(self) -> list[Path]:
        """The particles as new picks of the open copick project, under the object, user and
        session given."""
        project = self.session.project
        config = copick_config(project)
        if config is None:
            raise AffinityVAEError(
                "copick picks go back into a copick project: open its configuration (.json) in "
                "the Project dock"
            )
        name = self.new_object.value.strip() or self.copick_object.value
        if not name:
            raise AffinityVAEError("Choose the object the picks are of, or name a new one")
        user = self.copick_user.value.strip() or DEFAULT_USER
        session = self.copick_session.value.strip() or next_session(config, name, user)
        table = export_columns(self.session.particles, latents=False)
        parts = self._angles(
            copick_sessions(table, self.what.value, self.session.selection, session)
        )
        written = write_copick_picks(config, project, parts, name, user)
        self.copick_object.choices = object_names(config)
        self.status.value = "wrote copick picks: " + "; ".join(written)
        show_info(f"Wrote copick picks into {config}: " + "; ".join(written))
        return [config]

    def _model_angles_offered(self) -> bool:
        """Whether the particles have a model's angles and the format holds angles."""
        particles = self.session.particles
        return has_model_angles(particles) and self.format.value not in WITHOUT_ANGLES

    def _offer_model_angles(self) -> None:
        self.model_angles.visible = self._model_angles_offered()

    def _angles(self, parts: dict[Target, pd.DataFrame]) -> dict[Target, pd.DataFrame]:
        """The parts with the model's angles as their angles, if asked (the session's table is
        left as it is)."""
        if not (self.model_angles.value and self._model_angles_offered()):
            return parts
        return {target: angles_from_model(rows) for target, rows in parts.items()}

    def ask_overwrite(self, paths: list[Path], stale: list[Path] | None = None) -> bool:
        """Whether to replace existing files, and remove ``stale`` ones of clusters there are
        no longer (a dialog)."""
        said = [f"These files exist:\n{_listed(paths)}"] if paths else []
        if stale:
            said.append(
                "These files of an earlier export of each cluster are of clusters there are no "
                f"longer, and will be removed:\n{_listed(stale)}"
            )
        question = "\n\n".join(said) + ("\n\nGo on?" if stale else "\nReplace?")
        return confirm(self.native, "Replace files?", question)


def _listed(paths: list[Path]) -> str:
    """Up to ten paths, one a line, and how many more."""
    more = f"\n... and {len(paths) - 10} more" if len(paths) > 10 else ""
    return "\n".join(str(p) for p in paths[:10]) + more
