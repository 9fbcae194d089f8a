"""Picking and embedding a tomogram larger than a memory budget: the memory the process owns
(anonymous pages: arrays, buffers) stays within the budget, however large the file. Pages of the
memory-mapped file itself are page cache the kernel can drop at any time, so they do not count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np

SHAPE = (120, 1536, 1536)  # float32: 1.13 GB
BUDGET_MB = 500

RUN = """
import sys, threading, time
from pathlib import Path

def anonymous_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024

peak = [0.0]
def watch():
    while True:
        peak[0] = max(peak[0], anonymous_mb())
        time.sleep(0.005)
threading.Thread(target=watch, daemon=True).start()

from napari_affinity_vae.io.tomogram import open_tomogram
from napari_affinity_vae.model.bundled import load_bundled
from napari_affinity_vae.model.embedding import embed
from napari_affinity_vae.particles.picking import PickSettings, pick

tomogram = open_tomogram(Path(sys.argv[1]))
baseline = anonymous_mb()
picks = pick(tomogram.data, PickSettings(150, 250, tomogram.voxel_size, max_count=2000))
model, card = load_bundled()
table = embed(tomogram, picks, model, card)
time.sleep(0.05)
print(len(picks), len(table), round(baseline), round(peak[0]))
"""


def _write_blobs(path: Path) -> None:
    """A noisy tomogram with dark blobs, written plane by plane (never whole in memory)."""
    rng = np.random.default_rng(0)
    with mrcfile.new_mmap(path, SHAPE, mrc_mode=2, overwrite=True) as mrc:
        mrc.voxel_size = 10.0
        blob = np.zeros((20, 20, 20), np.float32)
        grid = np.indices(blob.shape) - 9.5
        blob[np.sum(grid**2, axis=0) < 81] = -3.0
        for z in range(0, SHAPE[0], 20):
            slab = rng.normal(0, 1, (min(20, SHAPE[0] - z), *SHAPE[1:])).astype(np.float32)
            if slab.shape[0] == 20 and 20 <= z < SHAPE[0] - 40:
                for y in range(40, SHAPE[1] - 40, 60):
                    for x in range(40, SHAPE[2] - 40, 60):
                        slab[:, y : y + 20, x : x + 20] += blob
            mrc.data[z : z + slab.shape[0]] = slab


def test_a_tomogram_larger_than_the_budget_is_picked_and_embedded(tmp_path):
    path = tmp_path / "large.mrc"
    _write_blobs(path)
    assert path.stat().st_size > 1.5 * BUDGET_MB * 2**20
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(path)], capture_output=True, text=True, check=True
    )
    picks, embedded, baseline, peak = map(int, done.stdout.split()[-4:])
    assert picks > 500 and embedded == picks
    assert peak - baseline < BUDGET_MB, f"{peak - baseline} MB above the {baseline} MB at start"
