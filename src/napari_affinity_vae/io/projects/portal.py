"""CryoET Data Portal downloads as projects, read from disk without the network. The Portal's
Python client (``Run.download_everything``, ``Dataset.download_everything``) mirrors its bucket:

- ``<dataset>/<run>/Reconstructions/VoxelSpacing<Å>/Tomograms/<id>/<run>.zarr`` (and ``.mrc``),
  with point annotations in ``.../VoxelSpacing<Å>/Annotations/<id>/<object>-<version>_point.ndjson``
  or ``_orientedpoint.ndjson`` beside their metadata ``<object>-<version>.json``;
- older downloads: ``<run>/Tomograms/VoxelSpacing<Å>/CanonicalTomogram/<run>.zarr`` and
  ``.../VoxelSpacing<Å>/Annotations/<id>-<object>-<version>_point.ndjson``.

Each run is a tomogram; each annotation file a pick set ("<object> by portal, session <id>").
Points are in voxels of their voxel spacing (x, y, z), scaled to the tomogram's when it is of
another; oriented points keep their rotation (the rotation of the reference onto the particle,
as copick's)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from napari_affinity_vae.errors import ParticleFileError
from napari_affinity_vae.io.orientation import matrices_to_angles
from napari_affinity_vae.io.projects.copick import (
    COPICK_OBJECT,
    COPICK_SESSION,
    COPICK_USER,
    PickSetChoice,
)
from napari_affinity_vae.io.projects.project import Project, TomogramEntry, read_shape
from napari_affinity_vae.schema import ANGLES, AXES, TOMO_NAME

PORTAL_USER = "portal"
SPACING = re.compile(r"VoxelSpacing(\d+(?:\.\d+)?)$")
SHAPES = ("_orientedpoint.ndjson", "_point.ndjson")
RUN_MARKERS = ("Reconstructions", "Tomograms")  # what a run folder holds, new layout and old


def is_portal_download(folder: Path) -> bool:
    """Whether ``folder`` is a run, a dataset or a folder of datasets the Portal's client wrote."""
    return folder.is_dir() and bool(run_folders(folder))


def run_folders(folder: Path) -> list[Path]:
    """The run folders at most two levels below ``folder`` (or ``folder`` itself), by name."""
    found = []
    for depth in ("", "*", "*/*"):
        for marker in RUN_MARKERS:
            found += [
                p.parent.parent for p in folder.glob(f"{depth}/{marker}/VoxelSpacing*".lstrip("/"))
            ]
    return sorted(set(found), key=lambda p: p.name)


def read_portal(folder: Path, choice: PickSetChoice | None = None) -> Project:
    """The runs as tomograms (the chosen voxel spacing, else each run's finest) and the chosen
    point annotations, of any spacing, as particles on their voxels, with every annotation's
    count."""
    folder, choice = Path(folder), choice or PickSetChoice()
    entries, tables, sets = {}, [], Counter()
    for run in run_folders(folder):
        if run.name in entries:
            raise ParticleFileError(folder, f"holds two runs named {run.name}; open one dataset")
        spacing = _spacing(run, choice.voxel_spacing)
        entries[run.name] = _entry(run.name, spacing, choice)
        for path, scale in _annotation_files(run, _size(spacing)) if spacing else []:
            key, table = _annotation(path, run.name)
            table[list(AXES)] *= scale  # on the voxels of the tomogram chosen
            sets[key] += len(table)
            if all(c in (None, k) for c, k in zip(choice.pick_set, key, strict=True)):
                tables.append(table)
    if not entries:
        raise ParticleFileError(folder, "holds no CryoET Data Portal runs")
    columns = [TOMO_NAME, *AXES, COPICK_OBJECT, COPICK_USER, COPICK_SESSION]
    particles = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)
    return Project(entries, particles, sources=(folder.resolve(),), pick_sets=dict(sets))


