"""Cutting boxes from an OME-Zarr tomogram chunked and compressed as the CryoET Data Portal's
(256^3 chunks), beside the same data memory-mapped from MRC: in chunk order (each chunk
decompressed once, as embedding does) and, for contrast, box by box in table order (a chunk
decompressed again for every box that touches it). Then embedding from each.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from napari_affinity_vae.io.omezarr import write_ome_zarr
from napari_affinity_vae.io.tomogram import open_tomogram, write_tomogram
from napari_affinity_vae.model.bundled import load_bundled
from napari_affinity_vae.model.embedding import embed
from napari_affinity_vae.particles.chunked import planned_reads
from napari_affinity_vae.particles.extract import extract_boxes

SHAPE = (256, 512, 512)
CHUNKS = 256
BOX = 32
N = 4096
NAIVE = 256  # boxes cut one by one in table order (slow: fewer of them)


def rate(count: int, run) -> float:
    """Boxes per second of ``run``, best of three."""
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=SHAPE).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        mrc = open_tomogram(write_tomogram(Path(folder) / "t.mrc", data, 10.0))
        zarr_path = write_ome_zarr(Path(folder) / "t.zarr", data, 10.0, levels=1, chunks=CHUNKS)
        zarr = open_tomogram(zarr_path)
        del data
        centres = rng.uniform(BOX, np.array(SHAPE) - BOX, (N, 3))

        def chunk_order() -> None:
            cache, order = planned_reads(zarr.data, centres, BOX)
            extract_boxes(cache, centres[order], BOX)

        def box_by_box() -> None:
            for centre in centres[:NAIVE]:
                extract_boxes(zarr.data, centre[None], BOX)

        print(f"file: {SHAPE[0]} x {SHAPE[1]} x {SHAPE[2]} float32, Zarr chunks {CHUNKS}^3")
        from_mrc = rate(N, lambda: extract_boxes(mrc.data, centres, BOX))
        print(f"extraction from MRC (boxes/s): {from_mrc:,.0f}")
        print(f"extraction from Zarr in chunk order (boxes/s): {rate(N, chunk_order):,.0f}")
        print(f"extraction from Zarr box by box (boxes/s): {rate(NAIVE, box_by_box):,.0f}")

        model, card = load_bundled()
        particles = pd.DataFrame(centres, columns=["z", "y", "x"])
        for name, tomogram in (("MRC", mrc), ("Zarr", zarr)):
            embedding = rate(N, lambda t=tomogram: embed(t, particles, model, card, error=False))
            print(f"embedding from {name} (boxes/s): {embedding:,.0f}")


if __name__ == "__main__":
    main()
