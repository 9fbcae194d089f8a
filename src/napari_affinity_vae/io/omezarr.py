"""OME-Zarr tomograms: multiscale images read with ``zarr`` (NGFF 0.4, as the CryoET Data Portal
and copick write them, and 0.5), written with ``ome-zarr``; voxel sizes in Angstrom."""

from __future__ import annotations

import lzma
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from napari_affinity_vae.errors import TomogramFileError
from napari_affinity_vae.io.atomic import atomic_folder
from napari_affinity_vae.io.tomogram import Level

ANGSTROM_PER_UNIT = {
    "angstrom": 1.0,
    "nanometer": 10.0,
    "micrometer": 1e4,
    "picometer": 0.01,
}
SPATIAL = ("z", "y", "x")
# what numcodecs' decompressors (Blosc, Zstd, LZ4; GZip, BZ2; Zlib; LZMA) and an uncompressed
# chunk of the wrong size raise for a chunk file cut short or corrupt
DECOMPRESSION_ERRORS = (RuntimeError, ValueError, EOFError, zlib.error, lzma.LZMAError)


def is_ome_zarr(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding a multiscale OME-Zarr image."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in ("zarr.json", ".zattrs"))


def read_ome_zarr(path: str | Path) -> tuple[tuple[Level, ...], float]:
    """The levels of the multiscale image at ``path``, finest first, as lazily read Zarr arrays
    (:class:`ZarrLevel`), and the finest level's voxel size in Angstrom (0 when the metadata give
    no physical unit and a scale of 1, as for a header voxel size of 0). A level not binned by the
    same factor along every axis is left out: coarser levels only make work faster."""
    path = Path(path)
    try:
        group = zarr.open_group(path, mode="r")
        attrs = group.attrs.asdict()
        multiscales = attrs.get("ome", attrs).get("multiscales")
        if not multiscales:
            raise TomogramFileError(path, "not an OME-Zarr image: no 'multiscales' metadata")
        image = multiscales[0]
        axes = [axis["name"] if isinstance(axis, dict) else axis for axis in image["axes"]]
        if tuple(axes) != SPATIAL:  # OME-Zarr orders space axes z, y, x; read so, not turned
            raise TomogramFileError(
                path, f"the image's axes are {axes}; a tomogram has exactly z, y and x, in order"
            )
        scales, offsets = zip(*(_transform(d, image) for d in image["datasets"]), strict=True)
        arrays = [_level_array(group, d["path"], path) for d in image["datasets"]]
    except (KeyError, TypeError, ValueError, OSError) as err:
        if isinstance(err, TomogramFileError):
            raise
        raise TomogramFileError(path, f"unreadable OME-Zarr metadata ({err})") from None
    unit = _unit(image["axes"][-1], path)
    finest = np.asarray(scales[0], dtype=float)
    if not np.allclose(finest, finest[0], rtol=1e-3):
        raise TomogramFileError(
            path,
            f"voxels of {finest.tolist()} (z, y, x) are not cubic; resample to cubic voxels",
        )
    levels = []
    for array, scale, offset in zip(arrays, scales, offsets, strict=True):
        factors = np.asarray(scale) / finest
        if not np.allclose(factors, factors[0], rtol=1e-3):
            continue  # binned along some axes only (ome-zarr-py's default: y and x): not used
        shift = (np.asarray(offset) - offsets[0]) / finest
        levels.append(Level(array, float(factors[0]), tuple(float(v) for v in shift)))
    if unit is None:
        return tuple(levels), 0.0 if np.isclose(finest[-1], 1.0) else float(finest[-1])
    return tuple(levels), float(finest[-1] * ANGSTROM_PER_UNIT[unit])


def _level_array(group: zarr.Group, name: str, path: Path) -> ZarrLevel:
    """The array of the level the metadata call ``name``, read through :class:`ZarrLevel`."""
    try:
        return ZarrLevel(group[name], path, name)
    except KeyError:
        raise TomogramFileError(
            path,
            f"the array {name!r} of a level listed in the metadata is missing (an incomplete "
            "copy or download?)",
        ) from None


class ZarrLevel:
    """A level's Zarr array, read as NumPy arrays chunk by chunk (napari's layer data protocol):
    a chunk that cannot be decompressed (cut short or corrupt) raises a
    :class:`TomogramFileError` naming the image."""

    def __init__(self, array: Any, path: Path, name: str) -> None:
        self._array = array
        self.path = path
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self._array.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._array.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def chunks(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self._array.chunks)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self._array[key])
        except DECOMPRESSION_ERRORS as err:
            raise TomogramFileError(
                self.path,
                f"a chunk of array {self.name!r} cannot be decompressed: its file is truncated "
                f"or corrupt (an interrupted download?); download the image again ({err})",
            ) from None

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return np.asarray(self[...], dtype=dtype)


def _transform(dataset: dict, image: dict) -> tuple[np.ndarray, np.ndarray]:
    """A level's scale and translation, with the image-wide transformations applied after."""
    scale, offset = np.ones(len(image["axes"])), np.zeros(len(image["axes"]))
    for steps in (
        dataset.get("coordinateTransformations", []),
        image.get("coordinateTransformations", []),
    ):
        for step in steps:
            if step["type"] == "scale":
                scale, offset = scale * step["scale"], offset * step["scale"]
            elif step["type"] == "translation":
                offset = offset + step["translation"]
    return scale, offset


def _unit(axis: dict | str, path: Path) -> str | None:
    unit = axis.get("unit") if isinstance(axis, dict) else None
    if unit is not None and unit not in ANGSTROM_PER_UNIT:
        raise TomogramFileError(path, f"the spatial unit {unit!r} is not a length unit")
    return unit


def write_ome_zarr(
    path: str | Path, data: np.ndarray, voxel_size: float, levels: int = 3, chunks: int = 64
) -> Path:
    """Write a (z, y, x) volume as a multiscale OME-Zarr image in Angstrom (NGFF 0.4, which every
    reader takes), each level the mean of 2 x 2 x 2 voxels of the one before, in cubic ``chunks``;
    the folder appears only when complete."""
    from ome_zarr.writer import write_multiscale

    path = Path(path)
    pyramid = [np.ascontiguousarray(data, dtype=np.float32)]
    for _ in range(1, levels):
        pyramid.append(_binned(pyramid[-1]))
    transforms = [
        [
            {"type": "scale", "scale": [voxel_size * 2**k] * 3},
            {"type": "translation", "translation": [voxel_size * (2**k - 1) / 2] * 3},
        ]
        for k in range(levels)
    ]
    with atomic_folder(path) as staging:
        write_multiscale(
            pyramid,
            zarr.open_group(str(staging), mode="w"),
            axes=[{"name": axis, "type": "space", "unit": "angstrom"} for axis in SPATIAL],
            coordinate_transformations=transforms,
            storage_options={"chunks": (chunks,) * 3},
        )
    return path


def _binned(volume: np.ndarray) -> np.ndarray:
    """The mean of each 2 x 2 x 2 block (an odd last voxel repeated to fill its block)."""
    padded = np.pad(volume, [(0, n % 2) for n in volume.shape], mode="edge")
    z, y, x = (n // 2 for n in padded.shape)
    return padded.reshape(z, 2, y, 2, x, 2).mean(axis=(1, 3, 5), dtype=np.float32)
