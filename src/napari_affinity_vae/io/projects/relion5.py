"""RELION 5 projects: ``tomograms.star`` (block ``global``) with a particles STAR in centred
Angstrom, or an optimisation set naming both.

RELION's conventions (``tomogram_set.cpp``, ``particle_set.cpp``): ``rlnTomoSizeX/Y/Z`` are
unbinned pixels of ``rlnTomoTiltSeriesPixelSize``; a tomogram binned by ``rlnTomoTomogramBinning``
has voxels of pixel size x binning, voxel i at unbinned pixel i x binning. A particle's unbinned
pixel position is ``centred / pixel + size / 2 - (A @ origin) / pixel``, with ``A`` the
``rlnTomoSubtomogram`` rotation (identity without those angles) and ``origin`` the
``rlnOrigin*Angst`` shift. Paths are relative to the RELION project folder, found by walking up
from the STAR file until they resolve.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from napari_affinity_vae.errors import InputFileError, ParticleFileError
from napari_affinity_vae.io import star
from napari_affinity_vae.io.atomic import atomic_path
from napari_affinity_vae.io.projects.project import (
    Project,
    TomogramEntry,
    centred_origins,
    read_shape,
    to_centred,
    to_voxels,
)
from napari_affinity_vae.io.star import (
    CENTRED_COLUMNS,
    ORIGIN_COLUMNS,
    TOMO_COLUMN,
    from_star,
    origin_shifts,
    particle_block_name,
    to_star,
)
from napari_affinity_vae.io.validate import numeric_column, numeric_columns
from napari_affinity_vae.schema import AXES, TOMO_NAME, TOMOGRAM_MISSING

TOMOGRAMS_BLOCK = "global"
FILE_COLUMNS = {  # the order to view them in
    "denoised": "rlnTomoReconstructedTomogramDenoised",
    "reconstructed": "rlnTomoReconstructedTomogram",
    "half1": "rlnTomoReconstructedTomogramHalf1",
    "half2": "rlnTomoReconstructedTomogramHalf2",
}
PIXEL_SIZE = "rlnTomoTiltSeriesPixelSize"
BINNING = "rlnTomoTomogramBinning"
SIZE_COLUMNS = ("rlnTomoSizeZ", "rlnTomoSizeY", "rlnTomoSizeX")
PARTICLES_FILE, TOMOGRAMS_FILE = "rlnTomoParticlesFile", "rlnTomoTomogramsFile"
NAMES_AS_TEXT = [TOMO_COLUMN, "rlnTomoParticleName", "rlnOpticsGroupName"]


def read_blocks(path: Path) -> dict[str, pd.DataFrame | dict]:
    """Every block of a STAR file, names as text."""
    return star.read_blocks(path, NAMES_AS_TEXT)


def is_tomogram_set(blocks: dict) -> bool:
    block = blocks.get(TOMOGRAMS_BLOCK)
    return isinstance(block, pd.DataFrame) and {TOMO_COLUMN, PIXEL_SIZE} <= set(block)


def optimisation_set(blocks: dict) -> dict[str, str] | None:
    """The files an optimisation set names (a key-value block, or a one-row loop), or None."""
    for block in blocks.values():
        row = block.iloc[0].to_dict() if isinstance(block, pd.DataFrame) and len(block) else block
        if isinstance(row, dict) and (PARTICLES_FILE in row or TOMOGRAMS_FILE in row):
            return {k: str(v) for k, v in row.items() if str(v) not in ("", '""', "nan")}
    return None


def find_root(start: Path, relative: list[str]) -> Path:
    """The folder that relative RELION paths are relative to: ``start`` or the first parent in
    which one of them exists (``start`` if none does)."""
    paths = [p for p in relative if p and not Path(p).is_absolute()]
    for folder in (start, *start.parents):
        if any((folder / p).exists() for p in paths):
            return folder
    return start


def read_tomogram_set(path: Path) -> dict[str, TomogramEntry]:
    """The tomograms of a ``tomograms.star``, in file order."""
    blocks = read_blocks(path)
    if not is_tomogram_set(blocks):
        raise ParticleFileError(
            path,
            f"not a RELION 5 tomogram set: no data_{TOMOGRAMS_BLOCK} block with "
            f"{TOMO_COLUMN} and {PIXEL_SIZE}",
        )
    table = blocks[TOMOGRAMS_BLOCK]
    repeated = table[TOMO_COLUMN].astype(str)
    repeated = sorted(set(repeated[repeated.duplicated()]))
    if repeated:
        raise ParticleFileError(path, f"names tomogram(s) {', '.join(repeated)} more than once")
    columns = [c for c in FILE_COLUMNS.values() if c in table]
    root = find_root(path.parent, [str(v) for c in columns for v in table[c]])
    pixel = numeric_column(path, table, PIXEL_SIZE)
    binning = numeric_column(path, table, BINNING) if BINNING in table else pixel * 0 + 1
    entries = {}
    for i, name in enumerate(table[TOMO_COLUMN].astype(str)):
        files = {
            kind: root / str(table[column].iloc[i])
            for kind, column in FILE_COLUMNS.items()
            if column in table and str(table[column].iloc[i]) not in ("", "nan")
        }
        sizes = None
        if all(c in table for c in SIZE_COLUMNS):
            sizes = np.array([float(table[c].iloc[i]) for c in SIZE_COLUMNS])
        entries[name] = _entry(name, files, float(pixel.iloc[i]), float(binning.iloc[i]), sizes)
    return entries


def _entry(
    name: str, files: dict[str, Path], pixel: float, binning: float, sizes: np.ndarray | None
) -> TomogramEntry:
    """A tomogram at ``pixel`` x ``binning`` Angstrom (where those are not positive numbers,
    its header's voxel size, with a warning), with the files that open (a problem if none
    does, or no voxel size is known); its shape from the first of them, else from the unbinned
    ``sizes`` (z, y, x) as RELION's reconstruction rounds them."""
    voxel = pixel * binning
    given = bool(np.isfinite(voxel) and voxel > 0 and binning > 0)
    readable, problems, shape, headers = {}, {}, None, []
    for kind, file in files.items():
        found, header, problem = read_shape(file, voxel if given else None)
        if problem:
            problems[kind] = problem
            continue
        readable[kind], shape = file, shape or found
        headers.append(header)
        if given and header and not np.isclose(header, voxel, rtol=0.01):
            warnings.warn(
                f"{file}: its header gives {header:g} Å voxels, tomograms.star "
                f"{voxel:g} Å (pixel size x binning), which is used: if the header "
                "is right, the tomogram was binned otherwise and its particles will not fit",
                stacklevel=2,
            )
    problem = None if readable else next(iter(problems.values()), "names no tomogram file")
    if not given:
        stated = f"tomograms.star gives {name} a pixel size of {pixel:g} Å and binning {binning:g}"
        voxel = next((h for h in headers if h), None)
        if voxel:
            warnings.warn(f"{stated}: its header's {voxel:g} Å voxels are used", stacklevel=2)
        else:
            problem = problem or f"{stated}, and its header gives no voxel size"
    if shape is None and sizes is not None and given:
        z, y, x = sizes / binning
        shape = (int(z), int(y + 0.5), int(x + 0.5))
    centre = None if sizes is None or not given else tuple(sizes / 2 / binning)
    unreadable = problems if readable else {}
    return TomogramEntry(name, readable or files, voxel, shape, centre, problem, unreadable)


