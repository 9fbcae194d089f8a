"""Export particles for the next tool: the selection, each cluster to its own file, or all, in
the format the file's suffix (or the user's choice) names, with the angles imported or a splat
model's; several files are written all or none."""

from __future__ import annotations

import glob
import re
from pathlib import Path

import numpy as np
import pandas as pd

from napari_affinity_vae.errors import AffinityVAEError, InputFileError, ParticleFileError
from napari_affinity_vae.io.atomic import atomic_files, check_writable, unwritable
from napari_affinity_vae.io.particles import write_particles
from napari_affinity_vae.io.projects import Project
from napari_affinity_vae.io.projects.relion5 import write_relion4, write_relion5
from napari_affinity_vae.io.star import SUBTOMOGRAM_ANGLES, unextracted_columns
from napari_affinity_vae.schema import (
    ANGLES,
    AXES,
    CLUSTER,
    MODEL_ANGLES,
    TOMO_NAME,
    TOMOGRAM_MISSING,
    derived_columns,
)
from napari_affinity_vae.text import count

SELECTED, EACH_CLUSTER, ALL = "Selected particles", "Each cluster", "All particles"
DYNAMO, TOMOTWIN, IMOD = "Dynamo table", "TomoTwin coords", "IMOD model"
FORMATS = {  # label: (suffix, STAR flavour)
    "RELION 4 STAR": (".star", "relion4"),
    "RELION 5 STAR": (".star", "relion5"),
    "CSV": (".csv", "relion4"),
    DYNAMO: (".tbl", "relion4"),
    TOMOTWIN: (".coords", "relion4"),
    IMOD: (".mod", "relion4"),
}
WITHOUT_ANGLES = (TOMOTWIN, IMOD)  # formats that hold no orientation
ONE_TOMOGRAM = {TOMOTWIN: "TomoTwin coordinates", IMOD: "IMOD models"}  # name no tomogram
ZERO_FOR_NO_ANGLES = ("RELION 4 STAR", "RELION 5 STAR", DYNAMO)  # write a missing angle as 0
NOISE_NAME = "unclustered"  # the file of HDBSCAN's noise (cluster -1) in a per-cluster export


def format_of_suffix(suffix: str, current: str, preferred: str | None = None) -> str | None:
    """The format a typed suffix names (``current`` if it names that one too, else
    ``preferred`` if that does), else None."""
    suffix = suffix.lower()
    for label in (current, preferred):
        if label in FORMATS and FORMATS[label][0] == suffix:
            return label
    return next((label for label, (s, _) in FORMATS.items() if s == suffix), None)


def export_path(path: Path, format_label: str) -> Path:
    """The file to write: a name whose suffix names a format is kept; any other name keeps its
    text and gains the format's suffix (``keep.v2`` becomes ``keep.v2.star``)."""
    suffix = FORMATS[format_label][0]
    return path if path.suffix.lower() == suffix else path.with_name(path.name + suffix)


def export_columns(table: pd.DataFrame, latents: bool) -> pd.DataFrame:
    """Coordinates, the user's columns, the cluster label and a splat model's angles; latents,
    pose and errors too if ``latents``."""
    if latents:
        return table
    kept = (CLUSTER, *MODEL_ANGLES)
    return table.drop(columns=[c for c in derived_columns(table) if c not in kept])


def has_model_angles(table: pd.DataFrame) -> bool:
    """Whether a model that turns its pose gave the particles angles (``model_rot``, ...)."""
    return set(MODEL_ANGLES) <= set(table)


