"""Open a project from whatever the user gives, files told apart by their content."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_affinity_vae.errors import AffinityVAEError, ParticleFileError
from napari_affinity_vae.io.compressed import uncompressed_suffix
from napari_affinity_vae.io.omezarr import is_ome_zarr
from napari_affinity_vae.io.particles import PARTICLE_SUFFIXES
from napari_affinity_vae.io.projects.copick import PickSetChoice, is_copick_config, read_copick
from napari_affinity_vae.io.projects.dynamo import INDEX_SUFFIXES, read_dynamo_project
from napari_affinity_vae.io.projects.folder import (
    read_folder,
    read_named,
    read_named_in,
    read_named_table,
    read_parquet_named,
    read_single,
)
from napari_affinity_vae.io.projects.portal import is_portal_download, read_portal
from napari_affinity_vae.io.projects.project import Project, TomogramEntry
from napari_affinity_vae.io.projects.relion5 import (
    PARTICLES_FILE,
    TOMOGRAMS_FILE,
    find_root,
    is_tomogram_set,
    optimisation_set,
    read_blocks,
    read_parquet_project,
    read_relion5,
    read_tomogram_set,
)
from napari_affinity_vae.io.star import CENTRED_COLUMNS
from napari_affinity_vae.io.tomogram import TOMOGRAM_SUFFIXES

SOURCES = (
    "a RELION 5 tomograms.star and/or particles STAR, or an optimisation set; "
    "a STAR file naming tomograms with their folder or a tomograms.star; a CSV naming them "
    "(tomo_name) with their folder; a Parquet table "
    "`avae embed` wrote with the "
    "tomograms.star it came from, or with the folder of its tomograms; a Dynamo table with "
    "its .doc or .vll; a copick configuration (.json); a CryoET Data Portal download (its "
    "folder); "
    "a folder of tomograms with coordinate files of the same stems; or a tomogram with a "
    "coordinate file"
)


PAIRED = {"coordinates", "star particles", "relion5 particles", "dynamo table"}  # a tomogram's
PICKED = ({"copick config"}, {"portal download"})  # of pick sets and maps to choose among


def check_sources(paths: list[str | Path]) -> list[Path]:
    """The files (and folder) of a project, refused at once (before any question or work) if
    one is missing, is of no kind a project is opened from, or two are of one kind; made
    absolute, as the tomograms' paths must hold wherever they are opened."""
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.exists():
            raise ParticleFileError(path, "no such file or folder")
    paths = [p.resolve() for p in paths]
    if len({_kind(p) for p in paths}) != len(paths):
        raise ParticleFileError(paths[0], f"give one file of each kind: {SOURCES}")
    return paths


def open_project(
    paths: list[Path],
    *,
    binning: float = 1.0,
    voxel_size: float | None = None,
    pick_sets: PickSetChoice | None = None,
    tomo_name: str | None = None,
    skip_unusable: bool = False,
) -> Project:
    """A project from one of the :data:`SOURCES`. ``binning`` divides pixel coordinates
    (RELION 4, Dynamo, CSV, ... picked on tomograms ``binning`` times finer than those opened);
    ``voxel_size`` (Angstrom) replaces the tomograms' headers' (RELION 5's STAR files give
    theirs); ``pick_sets`` chooses the tomograms and picks of a copick project or a Portal
    download; ``tomo_name`` the particles of a tomogram's coordinate file holding several;
    ``skip_unusable`` leaves out rows with NaN coordinates or outside their tomogram (with a
    warning), where they would otherwise be an error (a tomogram's coordinate file) or keep
    their tomogram from being embedded (a project of several)."""
    if voxel_size is not None and not (np.isfinite(voxel_size) and voxel_size > 0):
        raise AffinityVAEError(f"A voxel size must be a positive number of Å, got {voxel_size}")
    paths = check_sources(paths)
    kinds = {_kind(p): p for p in paths}
    if pick_sets not in (None, PickSetChoice()) and set(kinds) not in PICKED:
        listed = ", ".join(f"{p.name} ({k})" for k, p in kinds.items())
        raise AffinityVAEError(
            f"an object, user, session, voxel spacing or tomogram type chooses among the picks "
            f"and maps of a copick project or CryoET Data Portal download, not of {listed}"
        )
    given = tuple(paths)
    pair = "tomogram" in kinds and set(kinds) - {"tomogram"} <= PAIRED
    if not pair and tomo_name is not None:
        raise AffinityVAEError(
            "--tomo-name is for a tomogram with its coordinate file; a project's particles "
            "belong to its tomograms by name already"
        )
    if pair:
        others = [p for k, p in kinds.items() if k != "tomogram"]
        coordinates = others[0] if others else None
        return read_single(
            kinds["tomogram"], coordinates, voxel_size, binning, tomo_name, skip_unusable
        )
    project = _of_many(kinds, given, binning, voxel_size, pick_sets, skip_unusable)
    return project.without_unusable() if skip_unusable else project


