"""Open tomograms from MRC-family files, memory-mapped, as (z, y, x) arrays with a voxel size
(gzip- or bzip2-compressed ones decompressed: see ``io.compressed``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np

from napari_affinity_vae.errors import TomogramFileError
from napari_affinity_vae.io.compressed import mrc_opener, uncompressed_name

TOMOGRAM_SUFFIXES = (".mrc", ".rec", ".map", ".st", ".mrcs")

# IMOD marks its files with this stamp; bit 0 of its flags says mode-0 bytes are signed.
_IMOD_STAMP = 1146047817
_HOW_TO_GIVE_VOXEL_SIZE = (
    "give one with voxel_size=... in Python, --voxel-size on the command line, "
    "or the Voxel size box of the Tomogram widget"
)


@dataclass(frozen=True)
class Tomogram:
    """A memory-mapped tomogram: ``data`` is (z, y, x), ``voxel_size`` Angstrom (None: unknown);
    its name is the file's stem unless a project names it (``tomo_name``)."""

    path: Path
    data: np.ndarray
    voxel_size: float | None
    voxel_size_from_header: bool
    tomo_name: str | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]

    @property
    def name(self) -> str:
        return self.tomo_name or uncompressed_name(self.path).stem


def open_tomogram(
    path: str | Path, voxel_size: float | None = None, *, require_voxel_size: bool = True
) -> Tomogram:
    """Open a tomogram memory-mapped; only the header and no voxel data are read.

    ``voxel_size`` (Angstrom) overrides the header. A header voxel size of 0 raises unless an
    override is given or ``require_voxel_size`` is False (then ``voxel_size`` is None).
    """
    path = Path(path)
    if not path.is_file():
        raise TomogramFileError(path, "no such file")
    if voxel_size is not None and not (np.isfinite(voxel_size) and voxel_size > 0):
        raise TomogramFileError(
            path, f"voxel size must be a positive number of Angstrom, got {voxel_size}"
        )
    opener = mrc_opener(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # e.g. "file is larger than expected"
            with opener(path, mode="r") as mrc:
                data = mrc.data
                header = mrc.header
                header_voxel_size = float(mrc.voxel_size.x)
    except (ValueError, EOFError) as err:  # EOFError: a compressed stream cut short
        raise TomogramFileError(path, _describe_mrc_error(err)) from None
    except OSError as err:
        raise TomogramFileError(path, f"cannot be read ({err.strerror or err})") from None
    if data is None:
        raise TomogramFileError(path, "the MRC header does not describe a readable data block")
    if data.ndim != 3:
        raise TomogramFileError(
            path, f"data is {data.ndim}D with shape {data.shape}; a tomogram must be 3D (z, y, x)"
        )
    if data.dtype == np.int8 and _mode0_is_unsigned(header):
        data = data.view(np.uint8)
    from_header = header_voxel_size > 0
    if voxel_size is None:
        if from_header:
            voxel_size = header_voxel_size
        elif require_voxel_size:
            raise TomogramFileError(
                path, f"the header's voxel size is 0 (not set); {_HOW_TO_GIVE_VOXEL_SIZE}"
            )
    return Tomogram(path, data, None if voxel_size is None else float(voxel_size), from_header)


def _describe_mrc_error(err: ValueError | EOFError) -> str:
    text = str(err)
    if isinstance(err, EOFError) or "mmap length is greater" in text or "could only read" in text:
        return "the file is truncated: it holds less data than its header describes"
    if "Map ID string" in text or "header" in text.lower():
        return f"invalid MRC header ({text})"
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
    sample = np.asarray(data[planes, ::step, ::step], dtype=np.float64).ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(sample, [0.5, 99.5])
    if high <= low:
        low, high = float(sample.min()), float(sample.max())
        if high <= low:
            high = low + 1.0
    return float(low), float(high)


def write_tomogram(path: str | Path, data: np.ndarray, voxel_size: float) -> Path:
    """Write a (z, y, x) volume, or a stack of volumes (n, z, y, x), as an MRC file atomically."""
    from napari_affinity_vae.io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp, mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(data, dtype=np.float32))
        mrc.voxel_size = voxel_size  # a 4D array is stored as a volume stack (ispg 401)
    return path
