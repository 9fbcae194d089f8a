"""A copick project built with the copick library on the local file system, for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_affinity_vae.schema import ANGLES, AXES, CLASS_NAME
from napari_affinity_vae.simulate.geometry import relion_matrix
from napari_affinity_vae.simulate.tomogram import (
    SimulatedTomogram,
    Simulation,
    simulate_tomogram,
)


def simulated_runs() -> dict[str, SimulatedTomogram]:
    """Two small simulated tomograms (TS_01, TS_02) with their ground truth."""
    return {
        name: simulate_tomogram(
            Simulation(shape=(48, 128, 128), particles=10, seed=seed, name=name)
        )
        for seed, name in ((1, "TS_01"), (2, "TS_02"))
    }


def object_name(class_name: str) -> str:
    """A built-in class's name as copick allows (no underscores)."""
    return class_name.replace("_", "-")


def build_copick_project(folder: Path, simulated: dict[str, SimulatedTomogram]) -> Path:
    """A copick project: runs TS_01 and TS_02 with 10 A "wbp" tomograms (and a "denoised" one in
    TS_01), the ground truth as picks of each class by user "curator", session "0", rotations
    included; and a run TS_03 without a tomogram. Returns its configuration file."""
    import copick
    from copick.models import PickableObject

    classes = sorted({object_name(c) for s in simulated.values() for c in s.particles[CLASS_NAME]})
    objects = [PickableObject(name=c, is_particle=True, label=i + 1) for i, c in enumerate(classes)]
    config = folder / "config.json"
    root = copick.new_config(
        str(config), overlay_root=str(folder / "overlay"), pickable_objects=objects
    )
    for name, result in simulated.items():
        run = root.new_run(name)
        spacing = run.new_voxel_spacing(10.0)
        spacing.new_tomogram("wbp").from_numpy(result.tomogram, levels=2)
        if name == "TS_01":
            spacing.new_tomogram("denoised").from_numpy(result.tomogram * 0, levels=1)
        for class_name, rows in result.particles.groupby(CLASS_NAME):
            picks = run.new_picks(object_name(class_name), session_id="0", user_id="curator")
            positions = rows[list(AXES)].to_numpy()[:, ::-1] * 10.0
            transforms = np.tile(np.eye(4), (len(rows), 1, 1))
            transforms[:, :3, :3] = np.linalg.inv(relion_matrix(rows[list(ANGLES)].to_numpy()))
            picks.from_numpy(positions, transforms)
            picks.store()
    root.new_run("TS_03")
    return config
