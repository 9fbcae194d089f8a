"""Simulate a 128 x 512 x 512 tomogram with 300 particles; print the time and peak memory.

Target on a 2-core machine: under 20 s. Usage: python benchmarks/simulate.py
"""

from __future__ import annotations

import os
import platform
import resource
import time

from napari_affinity_vae.simulate.tomogram import Simulation, simulate_tomogram

SETTINGS = Simulation(shape=(128, 512, 512), particles=300, snr=0.1, seed=0)


def main() -> None:
    start = time.perf_counter()
    result = simulate_tomogram(SETTINGS)
    elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(
        f"simulated {result.tomogram.shape} (z, y, x) with {len(result.particles)} particles of "
        f"{len(SETTINGS.classes)} classes, {len(SETTINGS.microscope.tilt_angles)} tilts"
    )
    print(f"time: {elapsed:.1f} s (target < 20 s)")
    print(f"peak resident memory of the process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
