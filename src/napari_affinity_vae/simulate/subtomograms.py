"""Training sets of subtomograms: boxes cut from crowded simulated tomograms, with ground truth.

Each box holds one particle at a random orientation, off-centre by its sub-voxel shift, with
whatever of its neighbours falls inside, and the tomogram's CTF, missing wedge and noise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd

from napari_affinity_vae.progress import Progress
from napari_affinity_vae.schema import AXES, CLASS_NAME, PSI, ROT, SHIFTS, TILT
from napari_affinity_vae.simulate.specimen import CrowdingError
from napari_affinity_vae.simulate.tomogram import Simulation, class_maps, simulate_tomogram

TRAINING_TOMOGRAM = (64, 256, 256)  # voxels, for boxes of up to 32: larger ones get more room
Locator = Callable[[np.ndarray, pd.DataFrame], np.ndarray]
PARTICLES_PER_TOMOGRAM = 48


def training_shape(box: int) -> tuple[int, int, int]:
    """The crowded tomogram boxes of ``box`` voxels are cut from: ``TRAINING_TOMOGRAM``, twice
    the box deep and four boxes wide where that is more (a 64^3 box did not fit in 64 slices)."""
    depth, width, _ = TRAINING_TOMOGRAM
    return (max(depth, 2 * box), max(width, 4 * box), max(width, 4 * box))


def simulate_subtomograms(
    settings: Simulation,
    per_class: int,
    box: int = 32,
    progress: Progress | None = None,
    off_centre: float = 0.0,
    locate: Locator | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """``per_class`` boxes of ``box``^3 voxels for each class of ``settings``; returns the boxes
    (n, z, y, x) and a table of class_name, rot, tilt, psi, shift_z/y/x (voxels), tomogram and
    centred_on.

    Boxes are centred on the particles to the nearest voxel; ``off_centre`` (voxels) moves each
    box by a normal offset of that standard deviation (at most twice it) along each axis, as a
    picker's imprecision would. With ``locate`` (tomogram, particles -> z, y, x per particle,
    NaN where not found), each particle found also gives a second box centred where it was
    found, as a picker places it (``centred_on`` "pick" rather than "particle").
    The shape and particle count of ``settings`` are replaced by crowded training tomograms.
    """
    rng = np.random.default_rng(settings.seed)
    references = class_maps(settings)
    wanted = per_class * len(settings.classes)
    boxes: list[np.ndarray] = []
    tables: list[pd.DataFrame] = []
    counts = dict.fromkeys(settings.classes, 0)
    bar = progress(total=wanted, desc="subtomograms") if progress else None
    tomogram_index, crowd = 0, PARTICLES_PER_TOMOGRAM
    while min(counts.values()) < per_class:
        one = dataclasses.replace(
            settings,
            shape=training_shape(box),
            particles=crowd,
            seed=int(rng.integers(2**31)),
            name=f"training_{tomogram_index:04d}",
        )
        try:
            result = simulate_tomogram(
                one, margin=box / 2 + np.ceil(2 * off_centre), references=references
            )
        except CrowdingError:  # large molecules, or small voxels: fewer a tomogram
            if crowd == 1:
                raise
            crowd //= 2
            continue
        table = result.particles
        keep = []
        for row, name in enumerate(table[CLASS_NAME]):
            if counts[name] < per_class:
                counts[name] += 1
                keep.append(row)
        table = table.iloc[keep].reset_index(drop=True)
        offsets = np.clip(
            rng.normal(0, off_centre, (len(table), 3)), -2 * off_centre, 2 * off_centre
        )
        truth = table[list(AXES)].to_numpy()
        centres = {"particle": truth + offsets}
        if locate is not None:
            centres["pick"] = locate(result.tomogram, result.particles)[keep]
        for centred_on, at in centres.items():
            at = np.round(at)
            upper = np.subtract(result.tomogram.shape, box // 2)
            inside = np.all((at >= box // 2) & (at <= upper), axis=1)
            at = at[inside].astype(int)
            boxes += [_cut(result.tomogram, c, box) for c in at]
            tables.append(_box_table(table[inside], truth[inside] - at, tomogram_index, centred_on))
        if bar is not None:
            bar.update(len(table))
        tomogram_index += 1
    if bar is not None:
        bar.close()
    table = pd.concat(tables, ignore_index=True)
    table.attrs["voxel_size"] = settings.voxel_size
    return np.stack(boxes), table


def _box_table(
    particles: pd.DataFrame, shifts: np.ndarray, tomogram: int, centred_on: str
) -> pd.DataFrame:
    """The table rows of boxes cut ``shifts`` (voxels) off ``particles``."""
    return pd.DataFrame(
        {
            CLASS_NAME: particles[CLASS_NAME].to_numpy(),
            ROT: particles[ROT].to_numpy(),
            TILT: particles[TILT].to_numpy(),
            PSI: particles[PSI].to_numpy(),
            **dict(zip(SHIFTS, shifts.T, strict=True)),
            "tomogram": tomogram,
            "centred_on": centred_on,
        }
    )


def _cut(tomogram: np.ndarray, centre: np.ndarray, box: int) -> np.ndarray:
    """The ``box``^3 block whose voxel ``box // 2`` is ``centre`` (which must lie inside)."""
    start = centre - box // 2
    return np.array(tomogram[tuple(slice(s, s + box) for s in start)], dtype=np.float32)
