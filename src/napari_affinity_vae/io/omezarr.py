"""OME-Zarr tomograms: multiscale images read with ``zarr`` (NGFF 0.4, as the CryoET Data Portal
and copick write them, and 0.5), written with ``ome-zarr``; voxel sizes in Angstrom."""

from __future__ import annotations

from pathlib import Path

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


def is_ome_zarr(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding a multiscale OME-Zarr image."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in ("zarr.json", ".zattrs"))


def read_ome_zarr(path: str | Path) -> tuple[tuple[Level, ...], float]:
    """The levels of the multiscale image at ``path``, finest first, as lazily read Zarr arrays,
    and the finest level's voxel size in Angstrom (0 when the metadata give no physical unit and
    a scale of 1, as for a header voxel size of 0)."""
    path = Path(path)
    try:
        group = zarr.open_group(path, mode="r")
        attrs = group.attrs.asdict()
        multiscales = attrs.get("ome", attrs).get("multiscales")
        if not multiscales:
            raise TomogramFileError(path, "not an OME-Zarr image: no 'multiscales' metadata")
        image = multiscales[0]
        axes = [axis["name"] if isinstance(axis, dict) else axis for axis in image["axes"]]
        spatial = [axes.index(name) for name in SPATIAL if name in axes]
        if len(spatial) != 3 or len(axes) != 3:
            raise TomogramFileError(
                path, f"the image's axes are {axes}; a tomogram has exactly z, y and x"
            )
        scales, offsets = zip(*(_transform(d, image) for d in image["datasets"]), strict=True)
        arrays = [group[d["path"]] for d in image["datasets"]]
    except (KeyError, TypeError, ValueError, OSError) as err:
        if isinstance(err, TomogramFileError):
            raise
        raise TomogramFileError(path, f"unreadable OME-Zarr metadata ({err})") from None
    unit = _unit(image["axes"][spatial[-1]], path)
    finest = np.asarray(scales[0])[spatial]
    if not np.allclose(finest, finest[0], rtol=1e-3):
        raise TomogramFileError(
            path,
            f"voxels of {finest.tolist()} (z, y, x) are not cubic; resample to cubic voxels",
        )
    levels = tuple(
        Level(
            array,
            float(np.asarray(scale)[spatial][-1] / finest[-1]),
            tuple(float(v) for v in (np.asarray(offset) - offsets[0])[spatial] / finest),
        )
        for array, scale, offset in zip(arrays, scales, offsets, strict=True)
    )
    if unit is None:
        return levels, 0.0 if np.isclose(finest[-1], 1.0) else float(finest[-1])
    return levels, float(finest[-1] * ANGSTROM_PER_UNIT[unit])


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
