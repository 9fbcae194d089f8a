"""Open tomograms, MRC-family files memory-mapped (gzip- or bzip2-compressed ones decompressed:
see ``io.compressed``) or OME-Zarr read chunk by chunk, as (z, y, x) arrays with a voxel size."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np

from napari_affinity_vae.errors import NonCubicVoxelsError, TomogramFileError
from napari_affinity_vae.io.compressed import mrc_opener, uncompressed_name

TOMOGRAM_SUFFIXES = (".mrc", ".rec", ".map", ".st", ".mrcs")
ZARR_SUFFIX = ".zarr"
LEVEL_TOLERANCE = 1.05  # a level this much coarser than asked still counts as fine enough

# IMOD marks its files with this stamp; bit 0 of its flags says mode-0 bytes are signed.
_IMOD_STAMP = 1146047817
_HOW_TO_GIVE_VOXEL_SIZE = (
    "give one with --voxel-size on the command line, the Voxel size box of the Tomogram dock, "
    "or voxel_size=... in Python"
)


@dataclass(frozen=True)
class Level:
    """One resolution of a multiscale tomogram: ``data`` (z, y, x), its voxels ``factor`` times the
    finest level's, its first voxel's centre at ``offset`` (z, y, x) voxels of the finest level."""

    data: Any
    factor: float = 1.0
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def to_level(self, zyx: np.ndarray) -> np.ndarray:
        """Positions in voxels of the finest level as voxels of this one."""
        return (np.asarray(zyx, dtype=float) - self.offset) / self.factor

    def from_level(self, zyx: np.ndarray) -> np.ndarray:
        """Positions in voxels of this level as voxels of the finest one."""
        return np.asarray(zyx, dtype=float) * self.factor + self.offset


@dataclass(frozen=True)
class Tomogram:
    """A tomogram read lazily: ``data`` is (z, y, x), memory-mapped (MRC) or chunked (Zarr),
    ``voxel_size`` Angstrom (None: unknown); its name is the file's stem unless a project names it
    (``tomo_name``). A multiscale file also has coarser ``levels`` (the first is ``data``);
    coordinates are always voxels of the finest level."""

    path: Path
    data: Any
    voxel_size: float | None
    voxel_size_from_header: bool
    tomo_name: str | None = None
    levels: tuple[Level, ...] = field(default=(), repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]

    @property
    def name(self) -> str:
        return self.tomo_name or tomogram_stem(self.path)

    def level_for(self, voxel_size: float | None) -> tuple[Tomogram, Level]:
        """The coarsest level whose voxels are no larger than ``voxel_size`` Angstrom (the finest
        if none is), as a tomogram of its own, and the level to map coordinates with."""
        levels = self.levels or (Level(self.data),)
        chosen = levels[0]
        if voxel_size is not None and self.voxel_size:
            limit = voxel_size * LEVEL_TOLERANCE
            fine = [lv for lv in levels if self.voxel_size * lv.factor <= limit]
            chosen = max(fine, key=lambda lv: lv.factor, default=levels[0])
        if chosen is levels[0]:
            return self, chosen
        size = None if self.voxel_size is None else self.voxel_size * chosen.factor
        return replace(self, data=chosen.data, voxel_size=size, levels=()), chosen


def tomogram_stem(path: Path) -> str:
    """The name a tomogram's file gives it: ``TS_01`` of ``TS_01.mrc``, ``TS_01.mrc.gz`` and
    ``TS_01.ome.zarr``."""
    stem = uncompressed_name(path).stem
    ome = path.suffix.lower() == ZARR_SUFFIX and stem.lower().endswith(".ome")
    return stem[: -len(".ome")] if ome else stem


def open_tomogram(
    path: str | Path, voxel_size: float | None = None, *, require_voxel_size: bool = True
) -> Tomogram:
    """Open a tomogram lazily: an MRC file memory-mapped, an OME-Zarr folder with its levels;
    only the header or metadata and no voxel data are read.

    ``voxel_size`` (Angstrom) overrides the file's. A file without one (a header voxel size of 0)
    raises unless an override is given or ``require_voxel_size`` is False (then ``voxel_size`` is
    None).
    """
    path = Path(path)
    if voxel_size is not None and not (np.isfinite(voxel_size) and voxel_size > 0):
        raise TomogramFileError(
            path, f"voxel size must be a positive number of Angstrom, got {voxel_size}"
        )
    if path.is_dir():
        from napari_affinity_vae.io.omezarr import is_ome_zarr, read_ome_zarr

        if not is_ome_zarr(path) and path.suffix.lower() != ".zarr":
            raise TomogramFileError(
                path, "is a folder, neither an MRC file nor an OME-Zarr image: choose a tomogram"
            )
        levels, file_voxel_size = read_ome_zarr(path)
    elif path.is_file():
        data, file_voxel_size = _read_mrc(path, voxel_size)
        levels = (Level(data),)
    else:
        raise TomogramFileError(path, "no such file")
    data = levels[0].data
    if data.ndim != 3:
        raise TomogramFileError(
            path,
            f"data is {data.ndim}D with shape {data.shape}; a tomogram or map must be 3D (z, y, x)",
        )
    from_header = file_voxel_size > 0
    if voxel_size is None:
        if from_header:
            voxel_size = file_voxel_size
        elif require_voxel_size:
            raise TomogramFileError(
                path,
                "the header gives no voxel size (0, infinite or not a number); "
                + _HOW_TO_GIVE_VOXEL_SIZE,
            )
    size = None if voxel_size is None else float(voxel_size)
    return Tomogram(path, data, size, from_header, levels=levels if len(levels) > 1 else ())


def _read_mrc(path: Path, given: float | None) -> tuple[np.ndarray, float]:
    """The memory-mapped (or, compressed, decompressed) data of an MRC file and its header's
    voxel size (0: not set, or not cubic with a voxel size ``given``)."""
    opener = mrc_opener(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # e.g. "file is larger than expected"
            with opener(path, mode="r") as mrc:
                data = mrc.data
                header = mrc.header
                header_voxel_size = mrc.voxel_size.copy()
    except (ValueError, EOFError, ArithmeticError) as err:  # EOFError: a compressed stream cut
        # short; ArithmeticError: a header of zero sizes, which mrcfile divides by
        raise TomogramFileError(path, _describe_mrc_error(err)) from None
    except OSError as err:
        raise TomogramFileError(path, f"cannot be read ({err.strerror or err})") from None
    if data is None:
        raise TomogramFileError(path, "the MRC header does not describe a readable data block")
    if np.iscomplexobj(data):
        raise TomogramFileError(
            path,
            f"holds complex numbers (MRC mode {int(header.mode)}): Fourier-space data, not a "
            "tomogram; give the real-space map",
        )
    if data.dtype == np.int8 and _mode0_is_unsigned(header):
        data = data.view(np.uint8)
    to_zyx = axis_order(header)
    if to_zyx is not None and data.ndim == 3:
        data = data.transpose(to_zyx)  # a view: a memory-mapped file stays so
    return data, cubic_voxel_size(path, header_voxel_size, given)


def axis_order(header: np.recarray) -> tuple[int, int, int] | None:
    """The transpose taking an MRC file's data (sections, rows, columns) to (z, y, x), from its
    header's MAPS, MAPR and MAPC (the axis, 1 x to 3 z, each runs along); None where it is that
    already, or where the header gives no valid order."""
    order = (int(header.maps), int(header.mapr), int(header.mapc))
    if order == (3, 2, 1) or sorted(order) != [1, 2, 3]:
        return None
    return tuple(order.index(axis) for axis in (3, 2, 1))


TRUNCATED = "the file is truncated: it holds less data than its header describes"


def cubic_voxel_size(path: Path, voxel_size: np.recarray, given: float | None = None) -> float:
    """An MRC header's voxel size (x, y, z record; 0, infinite or not a number: not set, on
    any axis), refused unless cubic; a voxel size ``given`` by the user stands for one that is
    not (0 is returned)."""
    sizes = np.array([voxel_size.z, voxel_size.y, voxel_size.x], dtype=float)
    set_ = sizes[np.isfinite(sizes) & (sizes > 0)]
    if np.allclose(set_, set_[:1], rtol=1e-3):
        return float(set_[0]) if len(set_) else 0.0
    if given is not None:
        return 0.0
    raise NonCubicVoxelsError(path, " x ".join(f"{v:g}" for v in sizes))


def _describe_mrc_error(err: ValueError | EOFError | ArithmeticError) -> str:
    text = str(err)
    if isinstance(err, EOFError) or "mmap length is greater" in text or "could only read" in text:
        return TRUNCATED
    if "Map ID string" in text or "header" in text.lower():
        return f"invalid MRC header ({text})"
    if "Unrecognised mode '3'" in text:  # complex int16, which mrcfile does not read
        return (
            "holds complex numbers (MRC mode 3): Fourier-space data, not a tomogram; give the "
            "real-space map"
        )
    return f"not a readable MRC file ({text})"


def _mode0_is_unsigned(header: np.recarray) -> bool:
    """Mode-0 bytes are signed per MRC2014, but older IMOD files without the signed flag are not."""
    int32 = np.dtype("i4").newbyteorder(header.mode.dtype.byteorder)
    stamp, flags = np.frombuffer(header.tobytes()[152:160], dtype=int32)
    return int(stamp) == _IMOD_STAMP and not int(flags) & 1


def contrast_limits(data: np.ndarray, max_samples: int = 1_000_000) -> tuple[float, float]:
    """Robust display range (0.5 and 99.5 percentiles) from a strided sample of whole planes.

    Reads at most ``max_samples`` voxels spread over up to 16 evenly spaced z-planes, so opening a
    multi-gigabyte memory-mapped tomogram stays fast.
    """
    nz = data.shape[0]
    planes = np.unique(np.linspace(0, nz - 1, num=min(nz, 16)).round().astype(int))
    per_plane = max(1, max_samples // len(planes))
    step = max(1, int(np.ceil(np.sqrt(data.shape[1] * data.shape[2] / per_plane))))
    sample = np.concatenate(  # plane by plane: Zarr arrays take no list of planes
        [np.asarray(data[int(z), ::step, ::step], dtype=np.float64).ravel() for z in planes]
    )
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(sample, [0.5, 99.5])
    if high <= low:
        low, high = float(sample.min()), float(sample.max())
        if high <= low:
            high = low + 1.0
    return float(low), float(high)


def central_block(data: Any) -> np.ndarray:
    """The chunk of a chunked (Zarr) array that holds its centre, read alone: a sample of the
    full-resolution voxels that costs one decompression. Other arrays are returned as they are."""
    chunks = getattr(data, "chunks", None)
    if isinstance(data, np.ndarray) or not isinstance(chunks, tuple):
        return data
    start = [(n // 2) // c * c for n, c in zip(data.shape, chunks, strict=True)]
    return np.asarray(data[tuple(slice(a, a + c) for a, c in zip(start, chunks, strict=True))])


def write_tomogram(
    path: str | Path,
    data: np.ndarray,
    voxel_size: float,
    origin: float | tuple[float, float, float] = 0.0,
) -> Path:
    """Write a (z, y, x) volume, or a stack of volumes (n, z, y, x), as an MRC file atomically;
    ``origin`` (Angstrom, x, y, z or one for every axis) is where its first voxel's centre
    lies."""
    from napari_affinity_vae.io.atomic import atomic_path, unwritable

    path = Path(path)
    try:
        with atomic_path(path) as tmp, mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(data, dtype=np.float32))
            mrc.voxel_size = voxel_size  # a 4D array is stored as a volume stack (ispg 401)
            mrc.header.origin = origin if isinstance(origin, tuple) else (origin,) * 3
    except OSError as err:  # a full disk
        raise unwritable(path, err, TomogramFileError) from None
    return path


def header_origin(path: Path) -> tuple[float, float, float]:
    """Where an MRC file's header places its first voxel (Angstrom, x, y, z); 0 for an
    OME-Zarr, or a header that cannot be read (opening the tomogram says why)."""
    if path.is_dir():
        return (0.0, 0.0, 0.0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with mrcfile.open(path, header_only=True, permissive=True) as mrc:
                origin = mrc.header.origin
                xyz = (float(origin.x), float(origin.y), float(origin.z))
    except (ValueError, OSError, EOFError):
        return (0.0, 0.0, 0.0)
    return xyz if all(np.isfinite(xyz)) else (0.0, 0.0, 0.0)
