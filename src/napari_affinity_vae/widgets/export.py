"""The Export dock widget: the selected particles, every cluster to its own file, or all particles,
to RELION 4 or 5 STAR, CSV or a Dynamo table, with cluster labels (and latents if asked)."""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, PushButton
from napari.utils.notifications import show_info

from napari_affinity_vae.errors import AffinityVAEError, ParticleFileError
from napari_affinity_vae.io.particles import write_particles
from napari_affinity_vae.session import CLUSTER, derived_columns
from napari_affinity_vae.widgets.notify import errors_as_notifications
from napari_affinity_vae.widgets.settings import remember
from napari_affinity_vae.widgets.viewer_session import session_for

SELECTED, EACH_CLUSTER, ALL = "Selected particles", "Each cluster", "All particles"
FORMATS = {  # label: (suffix, STAR flavour)
    "RELION 4 STAR": (".star", "relion4"),
    "RELION 5 STAR": (".star", "relion5"),
    "CSV": (".csv", "relion4"),
    "Dynamo table": (".tbl", "relion4"),
}


class ExportWidget(Container):
    """Write particle coordinates for the next tool in the pipeline."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.session = session_for(viewer)
        self.what = ComboBox(label="Export", choices=[SELECTED, EACH_CLUSTER, ALL], value=SELECTED)
        self.format = ComboBox(label="Format", choices=list(FORMATS), value="RELION 4 STAR")
        self.latents = CheckBox(text="Include latents, pose and errors", value=False)
        self.file = FileEdit(label="File", mode="w", filter="Particles (*.star *.csv *.tbl)")
        self.export_button = PushButton(text="Export")
        self.status = Label(value="")
        super().__init__(
            widgets=[
                self.what,
                self.format,
                self.latents,
                self.file,
                self.export_button,
                self.status,
            ]
        )
        self.export_button.changed.connect(self.export)
        remember("export", {"format": self.format, "latents": self.latents})

    def export(self, path: str | Path | None = None) -> list[Path]:
        """Write the chosen particles; return the files written (one per cluster if asked)."""
        with errors_as_notifications():
            written = self._write(Path(path) if path is not None else Path(self.file.value))
            self.status.value = f"wrote {', '.join(p.name for p in written)}"
            show_info(f"Exported to {', '.join(str(p) for p in written)}")
            return written
        return []

    def _write(self, path: Path) -> list[Path]:
        suffix, flavour = FORMATS[self.format.value]
        if not path.name or path.is_dir():
            raise ParticleFileError(path, "choose a file name to export to")
        path = path.with_suffix(suffix)
        table = self._columns(self.session.particles)
        if not len(table):
            raise AffinityVAEError("There are no particles to export")
        if self.what.value == SELECTED:
            if not len(self.session.selection):
                raise AffinityVAEError(
                    "The selection is empty: select particles in the scatter or the viewer"
                )
            parts = {path: table.iloc[self.session.selection]}
        elif self.what.value == EACH_CLUSTER:
            if CLUSTER not in table:
                raise AffinityVAEError("The particles are not clustered yet (Embed widget)")
            parts = {
                path.with_name(f"{path.stem}_cluster{label}{suffix}"): table[
                    table[CLUSTER] == label
                ]
                for label in np.unique(table[CLUSTER])
            }
        else:
            parts = {path: table}
        tomogram = self.session.tomogram
        return [
            write_particles(
                rows.reset_index(drop=True),
                target,
                voxel_size=self.session.particles.attrs.get("voxel_size"),
                tomogram_shape=tomogram.shape if tomogram is not None else None,
                star_flavour=flavour,
            )
            for target, rows in parts.items()
        ]

    def _columns(self, table: pd.DataFrame) -> pd.DataFrame:
        """Coordinates and the user's columns, the cluster label, and latents only if asked."""
        if self.latents.value:
            return table
        return table.drop(columns=[c for c in derived_columns(table) if c != CLUSTER])
