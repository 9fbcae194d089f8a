"""Write a simulated tomogram with its ground truth, references and affinity matrix to a folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_affinity_vae.io.affinity import save_affinity
from napari_affinity_vae.io.omezarr import write_ome_zarr
from napari_affinity_vae.io.particles import write_particles
from napari_affinity_vae.io.tomogram import ZARR_SUFFIX, write_tomogram
from napari_affinity_vae.progress import Progress
from napari_affinity_vae.simulate.affinity import class_affinity
from napari_affinity_vae.simulate.tomogram import SimulatedTomogram

TOMOGRAM_FORMATS = ("mrc", "zarr")


def write_tomogram_as(path: Path, data: np.ndarray, voxel_size: float, fmt: str) -> Path:
    """``path`` with the format's suffix: an MRC file, or a multiscale OME-Zarr folder."""
    if fmt == "zarr":
        return write_ome_zarr(path.with_suffix(ZARR_SUFFIX), data, voxel_size)
    return write_tomogram(path.with_suffix(".mrc"), data, voxel_size)


def write_simulation(
    result: SimulatedTomogram,
    folder: str | Path,
    progress: Progress | None = None,
    fmt: str = "mrc",
) -> dict[str, Path]:
    """``tomogram.mrc`` (or with ``fmt`` "zarr" ``tomogram.zarr``), ``particles.star`` (RELION 4
    ground truth with ``class_name``), ``references/<class>.mrc`` and ``affinity.csv`` in
    ``folder``."""
    folder = Path(folder)
    (folder / "references").mkdir(parents=True, exist_ok=True)
    voxel_size = result.settings.voxel_size
    paths = {
        "tomogram": write_tomogram_as(folder / "tomogram", result.tomogram, voxel_size, fmt),
        "particles": write_particles(result.particles, folder / "particles.star"),
    }
    for name, volume in result.references.items():
        paths[f"references/{name}"] = write_tomogram(
            folder / "references" / f"{name}.mrc", volume, voxel_size
        )
    affinity, _ = class_affinity(result.references, voxel_size, progress)
    paths["affinity"] = save_affinity(affinity, folder / "affinity.csv")
    return paths