def _spacing(run: Path, wanted: float | None) -> Path | None:
    """The run's voxel-spacing folder with tomograms: ``wanted``, else the finest."""
    spacings = [
        (float(m.group(1)), p)
        for marker in RUN_MARKERS
        for p in (run / marker).glob("VoxelSpacing*")
        if (m := SPACING.search(p.name)) and _tomogram_files(p)
    ]
    if wanted is not None:
        spacings = [(size, p) for size, p in spacings if np.isclose(size, wanted)]
    return min(spacings, key=lambda s: s[0])[1] if spacings else None


def _tomogram_files(spacing: Path) -> dict[str, Path]:
    """The tomograms of a voxel spacing by kind: ``tomogram <id>`` (or ``canonical``), Zarr
    before MRC."""
    found = {}
    for path in sorted(spacing.glob("Tomograms/*/*.zarr")) + sorted(
        spacing.glob("Tomograms/*/*.mrc")
    ):
        found.setdefault(f"tomogram {path.parent.name}", path)
    for path in sorted(spacing.glob("CanonicalTomogram/*.zarr")) + sorted(
        spacing.glob("CanonicalTomogram/*.mrc")
    ):
        found.setdefault("canonical", path)
    return found


def _entry(name: str, spacing: Path | None, choice: PickSetChoice) -> TomogramEntry:
    if spacing is None:
        at = f" at {choice.voxel_spacing:g} Å" if choice.voxel_spacing is not None else ""
        return TomogramEntry(name, {}, choice.voxel_spacing, None, problem=f"no tomogram{at}")
    files = _tomogram_files(spacing)
    if choice.tomo_type is not None:
        files = {k: p for k, p in files.items() if choice.tomo_type in k}
    path = next(iter(files.values()), None)
    size = _size(spacing)
    if path is None:
        return TomogramEntry(name, {}, size, None, problem=f"no {choice.tomo_type} tomogram")
    shape, voxel_size, problem = read_shape(path)
    return TomogramEntry(name, files, voxel_size or size, shape, problem=problem)


def _size(spacing: Path) -> float:
    """The voxel size (Å) a voxel-spacing folder is named for."""
    return float(SPACING.search(spacing.name).group(1))


def _annotation_files(run: Path, size: float) -> list[tuple[Path, float]]:
    """The run's point annotations of every voxel spacing (annotators pick on any), each with
    the scale from its spacing's voxels to those of ``size``."""
    spacings = [
        p for marker in RUN_MARKERS for p in (run / marker).glob("VoxelSpacing*") if p.is_dir()
    ]
    return sorted(
        (p, _size(spacing) / size)
        for spacing in spacings
        if SPACING.search(spacing.name)
        for shape in SHAPES
        for p in spacing.glob(f"Annotations/**/*{shape}")
        if p.is_file()
    )


def _annotation(path: Path, run: str) -> tuple[tuple[str, str, str], pd.DataFrame]:
    """A point annotation's pick set and its points as particles (z, y, x voxels; angles of
    oriented points)."""
    stem = path.name[: -len(next(s for s in SHAPES if path.name.endswith(s)))]
    metadata = _metadata(path.with_name(stem + ".json"))
    if path.parent.name == "Annotations":  # the old layout: <id>-<object>-<version>
        identifier, _, rest = stem.partition("-")
    else:
        identifier, rest = path.parent.name, stem
    fallback = rest.rsplit("-", 1)[0].replace("_", " ")
    object_name = metadata.get("annotation_object", {}).get("name") or fallback
    try:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        zyx = np.array([[r["location"][a] for a in AXES] for r in records], dtype=float)
        rotations = [r["xyz_rotation_matrix"] for r in records if "xyz_rotation_matrix" in r]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ParticleFileError(path, f"not a Portal point annotation ({err})") from None
    table = pd.DataFrame(zyx.reshape(-1, 3), columns=list(AXES))
    if rotations and len(rotations) == len(records):
        table[list(ANGLES)] = matrices_to_angles(np.asarray(rotations, dtype=float))
    elif rotations:
        raise ParticleFileError(path, f"{len(rotations)} rotations for {len(records)} points")
    key = (object_name, PORTAL_USER, identifier)
    table.insert(0, TOMO_NAME, run)
    return key, table.assign(
        **dict(zip((COPICK_OBJECT, COPICK_USER, COPICK_SESSION), key, strict=True))
    )


def _metadata(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
