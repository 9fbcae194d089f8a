"""Read and write particle sets in the formats other cryo-ET tools use, chosen by file suffix.

Inside the program a particle set is a DataFrame with ``z``, ``y``, ``x`` in voxels of its
tomogram (0-based, voxel i centred at i), optional ``tomo_name`` and RELION ``rot``, ``tilt``,
``psi`` angles (degrees, ZYZ), and any extra columns. ``attrs["voxel_size"]`` carries the
tomogram's voxel size when known.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from napari_affinity_vae.errors import InputFileError, ParticleFileError
from napari_affinity_vae.io import imod, star, tables
from napari_affinity_vae.io.atomic import atomic_path, check_writable, unwritable
from napari_affinity_vae.io.frame import CoordinateFrame, binned_pixel_size
from napari_affinity_vae.io.validate import check_particles, select_tomogram
from napari_affinity_vae.schema import AXES, COORDINATE_BINNING

if TYPE_CHECKING:
    from napari_affinity_vae.io.tomogram import Tomogram

Reader = Callable[[Path, CoordinateFrame], pd.DataFrame]
Writer = Callable[[Path, pd.DataFrame, CoordinateFrame], None]

_FORMATS: dict[str, tuple[Reader, Writer]] = {
    ".tbl": (tables.read_dynamo, tables.write_dynamo),
    ".coords": (tables.read_tomotwin, tables.write_tomotwin),
    ".csv": (tables.read_csv, tables.write_csv),
    ".mod": (imod.read_imod, imod.write_imod),
}
PARTICLE_SUFFIXES = (".star", *_FORMATS)
STAR_FLAVOURS = ("relion4", "relion5")


def read_particles(
    path: str | Path,
    *,
    voxel_size: float | None = None,
    tomogram_shape: tuple[int, int, int] | None = None,
    tomo_name: str | None = None,
    pixel_size: float | None = None,
    drop_nan: bool = False,
    drop_outside: bool = False,
) -> pd.DataFrame:
    """Read a coordinate file into a particle table in tomogram voxels.

    ``voxel_size`` and ``tomogram_shape`` describe the tomogram (RELION 5 files need both);
    ``pixel_size`` is the coordinates' own pixel size if it differs from the tomogram's voxels.
    ``tomo_name`` selects one tomogram from a STAR file, Dynamo table or CSV holding several (a file
    of several tomograms without it is an error: particles are never merged silently). Rows with NaN
    coordinates or outside ``tomogram_shape`` raise, unless ``drop_nan`` / ``drop_outside``.
    """
    path = Path(path)
    if path.is_dir():
        raise ParticleFileError(
            path,
            f"is a folder, not a coordinate file: choose a {', '.join(PARTICLE_SUFFIXES)} file",
        )
    suffix = _suffix(path)
    if not path.is_file():
        raise ParticleFileError(path, "no such file")
    frame = CoordinateFrame(voxel_size, _shape(tomogram_shape), pixel_size)
    if suffix == ".star":
        particles = star.read_star(path, frame, tomo_name)
    elif suffix == ".tbl":
        particles = tables.read_dynamo(path, frame, tomo_name)
    elif suffix == ".csv":
        particles = tables.read_csv(path, frame, tomo_name)
    else:
        particles = _FORMATS[suffix][0](path, frame)
        if tomo_name is not None:  # a format that names no tomogram: asking for one is an error
            select_tomogram(path, particles, None, tomo_name)
    return _checked(path, particles, frame, drop_nan, drop_outside)


def read_particles_by_tomogram(
    path: str | Path,
    frames: dict[str, CoordinateFrame],
    *,
    drop_nan: bool = False,
    drop_outside: bool = False,
) -> dict[str, pd.DataFrame]:
    """The particles of each tomogram ``frames`` names (its geometry, as :func:`read_particles`
    takes it) of a CSV file or Dynamo table naming several, the file read once however many
    tomograms it holds (a project's table); other formats are read once per tomogram."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix not in (".csv", ".tbl"):
        return {
            name: read_particles(
                path,
                voxel_size=frame.voxel_size,
                tomogram_shape=frame.shape,
                pixel_size=frame.pixel_size,
                tomo_name=name,
                drop_nan=drop_nan,
                drop_outside=drop_outside,
            )
            for name, frame in frames.items()
        }
    read = tables.read_csv if suffix == ".csv" else tables.read_dynamo
    every = read(path, CoordinateFrame(), every_tomogram=True)  # in the file's pixels
    rows = tables.row_tomograms(every).groupby(tables.row_tomograms(every), sort=False).indices
    particles = {}
    for name, frame in frames.items():
        own = every.iloc[rows.get(name, [])].reset_index(drop=True)
        own[list(AXES)] = own[list(AXES)] * frame.voxels_per_pixel
        particles[name] = _checked(path, own, frame, drop_nan, drop_outside)
    return particles


def _checked(
    path: Path, particles: pd.DataFrame, frame: CoordinateFrame, drop_nan: bool, drop_outside: bool
) -> pd.DataFrame:
    """Particles read in ``frame``: checked against its shape (NaN rows and rows outside
    refused, or dropped with a warning), with its voxel size and binning in ``attrs``."""
    if path.suffix.lower() != ".star" and frame.pixel_size is not None:  # pixels, binned
        particles.attrs[COORDINATE_BINNING] = 1 / frame.voxels_per_pixel
    attrs = dict(particles.attrs)  # what the format carries (a STAR file's other blocks)
    particles = check_particles(
        path, particles, frame.shape, drop_nan=drop_nan, drop_outside=drop_outside
    )
    particles.attrs = attrs
    if frame.voxel_size is not None:
        particles.attrs["voxel_size"] = float(frame.voxel_size)
    return particles


def write_particles(
    particles: pd.DataFrame,
    path: str | Path,
    *,
    voxel_size: float | None = None,
    tomogram_shape: tuple[int, int, int] | None = None,
    pixel_size: float | None = None,
    star_flavour: str = "relion4",
    star_blocks: dict[str, pd.DataFrame | dict] | None = None,
) -> Path:
    """Write a particle table atomically; the format follows the suffix.

    ``.star`` is RELION 4 (pixel coordinates) or, with ``star_flavour="relion5"``, RELION 5
    (centred Angstrom, needing ``voxel_size`` and ``tomogram_shape``), after ``star_blocks``
    (a source file's ``general`` and ``optics``: :func:`.star.star_layout`), by default those
    of the STAR file the particles were read from. Pixel coordinates are in ``pixel_size``'s
    pixels, by default those of the file the particles were read from (``attrs``' binning).
    """
    path = Path(path)
    check_output(path)
    suffix = path.suffix.lower()
    if star_flavour not in STAR_FLAVOURS:
        raise ValueError(f"star_flavour must be one of {STAR_FLAVOURS}, got {star_flavour!r}")
    missing = [a for a in AXES if a not in particles]
    if missing:
        raise ParticleFileError(path, f"the particle table has no {', '.join(missing)} column")
    voxel_size = voxel_size if voxel_size is not None else particles.attrs.get("voxel_size")
    if pixel_size is None:
        pixel_size = binned_pixel_size(voxel_size, particles.attrs.get(COORDINATE_BINNING, 1.0))
    frame = CoordinateFrame(voxel_size, _shape(tomogram_shape), pixel_size)
    try:
        with atomic_path(path) as tmp:
            if suffix == ".star":
                centred = star_flavour == "relion5"
                star.write_star(tmp, particles, frame, centred=centred, blocks=star_blocks)
            else:
                _FORMATS[suffix][1](tmp, particles, frame)
    except InputFileError as err:  # name the user's file, not the one staged beside it
        raise ParticleFileError(path, err.problem) from None
    except OSError as err:  # a full disk
        raise unwritable(path, err, ParticleFileError) from None
    return path


def check_output(
    path: Path, suffixes: tuple[str, ...] = PARTICLE_SUFFIXES, what: str = "a coordinate file"
) -> None:
    """Refuse, before any work, an output of another suffix, where a folder stands, or in a
    folder that does not exist or cannot be written to."""
    if path.suffix.lower() not in suffixes:
        raise ParticleFileError(
            path, f"{what} is written as {', '.join(suffixes)}; choose one of them"
        )
    check_writable(path, ParticleFileError)


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in PARTICLE_SUFFIXES:
        raise ParticleFileError(
            path, f"unknown coordinate format; use one of {', '.join(PARTICLE_SUFFIXES)}"
        )
    return suffix


def _shape(shape: tuple[int, ...] | None) -> tuple[int, int, int] | None:
    return None if shape is None else tuple(int(n) for n in shape)  # type: ignore[return-value]


def tomogram_names(path: str | Path) -> list[str]:
    """The tomograms a coordinate file names, in file order: a STAR file's ``rlnTomoName``
    values, a Dynamo table's tomogram numbers (column 20) as text, a CSV file's ``tomo_name``
    values; [] for other formats."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        return []
    if suffix == ".star":
        return star.tomogram_names(path)
    if suffix == ".tbl":
        return tables.dynamo_tomogram_names(path)
    if suffix == ".csv":
        return tables.csv_tomogram_names(path)
    return []


def read_particles_for(
    path: Path, tomogram: Tomogram | None, tomo_name: str | None = None, skip: bool = True
) -> pd.DataFrame:
    """The particles ``path`` holds for ``tomo_name`` (None: the only tomogram it names), read
    against ``tomogram`` when given (its voxels, its shape; with ``skip``, NaN rows and rows
    outside it are left out with a warning, else refused); a Dynamo table's are placed on it."""
    geometry = (tomogram.voxel_size, tomogram.shape) if tomogram is not None else (None, None)
    particles = read_particles(
        path,
        voxel_size=geometry[0],
        tomogram_shape=geometry[1],
        tomo_name=tomo_name,
        drop_nan=skip,
        drop_outside=skip and tomogram is not None,
    )
    if tomogram is not None and path.suffix.lower() == ".tbl":  # Dynamo numbers its tomograms
        particles = tables.placed_on(particles, tomogram.name)
    return particles
