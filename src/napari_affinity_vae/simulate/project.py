"""A simulated RELION 5 project: several tomograms, ``tomograms.star``, a particles STAR with
the ground truth, and an optimisation set naming both, laid out as RELION writes them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from napari_affinity_vae.io.affinity import save_affinity
from napari_affinity_vae.io.projects.project import Project, TomogramEntry
from napari_affinity_vae.io.projects.relion5 import (
    BINNING,
    FILE_COLUMNS,
    PARTICLES_FILE,
    PIXEL_SIZE,
    SIZE_COLUMNS,
    TOMOGRAMS_BLOCK,
    TOMOGRAMS_FILE,
    write_blocks,
    write_relion5,
)
from napari_affinity_vae.io.star import TOMO_COLUMN
from napari_affinity_vae.progress import Progress
from napari_affinity_vae.schema import TOMO_NAME
from napari_affinity_vae.simulate.affinity import class_affinity
from napari_affinity_vae.simulate.outputs import write_tomogram_as
from napari_affinity_vae.simulate.tomogram import Simulation, class_maps, simulate_tomogram

BINNING_FACTOR = 4  # tomograms binned 4 times from the tilt series, as is usual for picking
OPTICS = {"rlnOpticsGroup": 1, "rlnOpticsGroupName": "opticsGroup1", "rlnVoltage": 300.0}


def write_project(
    folder: Path,
    settings: Simulation,
    tomograms: int,
    progress: Progress | None = None,
    fmt: str = "mrc",
) -> dict[str, Path]:
    """``tomograms/TS_01.mrc`` (``.zarr`` with ``fmt`` "zarr"), ... (``settings`` with seeds
    ``seed``, ``seed + 1``, ...), ``tomograms.star``, ``particles.star`` (RELION 5, centred
    Angstrom, with ``class_name``), ``optimisation_set.star`` and ``affinity.csv``, in
    ``folder``."""
    references = class_maps(settings)  # a user's unreadable molecule stops us before writing
    pixel = settings.voxel_size / BINNING_FACTOR
    entries, rows, tables, paths = {}, [], [], {}
    sizes = dict(zip(SIZE_COLUMNS, np.asarray(settings.shape) * BINNING_FACTOR, strict=True))
    bar = progress(total=tomograms, desc="tomograms") if progress else None
    try:  # an error (particles that do not fit) said on a line of its own
        for i in range(tomograms):
            one = replace(settings, seed=settings.seed + i, name=f"TS_{i + 1:02d}")
            result = simulate_tomogram(one, references=references)  # particles that do not fit:
            (folder / "tomograms").mkdir(parents=True, exist_ok=True)  # nothing written yet
            written = write_tomogram_as(
                folder / "tomograms" / one.name, result.tomogram, settings.voxel_size, fmt
            )
            paths[one.name], relative = written, f"tomograms/{written.name}"
            entries[one.name] = TomogramEntry(
                one.name, {"reconstructed": paths[one.name]}, settings.voxel_size, settings.shape
            )
            rows.append(
                {TOMO_COLUMN: one.name, PIXEL_SIZE: pixel, BINNING: float(BINNING_FACTOR)}
                | {k: int(v) for k, v in sizes.items()}
                | {FILE_COLUMNS["reconstructed"]: relative, "rlnOpticsGroupName": "opticsGroup1"}
            )
            tables.append(result.particles.assign(**{TOMO_NAME: one.name}))
            if bar:
                bar.update(1)
    finally:
        if bar:
            bar.close()
    particles = pd.concat(tables, ignore_index=True).assign(rlnOpticsGroup=1)
    optics = pd.DataFrame([OPTICS | {PIXEL_SIZE: pixel}])
    project = Project(entries, particles, blocks={"optics": optics})
    paths["tomograms"] = write_blocks(
        folder / "tomograms.star", {TOMOGRAMS_BLOCK: pd.DataFrame(rows)}
    )
    paths["particles"] = write_relion5(project, particles, folder / "particles.star")
    paths["optimisation set"] = write_blocks(
        folder / "optimisation_set.star",
        {"": {PARTICLES_FILE: "particles.star", TOMOGRAMS_FILE: "tomograms.star"}},
    )
    affinity, _ = class_affinity(references, settings.voxel_size, progress)
    paths["affinity"] = save_affinity(affinity, folder / "affinity.csv")
    return paths
