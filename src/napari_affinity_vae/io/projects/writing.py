"""A project's particle table written out: RELION 5 STAR across tomograms (centred Angstrom),
CSV (each particle's x, y, z in voxels of its tomogram, with ``tomo_name``), or Parquet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from napari_affinity_vae.io.atomic import atomic_path
from napari_affinity_vae.io.particles import check_output as check_particle_output
from napari_affinity_vae.io.particles import write_particles
from napari_affinity_vae.io.projects.project import Project
from napari_affinity_vae.io.projects.relion5 import write_relion5
from napari_affinity_vae.schema import TOMOGRAM_MISSING

PROJECT_SUFFIXES = (".star", ".csv", ".parquet")


def check_output(path: Path) -> None:
    """Refuse, before any work, an output a project cannot be written to."""
    check_particle_output(path, PROJECT_SUFFIXES, "a project")


def write_project_table(
    project: Project, table: pd.DataFrame, path: Path, *, parquet: bool = False
) -> list[Path]:
    """Write ``table`` (rows of ``project.particles``) to ``path``; with ``parquet``, also its
    Parquet twin beside it. Returns the files written."""
    check_output(path)
    table = table.drop(columns=[TOMOGRAM_MISSING], errors="ignore")  # the project's own mark
    suffix = path.suffix.lower()
    written = []
    if suffix == ".star":
        written.append(write_relion5(project, table, path))
    elif suffix == ".csv":
        written.append(write_particles(table, path))
    if parquet or suffix == ".parquet":
        twin = path.with_suffix(".parquet")
        with atomic_path(twin) as tmp:
            table.reset_index(drop=True).to_parquet(tmp)
        written.append(twin)
    return written
