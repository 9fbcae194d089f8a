"""Template matching: speed in rotations per second on a 128 x 512 x 512 tomogram (full size and
binned by 2, on the CPU, and on a GPU when there is one), and accuracy on fresh simulated
tomograms (the sample's kind, seeds never used while building it) with the true maps of all nine
classes as templates: per class, recall and precision (a pick counts for its template's class)
and the median angular error of the best rotation, taken up to the class's symmetry.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from napari_affinity_vae._sample_data import SAMPLE
from napari_affinity_vae.particles.matching import match_picks, radii_of
from napari_affinity_vae.particles.templates import (
    MatchSettings,
    Template,
    match_steps,
    rotation_grid,
    work,
)
from napari_affinity_vae.progress import run_steps
from napari_affinity_vae.schema import ANGLES, AXES, CLASS_NAME, TEMPLATE
from napari_affinity_vae.simulate.molecules import MOLECULES, extent, molecule_map
from napari_affinity_vae.simulate.tomogram import simulate_tomogram

SEEDS = (41, 42)
STEP = 30.0
SYMMETRY = {"proteasome": "D7", "chaperonin": "D7", "single_ring": "C7", "tetrahedral": "T"}


def rotations_per_second(binning: int, rotations: int) -> float:
    """Rotations of the ribosome over the whole of a random 128 x 512 x 512 tomogram per second,
    from ``rotations`` rotations of its tiles timed after the first batch (which sets the first
    tile up); the search counts a rotation once per tile."""
    tomogram = np.random.default_rng(0).normal(size=(128, 512, 512)).astype(np.float32)
    template = Template("ribosome", molecule_map("ribosome", 10.0))
    settings = MatchSettings(10.0, binning=binning)
    tiles = work(tomogram.shape, [template], settings) // len(rotation_grid(settings.angular_step))
    steps = match_steps(tomogram, [template], settings)
    first = next(steps)
    start = time.perf_counter()
    done = first
    while done < first + rotations:
        done = next(steps)
    elapsed = time.perf_counter() - start
    steps.close()
    return (done - first) / elapsed / tiles


def angular_errors(true: np.ndarray, found: np.ndarray, group: str | None) -> np.ndarray:
    """Degrees between true and found RELION angles, the least over the symmetry's elements."""
    if not len(true):
        return np.zeros(0)
    a = Rotation.from_euler("ZYZ", true, degrees=True)
    b = Rotation.from_euler("ZYZ", found, degrees=True)
    elements = Rotation.create_group(group) if group else Rotation.identity(1)
    return np.min([np.degrees((a.inv() * s.inv() * b).magnitude()) for s in elements], axis=0)


def accuracy() -> None:
    templates = [
        Template(n, molecule_map(n, SAMPLE.voxel_size), SYMMETRY.get(n, "C1")) for n in MOLECULES
    ]
    totals = {n: np.zeros(4) for n in MOLECULES}  # found, particles, true picks, picks
    errors: dict[str, list[float]] = {n: [] for n in MOLECULES}
    for seed in SEEDS:
        result = simulate_tomogram(dataclasses.replace(SAMPLE, seed=seed))
        settings = MatchSettings(SAMPLE.voxel_size, angular_step=STEP, binning=2)
        start = time.perf_counter()
        picks = run_steps(match_steps(result.tomogram, templates, settings), 1, "", None).picks
        print(f"seed {seed}: {len(picks)} picks in {time.perf_counter() - start:.0f} s")
        truth = result.particles
        for name in MOLECULES:
            mine, theirs = truth[truth[CLASS_NAME] == name], picks[picks[TEMPLATE] == name]
            radii = radii_of(mine, SAMPLE.voxel_size, extent)
            found = match_picks(theirs[list(AXES)].to_numpy(), mine[list(AXES)].to_numpy(), radii)
            hit = found >= 0
            totals[name] += [hit.sum(), len(mine), hit.sum(), len(theirs)]
            errors[name] += list(
                angular_errors(
                    mine[list(ANGLES)].to_numpy()[hit],
                    theirs[list(ANGLES)].to_numpy()[found[hit]],
                    SYMMETRY.get(name),
                )
            )
    for name, (found, count, true, picked) in totals.items():
        median = np.median(errors[name]) if errors[name] else np.nan
        print(
            f"{name} ({SYMMETRY.get(name, 'C1')}): recall {found / count:.2f}, "
            f"precision {true / max(picked, 1):.2f}, median angular error {median:.0f} deg"
        )


def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    for binning, rotations in ((2, 64), (1, 16)):
        rate = rotations_per_second(binning, rotations)
        print(f"rotations/s, 128 x 512 x 512 binned by {binning} (CPU): {rate:.1f}")
    print(f"accuracy: seeds {SEEDS}, the sample's settings, {STEP:g} degree steps, binned by 2")
    accuracy()


if __name__ == "__main__":
    main()
