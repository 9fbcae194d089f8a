"""Gzip- and bzip2-compressed MRC maps, as the EMDB distributes them (``emd_3197.map.gz``).

They cannot be memory-mapped: they are decompressed into memory, which suits references and small
volumes. One that would take more than ``MAX_DECOMPRESSED_BYTES`` is refused from its header
alone, before anything else is decompressed.
"""

from __future__ import annotations

import bz2
import gzip
import warnings
from collections.abc import Callable
from pathlib import Path

import mrcfile
import numpy as np
from mrcfile.constants import MAP_ID, MAP_ID_OFFSET_BYTES
from mrcfile.dtypes import HEADER_DTYPE
from mrcfile.utils import (
    byte_order_from_machine_stamp,
    data_dtype_from_header,
    data_shape_from_header,
)

from napari_affinity_vae.errors import TomogramFileError

COMPRESSED_SUFFIXES = (".gz", ".bz2")
MAX_DECOMPRESSED_BYTES = 10**9
# magic bytes: (name, how to open the stream, the command that decompresses the file)
_COMPRESSIONS = {b"\x1f\x8b": ("gzip", gzip.open, "gunzip"), b"BZ": ("bzip2", bz2.open, "bunzip2")}


def uncompressed_name(path: str | Path) -> Path:
    """``emd_3197.map.gz`` as ``emd_3197.map``; a name without a compression suffix as it is.

    Its ``suffix`` says what the file holds and its ``stem`` names it."""
    path = Path(path)
    return path.with_suffix("") if path.suffix.lower() in COMPRESSED_SUFFIXES else path


def uncompressed_suffix(path: str | Path) -> str:
    """The suffix that says what a file holds, lower case: ``.map`` for ``emd_3197.map.gz``."""
    return uncompressed_name(path).suffix.lower()


def mrc_opener(path: Path) -> Callable[..., mrcfile.mrcfile.MrcFile]:
    """How to open ``path``: ``mrcfile.mmap``, or for a gzip or bzip2 file ``mrcfile.open``
    (decompressed into memory, with a warning saying so) once its header shows it fits."""
    try:
        with open(path, "rb") as file:
            start = file.read(MAP_ID_OFFSET_BYTES + len(MAP_ID))
    except OSError as err:
        raise TomogramFileError(path, f"cannot be read ({err.strerror or err})") from None
    compression = _COMPRESSIONS.get(start[:2]) if start[-len(MAP_ID) :] != MAP_ID else None
    if compression is None:
        return mrcfile.mmap
    kind, open_stream, command = compression
    size = _decompressed_bytes(path, kind, open_stream)
    if size > MAX_DECOMPRESSED_BYTES:
        raise TomogramFileError(
            path,
            f"{kind}-compressed and {size / 1e9:.1f} GB decompressed: too large to decompress "
            f"into memory (compressed maps cannot be memory-mapped; the limit is "
            f"{MAX_DECOMPRESSED_BYTES / 1e9:g} GB); decompress it ({command} {path.name}) and "
            f"open {uncompressed_name(path).name}",
        )
    warnings.warn(
        f"{path}: {kind}-compressed, so decompressed into memory ({size / 1e6:.4g} MB) "
        "rather than memory-mapped",
        stacklevel=3,
    )
    return mrcfile.open


def _decompressed_bytes(path: Path, kind: str, open_stream: Callable) -> int:
    """The size of the data block the header of a compressed MRC file describes, from the first
    1024 decompressed bytes."""
    try:
        with open_stream(path, "rb") as stream:
            raw = stream.read(HEADER_DTYPE.itemsize)
        if len(raw) < HEADER_DTYPE.itemsize:
            raise ValueError("shorter than an MRC header")
        header = np.frombuffer(raw, dtype=HEADER_DTYPE).reshape(()).view(np.recarray)
        if bytes(header.map)[:3] != MAP_ID[:3]:
            raise ValueError("no MRC map ID")
        order = byte_order_from_machine_stamp(header.machst)
        header = header.view(header.dtype.newbyteorder(order))
        itemsize = data_dtype_from_header(header).itemsize
    except (OSError, EOFError, ValueError) as err:
        problem = f"not a readable {kind}-compressed MRC file ({err})"
        raise TomogramFileError(path, problem) from None
    return itemsize * int(np.prod(data_shape_from_header(header), dtype=np.int64))
