"""Pick simulated tomograms like the napari sample; print the throughput, recall and precision,
and per class the recall, how far picks lie from the true centres and the matched-filter ceiling.

Each tomogram is 200 x 400 x 400 voxels of 10 A holding 300 particles of the nine built-in
classes, two vesicles and four gold beads, at SNR 0.1 per tilt, picked with diameters 100-300 A.
A pick finds a particle within half the particle's radius, each particle once; picks on gold beads
and membranes are false picks.

Seeds: the picker was tuned on seeds 0-4 (``--tuning``); it is judged on seeds 100-104, which
were not looked at while tuning (the default); ``--seeds 200 201 ...`` judges on others. Targets:
recall >= 0.8 for every class, >= 0.9 overall, precision >= 0.8.

The ceiling is the recall of a matched filter that is told each particle's class, orientation
and the imaging: the particle's own map, turned to its angles and blurred by the tomogram's
point-spread function (CTF, missing wedge, weighted back-projection), correlated with the
tomogram within the matching distance of the true centre. Its best value, in standard deviations
of the same correlation on the tomogram's noise alone, has to beat the level that the class
template exceeds at as many places in the noise alone as our picker makes false picks in that
tomogram. No detector allowed that many false picks does much better at this SNR, so it is the
ceiling for a blob picker, which knows neither class nor orientation.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time

import numpy as np
import pandas as pd
from scipy import fft, ndimage, signal

from napari_affinity_vae._sample_data import SAMPLE
from napari_affinity_vae.particles.matching import match_picks, radii_of
from napari_affinity_vae.particles.picking import PickSettings, pick
from napari_affinity_vae.schema import AXES, CLASS_NAME
from napari_affinity_vae.simulate.geometry import relion_matrix, rotate_map
from napari_affinity_vae.simulate.molecules import MOLECULES, extent
from napari_affinity_vae.simulate.tomogram import (
    SimulatedTomogram,
    Simulation,
    image_and_reconstruct,
    simulate_tomogram,
)

TUNING = (0, 1, 2, 3, 4)
HELD_OUT = (100, 101, 102, 103, 104)
SETTINGS = PickSettings(100, 300, SAMPLE.voxel_size)
PSF_BOX = 33  # voxels of the point-spread function kept around its centre
NOISE_MARGIN = 16  # voxels either side of a template over which its noise level is measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--tuning", action="store_true", help="the seeds tuned on")
    chosen.add_argument("--seeds", type=int, nargs="+", help="other seeds to judge on")
    args = parser.parse_args()
    tuning = args.tuning
    seeds = args.seeds or (TUNING if tuning else HELD_OUT)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores")
    kernel = point_spread(SAMPLE)
    tables, picked, seconds = [], 0, 0.0
    for seed in seeds:
        table, count, elapsed = judged(seed, kernel)
        tables.append(table)
        picked, seconds = picked + count, seconds + elapsed
    table = pd.concat(tables, ignore_index=True)
    found = table["distance"].notna()
    voxels = len(seeds) * int(np.prod(SAMPLE.shape))
    kind = "tuning" if tuning else "held-out"
    which = f"{kind} seeds {', '.join(map(str, seeds))}"
    print(f"picking {SAMPLE.shape} x {len(seeds)}: {voxels / seconds / 1e6:.1f} Mvoxel/s")
    print(
        f"{which}, {picked} picks for {len(table)} particles: recall {found.mean():.2f}, "
        f"precision {found.sum() / picked:.2f}"
    )
    for name in MOLECULES:
        rows = table[table["class"] == name]
        distance = rows["distance"].dropna()
        print(
            f"{which}, {name}: recall {rows['distance'].notna().mean():.2f} "
            f"(ceiling {rows['ceiling'].mean():.2f}), picks {distance.median():.1f} / "
            f"{distance.quantile(0.9):.1f} voxels from the centre (median / 90th percentile; "
            f"a match within {rows['limit'].iloc[0]:.1f})"
        )


def judged(seed: int, kernel: np.ndarray) -> tuple[pd.DataFrame, int, float]:
    """The sample-like tomogram of ``seed`` picked: each particle's class, matching distance,
    distance to the pick that finds it (NaN: none) and whether the matched filter finds it; how
    many picks and the seconds picking took."""
    result = simulate_tomogram(dataclasses.replace(SAMPLE, seed=seed))
    start = time.perf_counter()
    picks = pick(result.tomogram, SETTINGS)[list(AXES)].to_numpy()
    elapsed = time.perf_counter() - start
    centres = result.particles[list(AXES)].to_numpy()
    radii = radii_of(result.particles, SAMPLE.voxel_size, extent)
    found = match_picks(picks, centres, radii)
    hit = found >= 0
    table = pd.DataFrame({"class": result.particles[CLASS_NAME], "limit": radii / 2})
    table["distance"] = np.nan
    table.loc[hit, "distance"] = np.linalg.norm(picks[found[hit]] - centres[hit], axis=1)
    false_picks = len(picks) - int(hit.sum())
    table["ceiling"] = matched_filter_finds(result, noise_of(result), kernel, false_picks)
    return table, len(picks), elapsed


def noise_of(result: SimulatedTomogram) -> np.ndarray:
    """The tomogram's noise alone: the tomogram less its noise-free reconstruction (the same
    specimen without noise), scaled by least squares."""
    clean = simulate_tomogram(dataclasses.replace(result.settings, snr=None)).tomogram
    scale = float(np.vdot(result.tomogram, clean) / np.vdot(clean, clean))
    return result.tomogram - scale * clean


def point_spread(settings: Simulation) -> np.ndarray:
    """What the imaging and reconstruction make of one voxel of protein at the centre."""
    shape = (settings.shape[0], 3 * PSF_BOX, 3 * PSF_BOX)
    middle = np.asarray(shape) // 2
    point = np.zeros(shape, dtype=np.float32)
    point[tuple(middle)] = 1.0
    noiseless = dataclasses.replace(settings, snr=None)
    response = image_and_reconstruct(point, noiseless, np.random.default_rng(0))
    return box_at(response, middle - PSF_BOX // 2, PSF_BOX)


def matched_filter_finds(
    result: SimulatedTomogram, noise: np.ndarray, kernel: np.ndarray, false_picks: int
) -> np.ndarray:
    """For each particle, whether the matched filter told its class, orientation and the imaging
    finds it among as many false alarms as ``false_picks`` (module docstring)."""
    spectrum = fft.rfftn(noise)
    levels = {}
    for name, reference in result.references.items():
        template = imaged(reference, np.zeros(3), np.zeros(3), kernel)
        scores = correlate_whole(spectrum, noise.shape, template)
        scores /= scores.std()
        size = int(extent(name) / result.settings.voxel_size)
        peaks = np.sort(scores[scores == ndimage.maximum_filter(scores, size=size)])[::-1]
        levels[name] = peaks[min(max(false_picks, 1), len(peaks)) - 1]
    radii = radii_of(result.particles, result.settings.voxel_size, extent)
    finds = []
    for row, radius in zip(result.particles.itertuples(index=False), radii, strict=True):
        name = getattr(row, CLASS_NAME)
        centre = np.array([row.z, row.y, row.x])
        corner = np.floor(centre).astype(int)
        template = imaged(
            result.references[name], np.array([row.rot, row.tilt, row.psi]), centre - corner, kernel
        )
        half, reach = template.shape[0] // 2, int(np.ceil(radius / 2))
        size = template.shape[0] + 2 * reach
        local = box_at(result.tomogram, corner - half - reach, size)
        scores = signal.correlate(local, template, mode="valid", method="fft")
        offsets = np.indices(scores.shape).reshape(3, -1).T - reach
        near = np.linalg.norm(corner + offsets - centre, axis=1) <= radius / 2
        size = template.shape[0] + 2 * NOISE_MARGIN  # a box inside the volume, near the particle
        start = np.clip(corner - half - NOISE_MARGIN, 0, np.asarray(noise.shape) - size)
        level = signal.correlate(box_at(noise, start, size), template, "valid", "fft").std()
        finds.append(scores.ravel()[near].max() / level > levels[name])
    return np.array(finds)


def imaged(reference: np.ndarray, angles: np.ndarray, shift: np.ndarray, kernel: np.ndarray):
    """``reference`` turned by RELION ``angles``, shifted by ``shift`` voxels and blurred by the
    point-spread ``kernel``, less its mean."""
    template = signal.fftconvolve(
        rotate_map(reference, relion_matrix(angles), shift), kernel, "same"
    )
    return template - template.mean()


def correlate_whole(spectrum: np.ndarray, shape: tuple[int, ...], template: np.ndarray):
    """The correlation of a volume (its ``rfftn`` ``spectrum``) with ``template`` centred on
    each voxel."""
    padded = np.zeros(shape, dtype=np.float32)
    box = template.shape[0]
    padded[:box, :box, :box] = template[::-1, ::-1, ::-1]
    scores = fft.irfftn(spectrum * fft.rfftn(padded), s=shape)
    return np.roll(scores, [-(box // 2)] * 3, axis=(0, 1, 2))


def box_at(volume: np.ndarray, start: np.ndarray, size: int) -> np.ndarray:
    """The cube of ``size`` voxels from ``start`` (z, y, x), zero outside ``volume``."""
    box = np.zeros((size,) * 3, dtype=np.float32)
    low, high = np.maximum(start, 0), np.minimum(np.asarray(start) + size, volume.shape)
    if np.all(high > low):
        source = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
        target = tuple(slice(a - s, b - s) for a, b, s in zip(low, high, start, strict=True))
        box[target] = volume[source]
    return box


if __name__ == "__main__":
    main()
