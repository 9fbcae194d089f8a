"""A copick project built with the copick library on the local file system, for tests."""

from __future__ import annotations

from pathlib import Path

from napari_affinity_vae.simulate.copick_project import copick_project_of
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


def build_copick_project(folder: Path, simulated: dict[str, SimulatedTomogram]) -> Path:
    """A copick project: runs TS_01 and TS_02 with 10 A "wbp" tomograms (and a "denoised" one in
    TS_01), the ground truth as picks of each class by user "curator", session "0", rotations
    included; and a run TS_03 without a tomogram. Returns its configuration file."""
    import copick

    config = copick_project_of(folder, simulated, 10.0, "curator")
    root = copick.from_file(str(config))
    spacing = root.get_run("TS_01").get_voxel_spacing(10.0)
    spacing.new_tomogram("denoised").from_numpy(simulated["TS_01"].tomogram * 0, levels=1)
    root.new_run("TS_03")
    return config