def angles_from_model(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with the model's angles as their angles (``rot``, ``tilt``, ``psi``, which the
    file formats write as theirs) in place of any imported; refused where a row has none. The
    model's angles are in the tomogram's frame, so a RELION 5 subtomogram orientation
    (``rlnTomoSubtomogramRot/Tilt/Psi``, which RELION composes with them) becomes none."""
    if not has_model_angles(rows):
        raise AffinityVAEError(
            "The particles have no angles from a model: embed them with a splat model that "
            "turns its pose"
        )
    missing = int(rows[list(MODEL_ANGLES)].isna().any(axis=1).sum())
    if missing:
        raise AffinityVAEError(
            f"{count(missing, 'particle')} to export {'has' if missing == 1 else 'have'} no "
            "angles from the model (not embedded): embed them, or export without the model's "
            "angles"
        )
    model = rows[list(MODEL_ANGLES)].to_numpy(dtype=float)
    angles = dict(zip(ANGLES, model.T, strict=True))
    frame = {column: 0.0 for column in SUBTOMOGRAM_ANGLES if column in rows}
    return rows.drop(columns=list(MODEL_ANGLES)).assign(**angles, **frame)


def without_angles(parts: dict[Path, pd.DataFrame], format_label: str) -> int:
    """How many particles of ``parts`` lack angles the others have (hand picks beside imported
    ones), which STAR files and Dynamo tables write as unaligned, with angles 0 (a CSV leaves
    them empty)."""
    if format_label not in ZERO_FOR_NO_ANGLES:
        return 0
    found = [rows[[a for a in ANGLES if a in rows]] for rows in parts.values()]
    return sum(int(angles.isna().any(axis=1).sum()) for angles in found if angles.shape[1])


def without_extracted_files(parts: dict[Path, pd.DataFrame], format_label: str) -> int:
    """How many particles of ``parts`` lack the extracted files (``rlnImageName``,
    ``rlnCtfImage``) the others have, which a STAR file is written without (RELION would read
    "nan" as a file name): the particles are to be extracted again."""
    if not format_label.endswith("STAR"):
        return 0
    found = [rows[unextracted_columns(rows)] for rows in parts.values()]
    return sum(int(files.isna().any(axis=1).sum()) for files in found)


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
        stem, suffix = path.name[: len(path.name) - len(path.suffix)], path.suffix
        return {
            path.with_name(f"{stem}_{name}{suffix}"): rows
            for name, rows in cluster_parts(table).items()
        }
    return {path: table}


def cluster_parts(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each cluster's rows by its name (``cluster3``; HDBSCAN's noise ``unclustered``)."""
    if CLUSTER not in table:
        raise AffinityVAEError("The particles are not clustered yet (Embed widget)")
    return {
        NOISE_NAME if label < 0 else f"cluster{label}": table[table[CLUSTER] == label]
        for label in np.unique(table[CLUSTER])
    }


def stale_cluster_files(parts: dict[Path, pd.DataFrame], path: Path) -> list[Path]:
    """Files of an earlier export of each cluster to ``path`` whose clusters this one has not
    (``name_cluster3.star`` after clustering again into 3): left, they would read as clusters
    of these particles."""
    stem, suffix = path.name[: len(path.name) - len(path.suffix)], path.suffix
    pattern = re.compile(rf"{re.escape(stem)}_(cluster\d+|{NOISE_NAME}){re.escape(suffix)}")
    found = path.parent.glob(f"{glob.escape(stem)}_*{glob.escape(suffix)}")
    return sorted(p for p in found if pattern.fullmatch(p.name) and p not in parts and p.is_file())


def index_path(path: Path, format_label: str, project: Project | None) -> Path | None:
    """The ``.doc`` index a Dynamo table of a project's particles gets beside it, if any."""
    return path.with_suffix(".doc") if project is not None and format_label == DYNAMO else None


