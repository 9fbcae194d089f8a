"""Pick the sample tomogram (200 x 400 x 400, SNR 0.1) and another of the same kind (seed 5);
print throughput and accuracy.

Targets (issue 5): >= 20 Mvoxel/s; recall >= 0.9 and precision >= 0.8 within half a radius.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time

from napari_affinity_vae._sample_data import SAMPLE
from napari_affinity_vae.analysis.metrics import pick_recall_precision
from napari_affinity_vae.particles.matching import radii_of
from napari_affinity_vae.particles.picking import PickSettings, pick
from napari_affinity_vae.simulate.molecules import extent
from napari_affinity_vae.simulate.tomogram import simulate_tomogram


def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores")
    for seed in (SAMPLE.seed, 5):
        result = simulate_tomogram(dataclasses.replace(SAMPLE, seed=seed))
        start = time.perf_counter()
        picks = pick(result.tomogram, PickSettings(100, 300, SAMPLE.voxel_size))
        elapsed = time.perf_counter() - start
        truth = result.particles
        radii = radii_of(truth, SAMPLE.voxel_size, extent)
        recall, precision = pick_recall_precision(
            picks[["z", "y", "x"]].to_numpy(), truth[["z", "y", "x"]].to_numpy(), radii
        )
        shape = result.tomogram.shape
        print(f"picking {shape}, seed {seed}: {result.tomogram.size / elapsed / 1e6:.1f} Mvoxel/s")
        print(
            f"seed {seed}, {len(picks)} picks for {len(truth)} particles: recall {recall:.2f}, "
            f"precision {precision:.2f}"
        )


if __name__ == "__main__":
    main()
