"""A project: the tomograms (described, opened one at a time on request) and one particle table
across them, each particle's z, y, x in voxels of its own tomogram."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
from mrcfile.utils import data_dtype_from_header

from napari_affinity_vae.errors import TomogramFileError
from napari_affinity_vae.io.compressed import uncompressed_name
from napari_affinity_vae.io.frame import follow_voxel_size
from napari_affinity_vae.io.tomogram import (
    TRUNCATED,
    Tomogram,
    axis_order,
    cubic_voxel_size,
    open_tomogram,
)
from napari_affinity_vae.io.validate import OUTSIDE_QUESTION, outside_message, outside_rows
from napari_affinity_vae.schema import (
    AXES,
    TOMO_NAME,
    TOMOGRAM_MISSING,
    rows_by_tomogram,
    tomogram_codes,
)
from napari_affinity_vae.text import count


@dataclass(frozen=True)
class TomogramEntry:
    """One tomogram of a project. ``files`` maps a kind ("denoised", "reconstructed", "half1",
    ...) to its file, the one to view first; ``shape`` (z, y, x) and ``voxel_size`` (Angstrom)
    are those of the files; ``centre`` (z, y, x voxels) is where centred coordinates count from
    (RELION 5), by default the middle, ``shape / 2``. ``problem`` says why it cannot be opened;
    ``unreadable``, why a kind of map named for it cannot (it is then not in ``files``)."""

    name: str
    files: dict[str, Path]
    voxel_size: float | None
    shape: tuple[int, int, int] | None
    centre: tuple[float, float, float] | None = None
    problem: str | None = None
    unreadable: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> Path | None:
        """The file to view: the first of ``files``."""
        return next(iter(self.files.values()), None)

    @property
    def centred(self) -> bool:
        """Whether centred Angstrom can be told for its particles: voxel size and origin known."""
        known = self.voxel_size is not None and self.voxel_size > 0  # not 0, not NaN
        return known and (self.shape is not None or self.centre is not None)

    @property
    def origin(self) -> np.ndarray:
        """The voxel position (z, y, x) of centred coordinates' zero."""
        if self.centre is not None:
            return np.asarray(self.centre, dtype=float)
        if self.shape is None:
            raise TomogramFileError(self.path or Path(self.name), "its size is unknown")
        return np.asarray(self.shape, dtype=float) / 2

    def lacks(self, kind: str | None) -> str | None:
        """Why it has no map of ``kind`` ("no half1 map (it has denoised)"); None if it has one
        or ``kind`` is None."""
        if kind is None or kind in self.files:
            return None
        if kind in self.unreadable:
            return f"its {kind} map cannot be read ({self.unreadable[kind]})"
        return f"no {kind} map (it has {', '.join(self.files) or 'none'})"

    def open(self, kind: str | None = None) -> Tomogram:
        """The file of ``kind`` (default the first), memory-mapped at the project's voxel size;
        refused if its shape differs from the first's (binned otherwise: the particles would not
        fit it)."""
        if lacking := self.lacks(kind):
            raise TomogramFileError(Path(self.name), lacking)
        path = self.files[kind] if kind else self.path
        if self.problem or path is None:
            if self.problem:  # which names the file already
                raise TomogramFileError(Path(self.name), self.problem)
            raise TomogramFileError(Path(self.name), "no file")
        tomogram = open_tomogram(path, self.voxel_size)
        first = next(iter(self.files))
        if kind not in (None, first) and self.shape and tomogram.shape != tuple(self.shape):
            size, first_size = (" x ".join(map(str, s)) for s in (tomogram.shape, self.shape))
            raise TomogramFileError(
                path,
                f"its {kind} map is {size} voxels where its {first} map, in which the particles "
                f"are placed, is {first_size}: boxes cannot be cut from it",
            )
        return replace(tomogram, tomo_name=self.name)


