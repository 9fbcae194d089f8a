"""A simulated copick project, written with the copick library: a run per simulated tomogram
(``wbp`` at the simulation's voxel spacing) and its ground truth as picks of each class, with
their rotations, so the copick route can be tried, tested and shown without real data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from napari_affinity_vae.io.orientation import angles_to_matrices
from napari_affinity_vae.progress import Progress
from napari_affinity_vae.schema import ANGLES, AXES, CLASS_NAME
from napari_affinity_vae.simulate.tomogram import (
    SimulatedTomogram,
    Simulation,
    class_maps,
    simulate_tomogram,
)

SIMULATION_USER = "simulation"


def copick_object(class_name: str) -> str:
    """A built-in class's name as copick allows one (no underscores): ``atp-synthase``."""
    return class_name.replace("_", "-")


def write_copick_project(
    folder: Path,
    settings: Simulation,
    tomograms: int,
    progress: Progress | None = None,
    user: str = SIMULATION_USER,
) -> dict[str, Path]:
    """``config.json`` and its overlay in ``folder``: runs ``TS_01``, ... (``settings`` with
    seeds ``seed``, ``seed + 1``, ...), each a ``wbp`` tomogram and the ground truth as picks of
    each class by ``user``, session ``0``."""
    references = class_maps(settings)
    results = {}
    bar = progress(total=tomograms, desc="tomograms") if progress else None
    for i in range(tomograms):
        one = replace(settings, seed=settings.seed + i, name=f"TS_{i + 1:02d}")
        results[one.name] = simulate_tomogram(one, references=references)
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    return {"config": copick_project_of(folder, results, settings.voxel_size, user)}


def copick_project_of(
    folder: Path, results: dict[str, SimulatedTomogram], voxel_size: float, user: str
) -> Path:
    """A copick project in ``folder`` of simulated tomograms by run name; its configuration."""
    import copick
    from copick.models import PickableObject

    classes = sorted({c for r in results.values() for c in r.particles[CLASS_NAME]})
    objects = [
        PickableObject(name=copick_object(c), is_particle=True, label=i + 1)
        for i, c in enumerate(classes)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.json"
    root = copick.new_config(
        str(config), overlay_root=str((folder / "overlay").resolve()), pickable_objects=objects
    )
    for name, result in results.items():
        run = root.new_run(name)
        run.new_voxel_spacing(voxel_size).new_tomogram("wbp").from_numpy(result.tomogram)
        for class_name, rows in result.particles.groupby(CLASS_NAME):
            picks = run.new_picks(copick_object(class_name), session_id="0", user_id=user)
            transforms = np.tile(np.eye(4), (len(rows), 1, 1))
            transforms[:, :3, :3] = angles_to_matrices(rows[list(ANGLES)].to_numpy())
            picks.from_numpy(rows[list(AXES)].to_numpy()[:, ::-1] * voxel_size, transforms)
            picks.store()
    return config
