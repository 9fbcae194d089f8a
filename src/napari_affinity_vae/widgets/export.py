"""The Export dock widget: the selected particles, every cluster to its own file, or all particles,
to RELION 4 or 5 STAR, CSV, a Dynamo table or TomoTwin coordinates, with cluster labels (and
latents if asked). Existing files are replaced only when the user says so, and a per-cluster
export is written whole or not at all."""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, PushButton
from napari.utils.notifications import show_info

from napari_affinity_vae.colours import NOISE_LABEL
from napari_affinity_vae.errors import AffinityVAEError, InputFileError, ParticleFileError
from napari_affinity_vae.io.atomic import atomic_files
from napari_affinity_vae.io.particles import write_particles
from napari_affinity_vae.session import CLUSTER, derived_columns
from napari_affinity_vae.text import count
from napari_affinity_vae.widgets.dialogs import confirm, scrolling, wrapping
from napari_affinity_vae.widgets.notify import errors_as_notifications
from napari_affinity_vae.widgets.settings import remember
from napari_affinity_vae.widgets.viewer_session import session_for

SELECTED, EACH_CLUSTER, ALL = "Selected particles", "Each cluster", "All particles"
FORMATS = {  # label: (suffix, STAR flavour)
    "RELION 4 STAR": (".star", "relion4"),
    "RELION 5 STAR": (".star", "relion5"),
    "CSV": (".csv", "relion4"),
    "Dynamo table": (".tbl", "relion4"),
    "TomoTwin coords": (".coords", "relion4"),
}


def format_of_suffix(suffix: str, current: str) -> str | None:
    """The format a typed suffix names (``current`` if it names that one too), else None."""
    suffix = suffix.lower()
    if FORMATS[current][0] == suffix:
        return current
    return next((label for label, (s, _) in FORMATS.items() if s == suffix), None)


def export_path(path: Path, format_label: str) -> Path:
    """The file to write: a name whose suffix names a format is kept; any other name keeps its
    text and gains the format's suffix (``keep.v2`` becomes ``keep.v2.star``)."""
    suffix = FORMATS[format_label][0]
    return path if path.suffix.lower() == suffix else path.with_name(path.name + suffix)


class ExportWidget(Container):
    """Write particle coordinates for the next tool in the pipeline."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.session = session_for(viewer)
        self.what = ComboBox(label="Export", choices=[SELECTED, EACH_CLUSTER, ALL], value=SELECTED)
        self.format = ComboBox(label="Format", choices=list(FORMATS), value="RELION 4 STAR")
        self.latents = CheckBox(text="Include latents, pose and errors", value=False)
        patterns = " ".join(f"*{s}" for s in dict.fromkeys(s for s, _ in FORMATS.values()))
        self.file = FileEdit(label="File", mode="w", filter=f"Particles ({patterns})")
        self.export_button = PushButton(text="Export")
        self.status = wrapping(Label(value=""))
        super().__init__()
        scrolling(
            self,
            [
                self.what,
                self.format,
                self.latents,
                self.file,
                self.export_button,
                self.status,
            ],
        )
        self.file.changed.connect(self._follow_suffix)
        self.export_button.changed.connect(self._clicked)
        remember("export", {"format": self.format, "latents": self.latents})

    def _clicked(self) -> None:
        self.export()

    def _follow_suffix(self, path: Path) -> None:
        """A suffix the user types that names a format chooses that format."""
        label = format_of_suffix(Path(path).suffix, self.format.value)
        if label is not None:
            self.format.value = label

    def export(self) -> list[Path]:
        """Write the chosen particles to the file in the File field; return the files written
        (one per cluster if asked), [] if nothing was written."""
        self.status.value = ""
        with errors_as_notifications("Exporting"):
            written = self._write(Path(self.file.value))
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
        self._follow_suffix(path)
        label = self.format.value
        path = export_path(path, label)
        parts = self._parts(path)
        folder = path.parent
        if not folder.is_dir():
            raise ParticleFileError(path, f"folder {folder} does not exist")
        taken = [p for p in parts if p.exists()]
        if any(p.is_dir() for p in taken):
            raise ParticleFileError(path, "a folder of that name is in the way")
        if taken and not self.ask_overwrite(taken):
            self.status.value = "not written: the existing files were kept"
            return []
        tomogram = self.session.tomogram
        try:
            with atomic_files(folder, [p.name for p in parts]) as staged:
                for tmp, (target, rows) in zip(staged, parts.items(), strict=True):
                    try:
                        write_particles(
                            rows.reset_index(drop=True),
                            tmp,
                            voxel_size=self.session.particles.attrs.get("voxel_size"),
                            tomogram_shape=tomogram.shape if tomogram is not None else None,
                            star_flavour=FORMATS[label][1],
                        )
                    except InputFileError as err:  # name the user's file, not the staged one
                        raise ParticleFileError(target, err.problem) from None
        except OSError as err:
            raise ParticleFileError(path, f"cannot be written ({err.strerror or err})") from None
        return list(parts)

    def _parts(self, path: Path) -> dict[Path, pd.DataFrame]:
        """The rows to write to each file."""
        table = self._columns(self.session.particles)
        if not len(table):
            raise AffinityVAEError("There are no particles to export")
        if self.what.value == SELECTED:
            if not len(self.session.selection):
                raise AffinityVAEError(
                    "The selection is empty: select particles in the scatter or the viewer"
                )
            return {path: table.iloc[self.session.selection]}
        if self.what.value == EACH_CLUSTER:
            if CLUSTER not in table:
                raise AffinityVAEError("The particles are not clustered yet (Embed widget)")
            stem, suffix = path.name[: -len(path.suffix)], path.suffix
            return {
                path.with_name(f"{stem}_{_part(label)}{suffix}"): table[table[CLUSTER] == label]
                for label in np.unique(table[CLUSTER])
            }
        return {path: table}

    def ask_overwrite(self, paths: list[Path]) -> bool:
        """Whether to replace existing files (a dialog)."""
        names = "\n".join(str(p) for p in paths[:10])
        more = f"\n... and {len(paths) - 10} more" if len(paths) > 10 else ""
        return confirm(
            self.native, "Replace files?", f"These files exist:\n{names}{more}\nReplace?"
        )

    def _columns(self, table: pd.DataFrame) -> pd.DataFrame:
        """Coordinates and the user's columns, the cluster label, and latents only if asked."""
        if self.latents.value:
            return table
        return table.drop(columns=[c for c in derived_columns(table) if c != CLUSTER])


def _part(label: int) -> str:
    """``cluster0``, ``cluster1``, ...; HDBSCAN's noise (-1) is ``unclustered``."""
    return f"cluster{label}" if label >= 0 else NOISE_LABEL
