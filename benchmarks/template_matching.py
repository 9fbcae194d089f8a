"""Template matching: speed in rotations per second on a 128 x 512 x 512 tomogram (full size and
binned by 2, on the CPU, and on a GPU when there is one), and accuracy on fresh simulated
tomograms (the sample's kind, seeds never used while building it) with the true maps of all nine
classes as templates: per class, recall and precision (a pick counts for its template's class)
and the angular error of the best rotation, taken up to the class's symmetry, as the binned
search found it and after the picks were refined at full size (median, and the share within the
angular step). The filament's error is also given up to its helical screw (one subunit's turn
about its axis with its rise along it: the same filament but for its ends).
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
    refine_picks,
    rotation_grid,
    work,
)
from napari_affinity_vae.progress import run_steps
from napari_affinity_vae.schema import ANGLES, AXES, CLASS_NAME, TEMPLATE
from napari_affinity_vae.simulate.molecules import (
    FILAMENT_TWIST,
    MOLECULES,
    extent,
    molecule_map,
    symmetry,
)
from napari_affinity_vae.simulate.tomogram import simulate_tomogram

SEEDS = (42, 43)  # 41 was used to choose the refinement's settings
STEP = 30.0
SYMMETRY = {"proteasome": "D7", "chaperonin": "D7", "single_ring": "C7", "tetrahedral": "T"}
STAGES = ("search", "refined")


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


def angular_errors(true: np.ndarray, found: np.ndarray, elements: Rotation) -> np.ndarray:
    """Degrees between true and found RELION angles, the least over the symmetry's elements."""
    if not len(true):
        return np.zeros(0)
    a = Rotation.from_euler("ZYZ", true, degrees=True)
    b = Rotation.from_euler("ZYZ", found, degrees=True)
    return np.min([np.degrees((a.inv() * s.inv() * b).magnitude()) for s in elements], axis=0)


def symmetries() -> dict[str, Rotation]:
    """Each class's symmetry elements (the simulator's: the proteasome's two-folds lie 0.3 rad
    from x), and the filament's helical screw by one subunit either way."""
    groups = {n: symmetry(n) for n in MOLECULES}
    screw = Rotation.from_euler("z", [[-FILAMENT_TWIST], [0], [FILAMENT_TWIST]], degrees=True)
    return groups | {"filament (screw)": screw}


def accuracy() -> None:
    templates = [
        Template(n, molecule_map(n, SAMPLE.voxel_size), SYMMETRY.get(n, "C1")) for n in MOLECULES
    ]
    groups = symmetries()
    totals = {n: np.zeros(4) for n in MOLECULES}  # found, particles, true picks, picks
    errors: dict[str, dict[str, list[float]]] = {s: {n: [] for n in groups} for s in STAGES}
    for seed in SEEDS:
        result = simulate_tomogram(dataclasses.replace(SAMPLE, seed=seed))
        settings = MatchSettings(SAMPLE.voxel_size, angular_step=STEP, binning=2, refine=False)
        start = time.perf_counter()
        searched = run_steps(match_steps(result.tomogram, templates, settings), 1, "", None)
        middle = time.perf_counter()
        refining = refine_picks(result.tomogram, searched.picks, templates, settings, 2)
        refined = run_steps(refining, 1, "", None)
        print(
            f"seed {seed}: {len(refined)} picks, search {middle - start:.0f} s, "
            f"refinement {time.perf_counter() - middle:.0f} s"
        )
        truth = result.particles
        for name in MOLECULES:
            mine = truth[truth[CLASS_NAME] == name]
            radii = radii_of(mine, SAMPLE.voxel_size, extent)
            for stage, picks in zip(STAGES, (searched.picks, refined), strict=True):
                theirs = picks[picks[TEMPLATE] == name]
                found = match_picks(
                    theirs[list(AXES)].to_numpy(), mine[list(AXES)].to_numpy(), radii
                )
                hit = found >= 0
                if stage == STAGES[-1]:
                    totals[name] += [hit.sum(), len(mine), hit.sum(), len(theirs)]
                true = mine[list(ANGLES)].to_numpy()[hit]
                best = theirs[list(ANGLES)].to_numpy()[found[hit]]
                for group in (name, f"{name} (screw)"):
                    if group in groups:
                        errors[stage][group] += list(angular_errors(true, best, groups[group]))
    print(f"recall and precision after refinement; angular error: median (share within {STEP:g})")
    for name in groups:
        found, count, true, picked = totals.get(name.split()[0], np.zeros(4))
        cells = []
        for stage in STAGES:
            error = np.array(errors[stage][name])
            share = np.mean(error <= STEP) if len(error) else np.nan
            cells.append(f"{stage} {np.median(error) if len(error) else np.nan:.0f} ({share:.2f})")
        print(
            f"{name} ({SYMMETRY.get(name, 'C1')}): recall {found / max(count, 1):.2f}, "
            f"precision {true / max(picked, 1):.2f}, angular error " + ", ".join(cells)
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
