"""Throughput of the bundled affinity-VAE: encoding subtomograms (normalisation, batching and
copies included), the bare network's forward pass on random tensors (the copy made for
inference, as encoding runs it), and training samples/s.

Usage: python benchmarks/model.py [BATCH]   (default: the boxes a forward pass encoding takes)
"""

from __future__ import annotations

import os
import platform
import sys
import time

import numpy as np
import torch

from napari_affinity_vae.model.bundled import load_bundled
from napari_affinity_vae.model.inference import device, encode, for_inference, forward_batch
from napari_affinity_vae.model.losses import kl_divergence, reconstruction_loss
from napari_affinity_vae.volumes import normalise

N = 2048


def rate(seconds: float, n: int, unit: str) -> str:
    return f"{n / seconds:,.0f} {unit}/s"


def main() -> None:
    model, card = load_bundled()
    target = device()
    prepared = for_inference(model)
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else forward_batch(card.architecture, target)
    box = card.architecture.box
    boxes = np.random.default_rng(0).normal(size=(N, box, box, box)).astype(np.float32)
    encode(model, normalise(boxes[:batch]), batch)  # warm up
    start = time.perf_counter()
    encode(model, normalise(boxes), batch)
    encoding = time.perf_counter() - start

    x = torch.from_numpy(boxes).unsqueeze(1)
    with torch.inference_mode():
        start = time.perf_counter()
        for i in range(0, N, batch):
            prepared(x[i : i + batch].to(target))
        forward = time.perf_counter() - start

    model.to(target).train()
    optimiser = torch.optim.Adam(model.parameters())
    steps, train_batch = 8, 64
    start = time.perf_counter()
    for i in range(steps):
        xb = x[i * train_batch : (i + 1) * train_batch].to(target)
        reconstruction, mu, log_variance, _ = model(xb)
        loss = reconstruction_loss(reconstruction, xb) + 1e-3 * kl_divergence(mu, log_variance)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    training = time.perf_counter() - start
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {target}")
    print(f"torch {torch.__version__}")
    print(f"model: {card.describe()}")
    print(f"encode (normalise, batches of {batch}, copies): {rate(encoding, N, 'subtomograms')}")
    print(f"bare forward on random tensors: {rate(forward, N, 'subtomograms')}")
    print(f"encode / forward: {forward / encoding:.0%}")
    print(
        f"training (batches of {train_batch}, forward + backward + Adam): "
        f"{rate(training, steps * train_batch, 'samples')}"
    )


if __name__ == "__main__":
    main()
