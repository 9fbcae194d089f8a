"""Projects of tomogram files matched by name: a particle STAR naming tomograms (``rlnTomoName``)
with a folder of them, a folder of tomograms each with a coordinate file of the same stem, or one
tomogram."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from napari_affinity_vae.errors import ParticleFileError
from napari_affinity_vae.io.frame import CoordinateFrame, binned_pixel_size
from napari_affinity_vae.io.omezarr import is_ome_zarr
from napari_affinity_vae.io.particles import (
    PARTICLE_SUFFIXES,
    read_particles,
    read_particles_by_tomogram,
    tomogram_names,
)
from napari_affinity_vae.io.projects.project import (
    Project,
    TomogramEntry,
    centred_origins,
    read_shape,
    to_voxels,
)
from napari_affinity_vae.io.projects.relion5 import read_blocks, read_particle_parquet
from napari_affinity_vae.io.star import (
    CENTRED_COLUMNS,
    COORDINATE_COLUMNS,
    PIXEL_COLUMNS,
    TOMO_COLUMN,
    carried_blocks,
    fractional,
    from_star,
    gives_pixel_size,
    origin_shifts,
    particle_block_name,
    pixel_coordinates,
    pixel_scale,
)
from napari_affinity_vae.io.tomogram import TOMOGRAM_SUFFIXES, ZARR_SUFFIX, tomogram_stem
from napari_affinity_vae.io.validate import numeric_columns
from napari_affinity_vae.schema import (
    ANGSTROM_ORIGIN,
    AXES,
    COORDINATE_BINNING,
    TOMO_NAME,
    tomogram_codes,
)

SEPARATORS = ("_", ".", "-")  # what may follow a tomogram's name in its file's stem
WARP_SUFFIX = ".tomostar"  # Warp's rlnTomoName: its tilt series' settings file
STACK_SUFFIXES = (".st", ".mrcs")  # tilt series and stacks: never a folder's tomogram
STACK_ENDINGS = ("_ali", "_preali", "_fid", "_erase")  # IMOD's aligned and working stacks


def tomogram_files(folder: Path) -> dict[str, Path]:
    """The tomograms in ``folder`` (MRC files, OME-Zarr folders) by stem, sorted; of one stem's
    files (``TS_01.mrc``, ``TS_01.rec``), the suffix first in ``TOMOGRAM_SUFFIXES``, then Zarr.
    Tilt series and stacks (IMOD's ``TS_01.st``, ``TS_01_ali.mrc``) are no tomograms."""
    suffixes = (*TOMOGRAM_SUFFIXES, ZARR_SUFFIX)
    files = [
        p
        for p in folder.iterdir()
        if (
            ((p.suffix.lower() in TOMOGRAM_SUFFIXES and p.is_file()) or is_ome_zarr(p))
            and p.suffix.lower() not in STACK_SUFFIXES
            and not tomogram_stem(p).endswith(STACK_ENDINGS)
        )
    ]
    rank = {s: i for i, s in enumerate(suffixes)}  # an OME-Zarr folder may have no suffix
    files.sort(
        key=lambda p: (tomogram_stem(p), rank.get(p.suffix.lower(), len(rank))), reverse=True
    )
    return dict(sorted({tomogram_stem(p): p for p in files}.items()))


def entry(
    name: str, path: Path | None, voxel_size: float | None = None, problem: str | None = None
) -> TomogramEntry:
    """A tomogram described by its file's header (``voxel_size`` overrides the header's); without
    a file, ``problem`` says why."""
    if path is None:
        problem = problem or "no tomogram file of this name"
        return TomogramEntry(name, {}, voxel_size, None, problem=problem)
    shape, header_size, problem = read_shape(path, voxel_size)
    size = voxel_size or header_size
    if problem is None and size is None:
        problem = f"{path}: the header gives no voxel size (0, infinite or not a number)"
    return TomogramEntry(name, {"tomogram": path}, size, shape, problem=problem)


def matched_entries(
    names: list[str], files: dict[str, Path], voxel_size: float | None = None
) -> dict[str, TomogramEntry]:
    """Each name's tomogram: the file whose stem equals it, or else the one stem that starts
    with it and a separator, or ends with a separator and it (``TS_1`` takes ``TS_1_rec`` or
    ``rec_TS_1`` but never ``TS_10``), Warp's ``TS_1.tomostar`` as ``TS_1``; a name two such
    files could be is said to be so."""
    entries = {}
    for name in names:
        stem = name[: -len(WARP_SUFFIX)] if name.lower().endswith(WARP_SUFFIX) else name
        path, problem = files.get(stem), None
        if path is None:
            candidates = _stems_naming(stem, files)
            if len(candidates) == 1:
                path = candidates[0]
            elif candidates:
                listed = ", ".join(p.name for p in candidates)
                problem = (
                    f"{len(candidates)} tomogram files could be it ({listed}): rename all but one"
                )
        entries[name] = entry(name, path, voxel_size, problem)
    return entries


def _stems_naming(name: str, files: dict[str, Path]) -> list[Path]:
    """The files whose stem is ``name`` with a suffix or a prefix (:func:`names_with_more`)."""
    return [p for stem, p in files.items() if names_with_more(stem, name)]


def names_with_more(longer: str, name: str) -> bool:
    """Whether ``longer`` is ``name`` with a suffix after a separator (``TS_1_rec``, Warp's
    ``TS_1.tomostar``), or with a prefix before one (RELION 5's ``rec_TS_1``); never ``TS_10``."""
    return (longer.startswith(name) and longer[len(name) :][:1] in SEPARATORS) or (
        longer.endswith(name) and longer[: -len(name)][-1:] in SEPARATORS
    )


def name_among(name: str | None, names: list[str]) -> str | None:
    """The name among ``names`` that a file gives tomogram ``name``'s particles: its own, or
    else the one name that is it with a prefix or suffix (Warp's ``TS_01.tomostar``,
    ``TS_01_rec``); None if none."""
    if name is None or name in names:
        return name
    alike = [n for n in names if names_with_more(n, name) or names_with_more(name, n)]
    return alike[0] if len(alike) == 1 else None


def read_named(
    particles: Path, folder: Path, binning: float = 1.0, voxel_size: float | None = None
) -> Project:
    """A STAR file of several tomograms' particles with a folder of the tomograms (matched by
    :func:`matched_entries`); coordinates as :func:`read_named_in` reads them."""
    files = tomogram_files(folder)
    return read_named_in(
        particles, lambda names: matched_entries(names, files, voxel_size), folder, binning
    )


def read_named_in(
    particles: Path,
    entries_of: Callable[[list[str]], dict[str, TomogramEntry]],
    tomograms: Path,
    binning: float = 1.0,
) -> Project:
    """A STAR file of several tomograms' particles, with the tomograms ``entries_of`` gives for
    the names it holds (``tomograms``: the folder or file they came from). RELION 4 pixel
    coordinates are scaled by the tilt-series pixel size data_optics gives, else divided by
    ``binning`` (coordinates of unbinned tilt series, tomograms binned); WarpTools' fractions
    by each tomogram's size; RELION 5 centred coordinates count from each tomogram's middle."""
    blocks = read_blocks(particles)
    block = blocks.pop(particle_block_name(particles, blocks)).reset_index(drop=True)
    if TOMO_COLUMN not in block:
        raise ParticleFileError(particles, f"no particle block with {TOMO_COLUMN} and coordinates")
    entries = entries_of(list(dict.fromkeys(block[TOMO_COLUMN].astype(str))))
    shift = origin_shifts(particles, block)  # x, y, z Angstrom
    origins = {}  # where the file's Angstrom count from, if it gave Angstrom
    if PIXEL_COLUMNS["x"] in block:
        xyz = pixel_coordinates(particles, block)
        known = {name: e.voxel_size or np.nan for name, e in entries.items()}
        sizes = block[TOMO_COLUMN].astype(str).map(known)
        moved = shift.any(axis=1)  # a shift needs the voxel size; no shift, none
        voxels = np.where(moved[:, None], shift / sizes.to_numpy()[:, None], 0.0)
        given = None if binning == 1 else 1 / binning
        optics = blocks.get("optics")
        if fractional(particles, block):  # WarpTools: of each one's tomogram's size
            scale, binned = _tomogram_sizes(entries, block[TOMO_COLUMN]), 1.0
        else:
            scale = pixel_scale(particles, optics, block, sizes.to_numpy(), given)
            scale = np.reshape(scale, (-1, 1))
            binned = binning
            if gives_pixel_size(particles, optics, block):  # pixels of a stated size: Angstrom
                binned, origins = 1.0, dict.fromkeys(entries, (0.0, 0.0, 0.0))
        coords = pd.DataFrame((xyz * scale - voxels)[:, ::-1], columns=list(AXES))
    else:  # Angstrom: no binning
        xyz = numeric_columns(particles, block, [CENTRED_COLUMNS[a] for a in "xyz"])
        coords, binned = to_voxels(entries, block[TOMO_COLUMN], xyz - shift), 1.0
        origins = centred_origins(entries)
    rest = from_star(block.drop(columns=list(COORDINATE_COLUMNS), errors="ignore"))
    table = pd.concat([coords, rest], axis=1)
    return Project(
        entries,
        table,
        (particles, tomograms),
        carried_blocks(blocks),
        binning=binned,
        angstrom_origins=origins,
    )


def _tomogram_sizes(entries: dict[str, TomogramEntry], names: pd.Series) -> np.ndarray:
    """Each particle's tomogram's size (x, y, z voxels; 1 where it was not found, so that its
    coordinates stay as they are)."""
    sizes = {n: e.shape[::-1] for n, e in entries.items() if e.shape is not None}
    codes, distinct = tomogram_codes(names)  # looked up once per tomogram, not per particle
    return np.array([sizes.get(n, (1, 1, 1)) for n in distinct], dtype=float).reshape(-1, 3)[codes]


def read_parquet_named(particles: Path, folder: Path, voxel_size: float | None = None) -> Project:
    """The Parquet twin ``avae embed`` wrote of a project of tomograms matched by name (a folder,
    a Dynamo table, a STAR file naming them), with the folder of its tomograms."""
    table = read_particle_parquet(particles)
    names = list(dict.fromkeys(table[TOMO_NAME].astype(str)))
    entries = matched_entries(names, tomogram_files(folder), voxel_size)
    return Project(entries, table, (particles, folder))


def read_folder(
    folder: Path, voxel_size: float | None = None, binning: float = 1.0, skip: bool = False
) -> Project:
    """Every tomogram of ``folder``, with the particles of a coordinate file of the same stem
    (any format) where there is one; pixel coordinates are divided by ``binning``; with
    ``skip``, but for rows with NaN or outside their tomogram (otherwise an error)."""
    files = tomogram_files(folder)
    if not files:
        raise ParticleFileError(folder, "holds no tomograms (.mrc, .rec, .map, OME-Zarr)")
    coordinate_files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in PARTICLE_SUFFIXES or not path.is_file():
            continue
        if path.stem in coordinate_files:
            other = coordinate_files[path.stem].name
            raise ParticleFileError(
                folder, f"{other} and {path.name} both give {path.stem}'s particles: keep one"
            )
        coordinate_files[path.stem] = path
    named = matched_entries(list(coordinate_files), files, voxel_size)
    orphans = sorted(coordinate_files[n].name for n, e in named.items() if not e.files)
    if orphans:
        warnings.warn(
            f"{folder}: no tomogram of the name of {', '.join(orphans)}; their particles are "
            "left out",
            stacklevel=3,
        )
    named = {n: e for n, e in named.items() if e.files}
    taken = {e.files["tomogram"] for e in named.values()}
    entries = {n: entry(n, p, voxel_size) for n, p in files.items() if p not in taken} | named
    coordinate_files = {n: p for n, p in coordinate_files.items() if n in named}
    return _with_coordinates(entries, coordinate_files, (folder,), binning, own=True, skip=skip)


def read_named_table(
    particles: Path,
    folder: Path,
    voxel_size: float | None = None,
    binning: float = 1.0,
    skip: bool = False,
) -> Project:
    """A coordinate file naming its particles' tomograms (a CSV's ``tomo_name``, as a project's
    CSV export writes) with a folder of the tomograms, each name matched as a STAR file's
    (:func:`matched_entries`); the folder's other tomograms come without particles."""
    names = tomogram_names(particles)
    if not names:
        raise ParticleFileError(
            particles,
            "names no tomograms (a tomo_name column): give it with its tomogram, or name it "
            "after its tomogram in the folder",
        )
    files = tomogram_files(folder)
    named = matched_entries(names, files, voxel_size)
    taken = {e.files["tomogram"] for e in named.values() if e.files}
    entries = {n: entry(n, p, voxel_size) for n, p in files.items() if p not in taken} | named
    found = dict.fromkeys(names, particles)
    return _with_coordinates(entries, found, (particles, folder), binning, own=True, skip=skip)


def read_single(
    tomogram: Path,
    coordinates: Path | None = None,
    voxel_size: float | None = None,
    binning: float = 1.0,
    tomo_name: str | None = None,
    skip_unusable: bool = False,
) -> Project:
    """One tomogram, with the particles of one coordinate file (pixel coordinates divided by
    ``binning``; of a file holding several tomograms, those of ``tomo_name``; with
    ``skip_unusable``, but for rows with NaN or outside the tomogram): a project of one."""
    name = tomogram_stem(tomogram)
    entries = {name: entry(name, tomogram, voxel_size)}
    found = {} if coordinates is None else {name: coordinates}
    sources = (tomogram,) if coordinates is None else (tomogram, coordinates)
    return _with_coordinates(entries, found, sources, binning, tomo_name, skip=skip_unusable)


def _with_coordinates(
    entries: dict[str, TomogramEntry],
    files: dict[str, Path],
    sources: tuple[Path, ...],
    binning: float,
    tomo_name: str | None = None,
    own: bool = False,
    skip: bool = False,
) -> Project:
    """The tomograms ``entries`` with the particles of their coordinate ``files`` (with
    ``own``, of a file matched by name that holds several tomograms, the tomogram's own; with
    ``skip``, but for rows with NaN or outside the tomogram)."""
    tables, binned, origins = [], 1.0, {}
    frames = {
        name: CoordinateFrame(e.voxel_size, e.shape, binned_pixel_size(e.voxel_size, binning))
        for name, e in entries.items()
    }
    read: dict[str, pd.DataFrame] = {}
    for path in dict.fromkeys(files.values()):
        names = [n for n, p in files.items() if p == path]
        if own and tomo_name is None and len(tomogram_names(path)) > 1:  # each one's own
            shared = {n: frames[n] for n in names}
            read |= read_particles_by_tomogram(path, shared, drop_nan=skip, drop_outside=skip)
            continue
        for name in names:
            frame = frames[name]
            read[name] = read_particles(
                path,
                voxel_size=frame.voxel_size,
                tomogram_shape=frame.shape,
                pixel_size=frame.pixel_size,
                tomo_name=tomo_name,
                drop_nan=skip,
                drop_outside=skip,
            )
    for name in files:
        table = read[name]
        binned = table.attrs.get(COORDINATE_BINNING, binned)  # only where pixels took it
        if ANGSTROM_ORIGIN in table.attrs:
            origins[name] = table.attrs[ANGSTROM_ORIGIN]
        tables.append(table.drop(columns=[TOMO_NAME], errors="ignore").assign(**{TOMO_NAME: name}))
    empty = pd.DataFrame({TOMO_NAME: pd.Series(dtype=str), **{a: [] for a in AXES}})
    particles = pd.concat(tables, ignore_index=True) if tables else empty
    return Project(entries, particles, sources, binning=binned, angstrom_origins=origins)
