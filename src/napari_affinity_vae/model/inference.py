"""Encoding and decoding in batches, under inference mode, on every CPU thread or a GPU."""

from __future__ import annotations

import copy
import hashlib
import os
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.functional import mse_loss
from torch.nn.utils.fusion import fuse_conv_bn_eval

from napari_affinity_vae.model.network import AffinityVAE, Architecture
from napari_affinity_vae.progress import Progress

CACHED_BATCH = 2**24  # bytes of boxes a forward pass on the CPU
_threads: int | None = None  # CPU threads for torch; None: every usable core
_prepared: weakref.WeakKeyDictionary[AffinityVAE, tuple[tuple, AffinityVAE]] = (
    weakref.WeakKeyDictionary()
)  # model -> (device and weights it was made for, copy)


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


def for_inference(model: AffinityVAE) -> AffinityVAE:
    """An eval-mode copy of ``model`` on the device, faster for inference alone: each batch
    normalisation folded into the convolution before it, and on the CPU the channels-last memory
    layout, oneDNN's fast path for convolutions (together about twice the encoder's speed on
    this machine's CPU). Outputs equal the model's within float rounding (about 1e-6).

    The copy is kept with the model and made again only once the model's weights change (in
    place, as training changes them, or replaced): a project's tomograms, or a Dask worker's
    tasks, share one. It runs without the model's hooks. A copy passed in is returned as it is."""
    if getattr(model, "prepared_for_inference", False):
        return model
    target = device()
    state = (target, _fingerprint(model))
    kept = _prepared.get(model)
    if kept is not None and kept[0] == state:
        return kept[1]
    with torch.inference_mode(False), torch.no_grad():  # plain tensors, whoever asks
        prepared = copy.deepcopy(model).eval().requires_grad_(False)
        prepared.encoder = _folded(prepared.encoder)
        if isinstance(getattr(prepared, "decoder", None), nn.Sequential):
            prepared.decoder = _folded(prepared.decoder)
        prepared.to(target)
        if target.type == "cpu":
            layout = torch.channels_last_3d if model.architecture.ndim == 3 else torch.channels_last
            prepared.to(memory_format=layout)
    for module in prepared.modules():
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
    prepared.prepared_for_inference = True
    _prepared[model] = (state, prepared)
    return prepared


def _fingerprint(model: AffinityVAE) -> bytes:
    """A digest of the model's weights and buffers: any change to them, however made (an
    optimiser, ``.data``, a numpy view), gives another (about 1 ms for the bundled model)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensor.detach().cpu().numpy()))
    return digest.digest()


def forward_batch(architecture: Architecture, target: torch.device) -> int:
    """Boxes a forward pass: on the CPU as many as make ``CACHED_BATCH`` bytes, so that each
    layer's output stays in the cache for the next (128 boxes of 32^3: the encoder runs 1.5 times
    faster than in batches of 512 on this machine); 256 on a GPU."""
    if target.type != "cpu":
        return 256
    return max(1, CACHED_BATCH // (4 * architecture.box**architecture.ndim))


def _folded(layers: nn.Sequential) -> nn.Sequential:
    """``layers`` with each batch normalisation (in eval mode) folded into the convolution
    before it."""
    kept: list[nn.Module] = []
    for layer in layers:
        previous = kept[-1] if kept else None
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and isinstance(
            previous, nn.modules.conv._ConvNd
        ):
            kept[-1] = fuse_conv_bn_eval(previous, layer, transpose=previous.transposed)
        else:
            kept.append(layer)
    return nn.Sequential(*kept)


@torch.inference_mode()
def encode(
    model: AffinityVAE,
    boxes: np.ndarray,
    batch_size: int | None = None,
    progress: Progress | None = None,
    error: bool = True,
) -> dict[str, np.ndarray]:
    """Latent means ``mu``, ``pose`` and, with ``error``, each box's reconstruction error (which
    runs the decoder too: about five times the time) of normalised boxes (n, *box), by
    :func:`for_inference`'s copy of the model, ``batch_size`` boxes (default
    :func:`forward_batch`) a forward pass."""
    model = for_inference(model)
    target = next(model.parameters()).device
    batch_size = batch_size or forward_batch(model.architecture, target)
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