def write_parts(
    parts: dict[Path, pd.DataFrame],
    format_label: str,
    *,
    voxel_size: float | None,
    tomogram_shape: tuple[int, int, int] | None,
    star_blocks: dict[str, dict] | None = None,
    project: Project | None = None,
    index: Path | None = None,
) -> list[Path]:
    """Write every part into its file, all or none; a file that cannot be written is named in
    a :class:`ParticleFileError`. A STAR file is written after ``star_blocks`` (those of the
    STAR file the particles came from, as their ``attrs`` carry them). Rows of a ``project`` may
    come from several tomograms:
    RELION 5 counts each from its own tomogram's centre, and a Dynamo table numbers the
    tomograms in the project's order, listed in the ``.doc`` ``index`` (:func:`index_path` of
    the file name the user gave) beside it, each by its file of the map chosen."""
    first = next(iter(parts))
    folder = first.parent
    check_writable(first, ParticleFileError)  # a missing folder, or a file where one would be
    if any(p.is_dir() for p in parts):
        raise ParticleFileError(first, "a folder of that name is in the way")
    flavour = FORMATS[format_label][1]
    names = [p.name for p in parts] + ([index.name] if index else [])
    try:
        with atomic_files(folder, names) as staged:
            for tmp, (target, rows) in zip(staged, parts.items(), strict=False):
                try:
                    rows = rows.reset_index(drop=True)
                    if project is None:
                        write_particles(
                            rows,
                            tmp,
                            voxel_size=voxel_size,
                            tomogram_shape=tomogram_shape,
                            star_flavour=flavour,
                            star_blocks=star_blocks,
                        )
                    else:
                        _write_project_rows(project, rows, tmp, format_label)
                except InputFileError as err:  # name the user's file, not the staged one
                    raise ParticleFileError(target, err.problem) from None
            if index:
                lines = [  # each tomogram's map chosen (the one embedded, viewed)
                    f"{i} {e.files.get(project.map) or e.path or e.name}"
                    for i, e in enumerate(project.tomograms.values(), 1)
                ]
                staged[-1].write_text("\n".join(lines) + "\n")
    except OSError as err:
        raise unwritable(first, err, ParticleFileError) from None
    return list(parts) + ([index] if index else [])


def _write_project_rows(project: Project, rows: pd.DataFrame, path: Path, label: str) -> None:
    if label == "RELION 5 STAR":
        write_relion5(project, rows, path)
        return
    _refuse_unplaced(project, rows, path, label)
    if label == "RELION 4 STAR":  # in the pixels of the project's particle file, or binning
        write_relion4(project, rows, path)
        return
    # in the pixels the project's files were read in; only their ratio to the voxels counts
    pixels = {} if project.binning == 1 else {"voxel_size": 1.0, "pixel_size": 1 / project.binning}
    if label == DYNAMO:
        numbers = {name: str(i) for i, name in enumerate(project.tomograms, 1)}
        rows = rows.assign(**{TOMO_NAME: rows[TOMO_NAME].astype(str).map(numbers)})
    elif label in ONE_TOMOGRAM and rows[TOMO_NAME].nunique() > 1:
        raise ParticleFileError(
            path,
            f"{ONE_TOMOGRAM[label]} hold one tomogram's particles; these come from "
            f"{rows[TOMO_NAME].nunique()}: choose RELION or Dynamo, or select in one tomogram",
        )
    write_particles(rows.drop(columns=[TOMOGRAM_MISSING], errors="ignore"), path, **pixels)


def _refuse_unplaced(project: Project, rows: pd.DataFrame, path: Path, label: str) -> None:
    """Refuse rows without a position in voxels (their tomogram not listed, or its voxel size
    unknown, where the file gave Angstrom), which would be written empty; and in a Dynamo table
    rows of a tomogram the project does not list, which its ``.doc`` cannot number."""
    names = rows[TOMO_NAME].astype(str)
    unplaced = names[rows[list(AXES)].isna().any(axis=1)].unique()
    if len(unplaced):
        listed = ", ".join(unplaced[:5]) + (", ..." if len(unplaced) > 5 else "")
        raise ParticleFileError(
            path,
            f"the particles of {listed} have no position in voxels (is the tomogram listed, "
            "with its voxel size?): leave them out, or list the tomogram",
        )
    unlisted = [n for n in names.unique() if n not in project.tomograms]
    if label == DYNAMO and unlisted:
        raise ParticleFileError(
            path,
            f"{', '.join(unlisted[:5])} {'is' if len(unlisted) == 1 else 'are'} not among the "
            "project's tomograms, which the table numbers: leave their particles out, or "
            "choose RELION or CSV",
        )


def copick_sessions(
    table: pd.DataFrame, what: str, selection: np.ndarray, session: str
) -> dict[str, pd.DataFrame]:
    """:func:`export_parts` as copick sessions: the selection or all particles in ``session``,
    each cluster in ``session-cluster3`` (noise in ``session-unclustered``)."""
    if what == EACH_CLUSTER:
        return {f"{session}-{name}": rows for name, rows in cluster_parts(table).items()}
    (rows,) = export_parts(table, what, selection, Path(session)).values()
    return {session: rows}
