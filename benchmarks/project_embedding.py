"""Embedding a project on a local Dask cluster of 2 worker processes against one process, and a
worker's peak memory on large tomograms.

1. Throughput: a simulated RELION 5 project of 20 tomograms of 64 x 512 x 512 (10 A/voxel, 300
   particles each), embedded in one process and on 2 workers, interleaved, best of three; prints
   particles/s of each and their ratio (target: 2 workers >= 90% of one process), and what
   starting on the cluster costs (sending the model to the workers, one empty task's round
   trip) as a share of the run (to be under 5 %).
2. Memory: 4 tomograms of 128 x 512 x 512 (noise, 128 MiB each) with 500 random particles each, on
   2 workers; prints the largest peak resident memory of a worker (target <= 1.5 GB).

Usage: python benchmarks/project_embedding.py [--tomograms N] [--particles M] [--repeats R]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from napari_affinity_vae.io.projects import open_project
from napari_affinity_vae.io.projects.project import Project, TomogramEntry
from napari_affinity_vae.io.tomogram import write_tomogram
from napari_affinity_vae.model.bundled import load_bundled
from napari_affinity_vae.operations.embed_project import embed_project_steps, local_cluster
from napari_affinity_vae.progress import run_steps
from napari_affinity_vae.simulate.project import write_project
from napari_affinity_vae.simulate.tomogram import Simulation

WORKERS = 2


def embed_seconds(project, model_and_card, client=None, threads=None) -> float:
    start = time.perf_counter()
    steps = embed_project_steps(project, *model_and_card, client=client, threads=threads)
    table = run_steps(steps, len(project.particles), "", None)
    assert table["latent_0"].notna().all()
    return time.perf_counter() - start


def throughput(folder: Path, tomograms: int, particles: int, repeats: int) -> None:
    from distributed import Client

    settings = Simulation(shape=(64, 512, 512), particles=particles, snr=0.1, seed=0)
    start = time.perf_counter()
    write_project(folder, settings, tomograms)
    print(f"simulating {tomograms} tomograms: {time.perf_counter() - start:.0f} s")
    project = open_project([folder / "optimisation_set.star"])
    n = len(project.particles)
    bundled = load_bundled()
    threads = max(1, (os.cpu_count() or 1) // WORKERS)
    with (
        local_cluster(WORKERS) as cluster,
        Client(cluster) as client,
    ):
        one, many = [], []
        for _ in range(repeats):
            one.append(embed_seconds(project, bundled))
            many.append(embed_seconds(project, bundled, client, threads))
        start = time.perf_counter()
        client.scatter(bundled, broadcast=True, hash=False)
        client.submit(int, pure=False).result()
        startup = time.perf_counter() - start
    print(f"project: {tomograms} tomograms, {n} particles")
    print(f"one process: {n / min(one):.0f} particles/s (best of {repeats})")
    print(f"{WORKERS} Dask workers: {n / min(many):.0f} particles/s (best of {repeats})")
    print(f"{WORKERS} workers / one process: {min(one) / min(many):.0%}")
    print(
        f"start-up on the cluster (the model sent, an empty task's round trip): "
        f"{startup * 1000:.0f} ms, {startup / min(many):.1%} of the run"
    )


def worker_memory(folder: Path) -> None:
    from distributed import Client

    shape, count = (128, 512, 512), 500
    rng = np.random.default_rng(0)
    entries, tables = {}, []
    for i in range(4):
        name = f"big_{i}"
        path = write_tomogram(folder / f"{name}.mrc", rng.normal(size=shape).astype("f4"), 10.0)
        entries[name] = TomogramEntry(name, {"tomogram": path}, 10.0, shape)
        coords = rng.uniform(20, np.asarray(shape) - 20, (count, 3))
        tables.append(pd.DataFrame(coords, columns=["z", "y", "x"]).assign(tomo_name=name))
    project = Project(entries, pd.concat(tables, ignore_index=True))
    with (
        local_cluster(WORKERS) as cluster,
        Client(cluster) as client,
    ):
        embed_seconds(project, load_bundled(), client, 1)
        peaks = client.run(_peak_memory)
    print(
        f"tomograms of {' x '.join(map(str, shape))}: worker peak memory "
        f"{max(peaks.values()) / 2**30:.2f} GB (largest of {len(peaks)})"
    )


def _peak_memory() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tomograms", type=int, default=20)
    parser.add_argument("--particles", type=int, default=300, help="per tomogram")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        throughput(Path(folder) / "sim", args.tomograms, args.particles, args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        worker_memory(Path(folder))


if __name__ == "__main__":
    main()