def _of_many(
    kinds: dict[str, Path],
    given: tuple[Path, ...],
    binning: float,
    voxel_size: float | None,
    pick_sets: PickSetChoice | None,
    skip_unusable: bool,
) -> Project:
    """The project of the files ``kinds`` names, other than a tomogram with its coordinates
    (a folder's coordinate files read with ``skip_unusable``)."""
    if "copick config" in kinds and len(kinds) == 1:
        return read_copick(kinds["copick config"], pick_sets)
    if "portal download" in kinds and len(kinds) == 1:
        return read_portal(kinds["portal download"], pick_sets)
    if "optimisation set" in kinds and len(kinds) == 1:
        return _optimisation_set(kinds["optimisation set"])
    if set(kinds) <= {"tomogram set", "relion5 particles"}:
        return read_relion5(kinds.get("relion5 particles"), kinds.get("tomogram set"), given)
    if set(kinds) == {"tomogram set", "star particles"}:  # pixels of RELION 4, Warp, pytom
        tomograms = kinds["tomogram set"]
        listed = read_tomogram_set(tomograms)
        return read_named_in(
            kinds["star particles"],
            lambda names: {
                **listed,
                **{n: _unlisted(n, tomograms) for n in names if n not in listed},
            },
            tomograms,
            binning,
        )
    if set(kinds) == {"tomogram set", "parquet particles"}:
        return read_parquet_project(kinds["parquet particles"], kinds["tomogram set"], given)
    if set(kinds) in ({"folder", "relion5 particles"}, {"folder", "star particles"}):
        star = kinds.get("relion5 particles") or kinds["star particles"]
        return read_named(star, kinds["folder"], binning, voxel_size)
    if set(kinds) == {"folder", "parquet particles"}:
        return read_parquet_named(kinds["parquet particles"], kinds["folder"], voxel_size)
    if set(kinds) == {"folder"}:
        return read_folder(kinds["folder"], voxel_size, binning, skip_unusable)
    if set(kinds) == {"folder", "coordinates"}:
        folder, table = kinds["folder"], kinds["coordinates"]
        return read_named_table(table, folder, voxel_size, binning, skip_unusable)
    if set(kinds) == {"dynamo table", "dynamo index"}:
        table, index = kinds["dynamo table"], kinds["dynamo index"]
        return read_dynamo_project(table, index, voxel_size, binning)
    listed = ", ".join(f"{p.name} ({k})" for k, p in kinds.items())
    raise ParticleFileError(given[0], f"cannot make a project of {listed}; give {SOURCES}")


def _unlisted(name: str, tomograms: Path) -> TomogramEntry:
    return TomogramEntry(name, {}, None, None, problem=f"not in {tomograms}")


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if is_ome_zarr(path):
        return "tomogram"
    if is_portal_download(path):
        return "portal download"
    if path.is_dir():
        return "folder"
    if uncompressed_suffix(path) in TOMOGRAM_SUFFIXES:  # .mrc.gz too
        return "tomogram"
    if is_copick_config(path):
        return "copick config"
    if suffix in INDEX_SUFFIXES:
        return "dynamo index"
    if suffix == ".tbl":
        return "dynamo table"
    if suffix == ".parquet":
        return "parquet particles"
    if suffix == ".star":
        blocks = read_blocks(path)
        if is_tomogram_set(blocks):
            return "tomogram set"
        if optimisation_set(blocks):
            return "optimisation set"
        centred = any(CENTRED_COLUMNS["x"] in b for b in blocks.values() if hasattr(b, "columns"))
        return "relion5 particles" if centred else "star particles"
    if suffix in PARTICLE_SUFFIXES:
        return "coordinates"
    raise ParticleFileError(path, f"not a project file; give {SOURCES}")


def _optimisation_set(path: Path) -> Project:
    files = optimisation_set(read_blocks(path))
    root = find_root(path.parent, list(files.values()))
    named = {key: root / files[key] for key in (PARTICLES_FILE, TOMOGRAMS_FILE) if key in files}
    for file in named.values():
        if not file.is_file():
            raise ParticleFileError(path, f"names {file}, which does not exist")
    return read_relion5(named.get(PARTICLES_FILE), named.get(TOMOGRAMS_FILE), (path,))
