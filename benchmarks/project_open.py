"""Opening a project from one CSV naming many tomograms, beside a folder of them (as a project's
CSV export writes it): the seconds ``open_project`` takes, the work the Project dock's Open does.

Synthetic: tomograms of 16 x 64 x 64 bytes, particles spread uniformly among them. Prints one
line per size: ``python benchmarks/project_open.py``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd

from napari_affinity_vae.io.projects import open_project

SIZES = ((20, 100_000), (100, 100_000), (100, 200_000))  # tomograms, particles
SHAPE = (16, 64, 64)


def write_project(folder: Path, tomograms: int, particles: int) -> Path:
    """``tomos/TS_000.mrc`` ... and ``particles.csv``; returns the CSV."""
    rng = np.random.default_rng(0)
    (folder / "tomos").mkdir()
    for i in range(tomograms):
        with mrcfile.new(folder / "tomos" / f"TS_{i:03d}.mrc") as mrc:
            mrc.set_data(np.zeros(SHAPE, np.int8))
            mrc.voxel_size = 10.0
    names = np.array([f"TS_{i:03d}" for i in range(tomograms)])[
        rng.integers(0, tomograms, particles)
    ]
    table = {"tomo_name": names}
    table |= {a: rng.uniform(2, n - 2, particles) for a, n in zip("zyx", SHAPE, strict=True)}
    pd.DataFrame(table).to_csv(folder / "particles.csv", index=False)
    return folder / "particles.csv"


def main() -> None:
    for tomograms, particles in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            csv = write_project(Path(tmp), tomograms, particles)
            start = time.perf_counter()
            project = open_project([csv, Path(tmp) / "tomos"])
            seconds = time.perf_counter() - start
        assert len(project.particles) == particles
        print(f"{tomograms} tomograms, {particles:,} particles: open_project {seconds:.2f} s")


if __name__ == "__main__":
    main()