@dataclass
class Project:
    """Tomograms by name, in order, and the particles of all of them (``tomo_name`` says whose;
    ``tomogram_missing`` marks those whose tomogram cannot be opened). ``blocks`` are the other
    STAR blocks of the particle file (``general``, ``optics``), written back on export.
    ``pick_sets`` counts the picks of each (object, user, session) a copick project or a
    CryoET Data Portal download holds, of which ``particles`` are those chosen. ``binning``:
    the particle files' pixel coordinates were that many times finer than the tomograms' voxels
    (as the user gave it), and pixel coordinates are written back in them.
    ``angstrom_origins``: the tomograms whose particles a file gave in Angstrom, with the voxel
    (z, y, x) those count from: they follow a corrected voxel size. ``map``: the kind of map
    (``denoised``, ``half1``, a copick tomogram type) boxes are cut from, as the user chose it;
    None: each tomogram's first; ``embedded_map``, the kind the latents were cut from."""

    tomograms: dict[str, TomogramEntry]
    particles: pd.DataFrame
    sources: tuple[Path, ...] = ()
    blocks: dict[str, pd.DataFrame | dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    pick_sets: dict[tuple[str, str, str], int] = field(default_factory=dict)
    binning: float = 1.0
    edited: bool = False  # points added, moved or removed by hand since it was opened
    angstrom_origins: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    map: str | None = None
    embedded_map: str | None = None  # the map the latents were cut from (None: the first)

    def __post_init__(self) -> None:
        self.set_particles(self.particles)
        positions = self.particles[list(AXES)].to_numpy(dtype=float)
        self._placed = {n: positions[self.rows_of(n)] for n in self.angstrom_origins}

    def correct_voxel_size(self, name: str, voxel_size: float) -> int | None:
        """Tomogram ``name`` is at ``voxel_size`` Angstrom from now on (corrected by hand): the
        particles its file placed in Angstrom move to where those Angstrom now lie, those added
        or moved by hand stay. How many stayed; None if none moved."""
        entry = self.tomograms[name]
        self.tomograms[name] = replace(entry, voxel_size=voxel_size)
        if name not in self.angstrom_origins or not entry.voxel_size:
            return None
        rows = self.rows_of(name)
        axes = [self.particles.columns.get_loc(a) for a in AXES]
        particles = self.particles.copy()
        moved, self._placed[name], stayed = follow_voxel_size(
            particles.iloc[rows, axes].to_numpy(dtype=float),
            self._placed[name],
            self.angstrom_origins[name],
            entry.voxel_size / voxel_size,
        )
        particles.iloc[rows, axes] = moved
        self.set_particles(particles)
        return stayed

    def set_particles(self, particles: pd.DataFrame) -> None:
        """The project's particles from now on (edited by hand in the viewer), each marked
        whether its tomogram is missing."""
        self.particles, self._groups = particles, None
        broken = [name for name, entry in self.tomograms.items() if entry.problem]
        names = self.particles[TOMO_NAME].astype(str)
        self.particles[TOMOGRAM_MISSING] = ~names.isin(self.tomograms) | names.isin(broken)

    def counts(self) -> pd.Series:
        """Particles per tomogram, every tomogram listed (also those without particles)."""
        names = list(self.tomograms) + [n for n in self._grouped() if n not in self.tomograms]
        return pd.Series([len(self.rows_of(n)) for n in names], index=names, dtype=int)

    def rows_of(self, name: str) -> np.ndarray:
        """The table rows of tomogram ``name``."""
        return self._grouped().get(name, np.zeros(0, dtype=np.int64))

    def _grouped(self) -> dict[str, np.ndarray]:
        """Rows by tomogram, grouped once: hundreds of tomograms of a million particles take
        no longer than one."""
        if self._groups is None:
            self._groups = rows_by_tomogram(self.particles[TOMO_NAME])
        return self._groups

    def outside(self, name: str) -> str | None:
        """Why tomogram ``name``'s particles cannot be boxed from it: some lie outside it
        (wrong tomogram or binning); None if all lie inside or its shape is unknown."""
        entry = self.tomograms.get(name)
        if entry is None or entry.shape is None:
            return None
        coords = self.particles[list(AXES)].to_numpy(dtype=float)[self.rows_of(name)]
        outside = outside_rows(coords, entry.shape)
        if not outside.any():
            return None
        return f"{outside_message(outside, entry.shape)}; {OUTSIDE_QUESTION}"

    def without_unusable(self) -> Project:
        """This project without the particles that cannot be boxed from their tomogram (one that
        opens, of a known shape): those with NaN coordinates and those outside it, with a
        warning per tomogram saying how many were left out. The particles of a tomogram that
        is missing or broken stay, for an embedding to report."""
        coords = self.particles[list(AXES)].to_numpy(dtype=float)
        unusable = np.zeros(len(coords), dtype=bool)
        for name, entry in self.tomograms.items():
            if entry.problem or entry.shape is None:
                continue  # its particles stay, for the embedding to report its tomogram
            rows = self.rows_of(name)
            nan = ~np.isfinite(coords[rows]).all(axis=1)
            outside = ~nan & outside_rows(coords[rows], entry.shape)
            if nan.any():
                what = f"{int(nan.sum())} of {len(rows)} particles have missing (NaN) coordinates"
                warnings.warn(f"{name}: {what}; they were left out", stacklevel=2)
            if outside.any():
                what = outside_message(outside, entry.shape)
                warnings.warn(f"{name}: {what}; they were left out", stacklevel=2)
            unusable[rows] = nan | outside
        if not unusable.any():
            return self
        particles = self.particles[~unusable].reset_index(drop=True)
        particles.attrs = dict(self.particles.attrs)
        return replace(self, particles=particles)

    def open(self, name: str, kind: str | None = None) -> Tomogram:
        if name not in self.tomograms:
            raise TomogramFileError(Path(name), "the project has no tomogram of this name")
        return self.tomograms[name].open(kind)

    def boxes_from(self, name: str) -> Tomogram:
        """The tomogram ``name``'s map that boxes are cut from, to embed or train on: the kind
        in ``map``, so that every tomogram's latents come from one kind (else its first)."""
        return self.open(name, self.map)

    def summary(self) -> str:
        """How many tomograms and particles, in a line."""
        return f"{count(len(self.tomograms), 'tomogram')}, {count(len(self.particles), 'particle')}"

    def describe(self) -> str:
        """What was found, as lines of text: tomograms with voxel size, shape and particles, what
        is missing, and notes."""
        lines = [self.summary()]
        for name, n in self.counts().items():
            entry = self.tomograms.get(name)
            if entry is None:
                missing = "; no tomogram of this name" if self.tomograms else ""
                lines.append(f"  {name}: {count(n, 'particle')}{missing}")
                continue
            size = "?" if entry.voxel_size is None else f"{entry.voxel_size:g} Å"
            shape = "?" if entry.shape is None else " x ".join(map(str, entry.shape))
            where = f"; {entry.problem}" if entry.problem else f" ({entry.path})"
            outside = None if entry.problem else self.outside(name)
            where += f"; {outside}" if outside else ""
            where += f"; maps {', '.join(entry.files)} (--map)" if len(entry.files) > 1 else ""
            where += "".join(f"; {entry.lacks(kind)}" for kind in entry.unreadable)
            lines.append(f"  {name}: {count(n, 'particle')}, {shape} voxels at {size}{where}")
        if self.pick_sets:
            lines.append(f"{count(len(self.pick_sets), 'pick set')} (--object, --user, --session):")
            lines += [
                f"  {pick_set_label(key)}: {count(n, 'pick')}" for key, n in self.pick_sets.items()
            ]
        return "\n".join(lines + self.notes)


def pick_set_label(key: tuple[str, str, str]) -> str:
    """An (object, user, session) pick set in words: "ribosome by curator, session 0"."""
    object_name, user, session = key
    return f"{object_name} by {user}, session {session}"


def read_shape(
    path: Path, given: float | None = None
) -> tuple[tuple[int, int, int] | None, float | None, str | None]:
    """A tomogram's shape (z, y, x) and voxel size from its header (MRC) or metadata (OME-Zarr)
    alone (None where a voxel size ``given`` stands for a header's that is not cubic), or why
    it cannot be read (``None, None, problem``)."""
    if path.is_dir():
        try:
            tomogram = open_tomogram(path, require_voxel_size=False)
        except TomogramFileError as err:
            return None, None, str(err)
        return tomogram.shape, tomogram.voxel_size, None
    if not path.is_file():
        return None, None, f"{path}: no such file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with mrcfile.open(path, header_only=True, permissive=True) as mrc:
                header = mrc.header
                shape = (int(header.nz), int(header.ny), int(header.nx))
                to_zyx = axis_order(header)
                if to_zyx is not None:
                    shape = tuple(shape[i] for i in to_zyx)
                voxel = cubic_voxel_size(path, mrc.voxel_size, given)
                data_bytes = np.prod(shape) * data_dtype_from_header(header).itemsize
        expected = header.nbytes + int(header.nsymbt) + int(data_bytes)
        compressed = uncompressed_name(path) != path  # its size on disk is no data size
        if not compressed and path.stat().st_size < expected:
            return None, None, f"{path}: {TRUNCATED}"
    except TomogramFileError as err:
        return None, None, str(err)
    except (ValueError, OSError) as err:
        return None, None, f"{path}: not a readable MRC file ({err})"
    return shape, (voxel if voxel > 0 else None), None


def centred_origins(entries: dict[str, TomogramEntry]) -> dict[str, tuple[float, float, float]]:
    """Where centred coordinates count from in each tomogram of known size (z, y, x voxels)."""
    return {
        name: tuple(float(v) for v in e.origin)
        for name, e in entries.items()
        if e.centre is not None or e.shape is not None
    }


def to_voxels(
    entries: dict[str, TomogramEntry], names: pd.Series, centred: np.ndarray
) -> pd.DataFrame:
    """z, y, x voxels of particles given in Angstrom (x, y, z) from their tomogram's centre;
    NaN where the tomogram's voxel size or size is unknown."""
    size, origin = _frames(entries, names)
    out = centred[:, ::-1] / size[:, None] + origin
    return pd.DataFrame(out, columns=list(AXES))


def to_centred(entries: dict[str, TomogramEntry], particles: pd.DataFrame) -> np.ndarray:
    """Angstrom (x, y, z) from each particle's tomogram centre: :func:`to_voxels` undone."""
    size, origin = _frames(entries, particles[TOMO_NAME])
    voxels = particles[list(AXES)].to_numpy(dtype=float)
    return ((voxels - origin) * size[:, None])[:, ::-1]


def _frames(entries: dict[str, TomogramEntry], names: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each particle's voxel size and centred origin (z, y, x voxels), NaN where unknown; by
    tomogram codes, so a million particles of hundreds of tomograms take no longer than one."""
    codes, unique = tomogram_codes(names)
    size = np.full(len(unique) + 1, np.nan)  # the last: particles without a name (code -1)
    origin = np.full((len(unique) + 1, 3), np.nan)
    for i, name in enumerate(unique):
        entry = entries.get(name)
        if entry is not None and entry.centred:
            size[i], origin[i] = entry.voxel_size, entry.origin
    return size[codes], origin[codes]