def read_relion5(
    particles: Path | None, tomograms: Path | None, sources: tuple[Path, ...] = ()
) -> Project:
    """A project from a particles STAR (centred Angstrom) and/or a ``tomograms.star``. Without
    the tomogram set, particles are counted per tomogram but have no voxel positions."""
    entries = read_tomogram_set(tomograms) if tomograms else {}
    notes, origins = [], centred_origins(entries)
    if particles is None:
        table, blocks = pd.DataFrame({TOMO_NAME: pd.Series(dtype=str)}), {}
        table[["z", "y", "x"]] = np.zeros((0, 3))
    else:
        table, blocks = read_centred_particles(particles, entries)
    if tomograms is None:
        notes.append("positions need the tomograms (tomograms.star): none were given")
    return Project(entries, table, sources, blocks, notes, angstrom_origins=origins)


def read_parquet_project(particles: Path, tomograms: Path, sources: tuple[Path, ...]) -> Project:
    """A project whose particle table is a Parquet file ``avae embed`` wrote (``tomo_name`` and
    z, y, x in each tomogram's voxels, with any other columns), with its ``tomograms.star``: a
    million particles open in a fraction of a second."""
    return Project(read_tomogram_set(tomograms), read_particle_parquet(particles), sources)


def read_particle_parquet(path: Path) -> pd.DataFrame:
    """The particle table of a Parquet file ``avae embed`` wrote: ``tomo_name``, z, y, x in
    each tomogram's voxels, and any other columns."""
    try:
        table = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for files it cannot read
        raise ParticleFileError(path, f"not a readable Parquet file ({err})") from None
    missing = [c for c in (TOMO_NAME, *AXES) if c not in table]
    if missing:
        raise ParticleFileError(path, f"no {', '.join(missing)} column: not a particle table")
    return table.drop(columns=[TOMOGRAM_MISSING], errors="ignore").reset_index(drop=True)


