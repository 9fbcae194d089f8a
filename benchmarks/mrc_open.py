"""Open a 4 GB float32 MRC (a sparse file) memory-mapped, read one slice, print time and memory.

Targets: open in under 1 s, resident memory up by under 200 MB. Also times what napari's
reader adds (contrast limits from a sample of planes). Usage: python benchmarks/mrc_open.py [DIR]
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np

from napari_affinity_vae.io.tomogram import contrast_limits, open_tomogram

SHAPE = (256, 2048, 2048)  # 4 GiB of float32


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def make_sparse_mrc(path: Path) -> None:
    with mrcfile.new_mmap(path, shape=SHAPE, mrc_mode=2, overwrite=True) as mrc:
        mrc.voxel_size = 10.0


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    path = folder / "benchmark_4GB.mrc"
    make_sparse_mrc(path)
    try:
        size_gb = path.stat().st_size / 1e9
        before = resident_mb()
        start = time.perf_counter()
        tomogram = open_tomogram(path)
        opened = time.perf_counter() - start
        start = time.perf_counter()
        plane = np.array(tomogram.data[SHAPE[0] // 2])
        sliced = time.perf_counter() - start
        after = resident_mb()
        start = time.perf_counter()
        contrast_limits(tomogram.data)
        limits = time.perf_counter() - start
    finally:
        path.unlink()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"file: {size_gb:.2f} GB float32 MRC, shape {SHAPE} (z, y, x)")
    print(f"open time: {opened * 1e3:.1f} ms (target < 1000 ms)")
    print(f"one slice ({plane.shape[0]} x {plane.shape[1]}): {sliced * 1e3:.1f} ms")
    print(f"resident memory increase after open + slice: {after - before:.1f} MB (target < 200 MB)")
    print(f"contrast limits from a sample (napari reader): {limits * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
