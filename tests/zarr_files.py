"""Zarr files as other tools write them, for tests (with zarr 2 or 3 installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

V2 = {"zarr_format": 2} if int(zarr.__version__.split(".")[0]) >= 3 else {}


def portal_style_zarr(path: Path, data: np.ndarray, voxel_size_nm: float, levels: int = 3) -> None:
    """A Zarr v2 group with NGFF 0.4 metadata at the top level, scales in nanometres and no
    translations, levels binned by 2 by striding: the layout of the CryoET Data Portal's
    tomograms."""
    group = zarr.open_group(str(path), mode="w", **V2)
    datasets = []
    for k in range(levels):
        level = np.ascontiguousarray(data[:: 2**k, :: 2**k, :: 2**k])
        group.create_dataset(str(k), data=level, shape=level.shape, chunks=(16, 16, 16))
        scale = {"type": "scale", "scale": [voxel_size_nm * 2**k] * 3}
        datasets.append({"path": str(k), "coordinateTransformations": [scale]})
    axes = [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    group.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": datasets}]


def simulated_project_listing(folder: Path, fmt: str, source: str, capsys) -> str:
    """What `avae project` prints of a project of two simulated tomograms of four particles
    that `avae simulate --format fmt` wrote; ``source`` is the file in it to open."""
    from napari_affinity_vae.cli import main

    common = ["--shape", "48", "96", "96", "--particles", "4", "--tomograms", "2"]
    assert main(["simulate", str(folder), *common, "--format", fmt]) == 0
    capsys.readouterr()
    assert main(["project", str(folder / source)]) == 0
    return capsys.readouterr().out
