"""Encoding and decoding in batches, under inference mode, on every CPU thread or a GPU."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.functional import mse_loss

from napari_affinity_vae.model.network import AffinityVAE
from napari_affinity_vae.progress import Progress

_threads: int | None = None  # CPU threads for torch; None: every usable core


def use_threads(threads: int | None) -> None:
    """Run torch on ``threads`` CPU threads (None: every usable core), e.g. one process of several
    sharing the cores."""
    global _threads
    _threads = threads


def usable_cores() -> int:
    """The cores this process may run on (``taskset``, a cgroup), not every core the machine
    has: more torch threads than cores stall each other."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def device() -> torch.device:
    """A GPU when there is one, else the CPU with the threads :func:`use_threads` says."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    threads = _threads or usable_cores()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.device("cpu")


@torch.inference_mode()
def encode(
    model: AffinityVAE,
    boxes: np.ndarray,
    batch_size: int = 256,
    progress: Progress | None = None,
    error: bool = True,
) -> dict[str, np.ndarray]:
    """Latent means ``mu``, ``pose`` and, with ``error``, each box's reconstruction error (which
    runs the decoder too: about four times the work) of normalised boxes (n, *box)."""
    model.eval()
    target = device()
    model.to(target)
    outputs: dict[str, list[np.ndarray]] = {"mu": [], "pose": [], "error": []}
    starts: Iterable[int] = range(0, len(boxes), batch_size)
    if progress:
        starts = progress(starts, desc="encoding", total=-(-len(boxes) // batch_size))
    for start in starts:
        x = torch.from_numpy(np.ascontiguousarray(boxes[start : start + batch_size]))
        x = x.unsqueeze(1).to(target)
        mu, _, pose = model.encode(x)
        outputs["mu"].append(mu.cpu().numpy())
        outputs["pose"].append(pose.cpu().numpy())
        if error:
            reconstruction = model.decode(mu, pose)
            loss = mse_loss(reconstruction, x, reduction="none").flatten(1).mean(dim=1)
            outputs["error"].append(loss.cpu().numpy())
    return {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in outputs.items()}


@torch.inference_mode()
def decode(
    model: AffinityVAE,
    latent: np.ndarray,
    pose: np.ndarray,
    box: int | None = None,
    zoom: float = 1.0,
) -> np.ndarray:
    """Volumes (n, *box) from latent vectors (n, latent_dims) and pose values (n, pose_dims) (none:
    zeros). A splat model also renders ``box`` voxels a side (default: its own) with voxels
    ``1 / zoom`` of its voxel size."""
    z, p = _inputs(model, latent, pose)
    return model.decode(z, p, box, zoom)[:, 0].cpu().numpy()


@dataclass
class Splats:
    """A splat model's Gaussians, in Angstrom from the box's centre voxel, (z, y, x) order:
    ``centres`` (n, k, 3), ``weights`` (n, k) in (0, 1), ``widths`` (n, k), the standard
    deviations."""

    centres: np.ndarray
    weights: np.ndarray
    widths: np.ndarray


@torch.inference_mode()
def splats(model: AffinityVAE, latent: np.ndarray, pose: np.ndarray, voxel_size: float) -> Splats:
    """The Gaussians a splat model renders for latent vectors and poses (see :func:`decode`),
    for a model of ``voxel_size`` Angstrom per voxel (its card's)."""
    if model.architecture.decoder != "splat":
        raise ValueError("only a splat decoder places Gaussians")
    z, p = _inputs(model, latent, pose)
    centres, weights, widths = model.splat.splats(z, p)
    half = model.architecture.box / 2 * voxel_size  # Angstrom per half-box unit
    return Splats(
        centres.flip(-1).cpu().numpy() * half,
        weights.cpu().numpy(),
        widths.cpu().numpy() * half,
    )


def _inputs(
    model: AffinityVAE, latent: np.ndarray, pose: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent and pose as tensors on the device, with the model in eval mode there."""
    model.eval()
    target = device()
    model.to(target)
    z = torch.as_tensor(np.atleast_2d(latent), dtype=torch.float32, device=target)
    p = torch.as_tensor(np.atleast_2d(pose), dtype=torch.float32, device=target)
    if p.shape[1] == 0 or p.numel() == 0:
        p = z.new_zeros((len(z), model.architecture.pose_dims))
    return z, p
