"""Export particles for the next tool: the selection, each cluster to its own file, or all, in
the format the file's suffix (or the user's choice) names; several files are written all or
none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from napari_affinity_vae.errors import AffinityVAEError, InputFileError, ParticleFileError
from napari_affinity_vae.io.atomic import atomic_files
from napari_affinity_vae.io.particles import write_particles
from napari_affinity_vae.schema import CLUSTER, derived_columns

SELECTED, EACH_CLUSTER, ALL = "Selected particles", "Each cluster", "All particles"
FORMATS = {  # label: (suffix, STAR flavour)
    "RELION 4 STAR": (".star", "relion4"),
    "RELION 5 STAR": (".star", "relion5"),
    "CSV": (".csv", "relion4"),
    "Dynamo table": (".tbl", "relion4"),
    "TomoTwin coords": (".coords", "relion4"),
}
NOISE_NAME = "unclustered"  # the file of HDBSCAN's noise (cluster -1) in a per-cluster export


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


def export_columns(table: pd.DataFrame, latents: bool) -> pd.DataFrame:
    """Coordinates and the user's columns and the cluster label; latents, pose and errors too
    if ``latents``."""
    if latents:
        return table
    return table.drop(columns=[c for c in derived_columns(table) if c != CLUSTER])


def export_parts(
    table: pd.DataFrame, what: str, selection: np.ndarray, path: Path
) -> dict[Path, pd.DataFrame]:
    """The rows each file gets: the selection, one file per cluster (``name_cluster3.star``;
    HDBSCAN's noise in ``name_unclustered.star``), or all particles."""
    if not len(table):
        raise AffinityVAEError("There are no particles to export")
    if what == SELECTED:
        if not len(selection):
            raise AffinityVAEError(
                "The selection is empty: select particles in the scatter or the viewer"
            )
        return {path: table.iloc[selection]}
    if what == EACH_CLUSTER:
        if CLUSTER not in table:
            raise AffinityVAEError("The particles are not clustered yet (Embed widget)")
        stem, suffix = path.name[: -len(path.suffix)], path.suffix
        return {
            path.with_name(f"{stem}_{_cluster_name(label)}{suffix}"): table[table[CLUSTER] == label]
            for label in np.unique(table[CLUSTER])
        }
    return {path: table}


def _cluster_name(label: int) -> str:
    return NOISE_NAME if label < 0 else f"cluster{label}"


def write_parts(
    parts: dict[Path, pd.DataFrame],
    format_label: str,
    *,
    voxel_size: float | None,
    tomogram_shape: tuple[int, int, int] | None,
) -> list[Path]:
    """Write every part into its file, all or none; a file that cannot be written is named in
    a :class:`ParticleFileError`."""
    first = next(iter(parts))
    folder = first.parent
    if not folder.is_dir():
        raise ParticleFileError(first, f"folder {folder} does not exist")
    if any(p.is_dir() for p in parts):
        raise ParticleFileError(first, "a folder of that name is in the way")
    try:
        with atomic_files(folder, [p.name for p in parts]) as staged:
            for tmp, (target, rows) in zip(staged, parts.items(), strict=True):
                try:
                    write_particles(
                        rows.reset_index(drop=True),
                        tmp,
                        voxel_size=voxel_size,
                        tomogram_shape=tomogram_shape,
                        star_flavour=FORMATS[format_label][1],
                    )
                except InputFileError as err:  # name the user's file, not the staged one
                    raise ParticleFileError(target, err.problem) from None
    except OSError as err:
        raise ParticleFileError(first, f"cannot be written ({err.strerror or err})") from None
    return list(parts)