def read_centred_particles(
    path: Path, entries: dict[str, TomogramEntry]
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame | dict]]:
    """The particle block in voxels of each tomogram (origin shifts applied), and the file's
    other blocks."""
    blocks = read_blocks(path)
    name = particle_block_name(path, blocks)
    if CENTRED_COLUMNS["x"] not in blocks[name]:
        raise ParticleFileError(
            path, "no RELION 5 particles: no block with rlnCenteredCoordinateX/Y/ZAngst"
        )
    block = blocks.pop(name).reset_index(drop=True)
    if TOMO_COLUMN not in block:
        raise ParticleFileError(path, f"no {TOMO_COLUMN} column: whose particles are these?")
    xyz = numeric_columns(path, block, [CENTRED_COLUMNS[a] for a in "xyz"])
    coords = to_voxels(entries, block[TOMO_COLUMN], np.nan_to_num(xyz - origin_shifts(path, block)))
    coords[np.isnan(xyz).any(axis=1)] = np.nan
    rest = block.drop(
        columns=[*CENTRED_COLUMNS.values(), *ORIGIN_COLUMNS.values()], errors="ignore"
    )
    table = pd.concat([coords, from_star(rest)], axis=1)
    return table, star.carried_blocks(blocks)


def write_relion5(project: Project, particles: pd.DataFrame, path: Path) -> Path:
    """Particles of any of the project's tomograms as one RELION 5 STAR (centred Angstrom), with
    the particle file's other blocks (``general``, ``optics``) and its unknown columns. Origin
    shifts were applied when reading, so none are written. Particles of a tomogram whose voxel
    size or size is unknown (its file missing) are refused, rather than written without a place."""
    check_centred(project, particles, path)
    centred = to_centred(project.tomograms, particles)
    coordinates = {CENTRED_COLUMNS[a]: centred[:, i] for i, a in enumerate("xyz")}
    rows = particles.drop(columns=[TOMOGRAM_MISSING], errors="ignore")
    rows = star.in_optics_groups(path, rows, project.blocks.get("optics"))  # a hand pick's
    out = to_star(path, rows, coordinates)
    return write_blocks(path, {**project.blocks, "particles": out})


def check_centred(project: Project, particles: pd.DataFrame, path: Path) -> None:
    """Refuse to write ``particles`` to RELION 5 ``path`` where their tomogram's voxel size or
    size is unknown: naming those tomograms, and the formats that keep their voxels."""
    names = particles[TOMO_NAME].astype(str).unique() if TOMO_NAME in particles else []
    unknown = [n for n in names if not (n in project.tomograms and project.tomograms[n].centred)]
    if unknown:
        listed = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        rows = particles[TOMO_NAME].astype(str).isin(unknown)
        placed = particles.loc[rows, list(AXES)].notna().all(axis=None)
        advice = (
            "write .csv or .parquet, which keep their voxels, or leave them out"
            if placed  # else no voxels to keep: their place was given from the centre
            else "their voxels are unknown too: list the tomogram in tomograms.star, or leave "
            "them out"
        )
        raise ParticleFileError(
            path,
            f"the particles of {listed} cannot be given in RELION 5's centred Angstrom: the "
            f"voxel size or size of their tomogram is unknown (is its file missing?); {advice}",
        )


def write_relion4(project: Project, particles: pd.DataFrame, path: Path) -> Path:
    """Particles of any of the project's tomograms as one RELION 4 STAR: pixel coordinates in
    the pixels of the particle file's optics (unbinned tilt-series pixels when it gives them),
    each particle by its own tomogram's voxel size, else in the project's binning, after the
    file's ``general`` and ``optics``."""
    rows = particles.drop(columns=[TOMOGRAM_MISSING], errors="ignore")
    sizes = {name: e.voxel_size or np.nan for name, e in project.tomograms.items()}
    voxel_sizes = rows[TOMO_NAME].astype(str).map(sizes).to_numpy(dtype=float)
    given = None if project.binning == 1 else 1 / project.binning
    table = star.pixel_table(path, rows, project.blocks, voxel_sizes, given)
    return write_blocks(path, {**project.blocks, "particles": table})


def write_blocks(path: Path, blocks: dict[str, pd.DataFrame | dict]) -> Path:
    """A STAR file of several blocks, written atomically."""
    try:
        with atomic_path(path) as tmp:
            star.write_blocks_as_text(tmp, blocks)
    except InputFileError as err:  # name the user's file, not the one staged beside it
        raise ParticleFileError(path, err.problem) from None
    return path
