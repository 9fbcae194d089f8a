"""Extraction and end-to-end embedding throughput on a memory-mapped tomogram, against the bare
network measured in the same run: the encoder alone (what embedding runs) and the full forward
pass (encoder and decoder: what embedding with the reconstruction error runs), both as
embedding runs them (:func:`~napari_affinity_vae.model.inference.for_inference`). On the CPU,
embedding cuts each batch between encodings on the encoder's threads, so the stages' wall times
add up; the script prints each one's share.

Targets: extraction >= 20,000 boxes/s; the encoder alone >= 4,000 boxes/s; embedding >= 80 % of
the encoder alone, and with the error >= 80 % of the forward pass.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from napari_affinity_vae.io.tomogram import open_tomogram, write_tomogram
from napari_affinity_vae.model.bundled import load_bundled
from napari_affinity_vae.model.embedding import embed
from napari_affinity_vae.model.inference import device, for_inference, forward_batch
from napari_affinity_vae.particles.chunked import planned_reads
from napari_affinity_vae.particles.extract import extract_boxes

SHAPE = (200, 1024, 1024)
N = 4096


def best_of(*runs, repeats: int = 3) -> list[float]:
    """The shortest of a few timings of each run, taken in turn so that a slow spell on the
    machine falls on all of them alike."""
    times = [[] for _ in runs]
    for _ in range(repeats):
        for run, taken in zip(runs, times, strict=True):
            start = time.perf_counter()
            run()
            taken.append(time.perf_counter() - start)
    return [min(taken) for taken in times]


def main() -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        path = write_tomogram(
            Path(folder) / "t.mrc", rng.normal(size=SHAPE).astype(np.float32), 10.0
        )
        tomogram = open_tomogram(path)
        centres = rng.uniform([16, 16, 16], np.array(SHAPE) - 17, (N, 3))
        model, card = load_bundled()
        particles = pd.DataFrame(centres, columns=["z", "y", "x"])
        x = torch.from_numpy(rng.normal(size=(N, 1, 32, 32, 32)).astype(np.float32))
        target = device()
        prepared = for_inference(model)  # the network embedding runs

        step = forward_batch(prepared.architecture, target)  # boxes a pass, as embedding

        def network(part) -> None:
            with torch.inference_mode():
                for i in range(0, N, step):
                    part(x[i : i + step].to(target))

        buffer = np.empty((512, 32, 32, 32), dtype=np.float32)
        threads = torch.get_num_threads()

        _, order = planned_reads(tomogram.data, centres, 32)
        planned = centres[order]

        def cut(normalised: bool) -> None:  # as embedding cuts its batches: in order, one buffer
            for i in range(0, N, 512):
                extract_boxes(
                    tomogram.data,
                    planned[i : i + 512],
                    32,
                    normalised=normalised,
                    out=buffer,
                    threads=threads,
                )

        extraction, cut_normalised, embedding, with_error, encoder, forward = best_of(
            lambda: cut(False),
            lambda: cut(True),
            lambda: embed(tomogram, particles, model, card, error=False),
            lambda: embed(tomogram, particles, model, card, error=True),
            lambda: network(prepared.encode),
            lambda: network(prepared),
        )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {target}, {threads} threads, "
        f"{step} boxes a forward pass"
    )
    print(
        f"extraction of 32^3 boxes from a memory-mapped {SHAPE} tomogram: {N / extraction:,.0f}/s"
    )
    print(f"extraction with the boxes normalised as they are cut: {N / cut_normalised:,.0f}/s")
    print(f"end-to-end embedding (extract, normalise, encode): {N / embedding:,.0f} particles/s")
    print(f"the encoder alone: {N / encoder:,.0f} boxes/s")
    print(f"embedding / encoder alone: {encoder / embedding:.0%}")
    print(f"embedding with the reconstruction error: {N / with_error:,.0f} particles/s")
    print(f"bare forward pass (encoder and decoder): {N / forward:,.0f} boxes/s")
    print(f"embedding with the error / forward: {forward / with_error:.0%}")
    per_box = {  # microseconds of wall time per box, each stage on the same threads
        "the encoder": encoder / N * 1e6,
        "cutting": extraction / N * 1e6,
        "normalising": (cut_normalised - extraction) / N * 1e6,
    }
    print("wall time per box: " + ", ".join(f"{k} {v:.0f} us" for k, v in per_box.items()))
    print(
        "embedding / encoder alone if nothing but cutting and normalising were added: "
        f"{per_box['the encoder'] / sum(per_box.values()):.0%}"
    )


if __name__ == "__main__":
    main()
