"""Training on several processes with PyTorch's DistributedDataParallel, launched by ``torchrun``.

Every process walks the same shuffled order and takes its slice of each global batch, so that
the global batch is the one a single process would train on; DDP averages the gradients. The
reconstruction and KL terms are means over the local slice, weighted by the slice's share of the
global batch; the affinity and total-correlation terms are computed on latents gathered from
every process (the same value everywhere). The gather's backward sums the gradients of all
processes, which DDP's average divides again: each step's gradient is the single-process
gradient of the global batch. BatchNorm is synchronised (SyncBatchNorm) on GPUs; PyTorch's
SyncBatchNorm does not run on the CPU, where each process normalises by its own slice.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_functional
from torch import nn

from napari_affinity_vae.model.inference import usable_cores, use_threads
from napari_affinity_vae.model.losses import (
    affinity_loss,
    kl_divergence,
    pose_consistency,
    reconstruction_loss,
    total_correlation,
)
from napari_affinity_vae.model.network import AffinityVAE


def start() -> None:
    """Join the process group ``torchrun`` describes in the environment: NCCL with one GPU per
    process when there are GPUs, else gloo with the CPU cores shared among this node's
    processes."""
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl")
    else:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        use_threads(max(1, usable_cores() // local))
        dist.init_process_group("gloo")


def stop() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()


def world() -> tuple[int, int]:
    """This process's rank and the number of processes ((0, 1) outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the processes (itself in one process)."""
    if world()[1] > 1:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
    return tensor


class _WithLatent(nn.Module):
    """The VAE's ``forward_with_latent`` as ``forward``, the method DDP wraps."""

    def __init__(self, vae: AffinityVAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor, turned: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """``forward_with_latent``'s outputs, and the pose of the ``turned`` boxes if given."""
        outputs = self.vae.forward_with_latent(x, noise)
        return outputs if turned is None else (*outputs, self.vae.encode(turned)[2])


def wrap(model: AffinityVAE) -> nn.Module:
    """``model`` (already on this process's device) for :func:`loss_terms`: in DDP, its
    BatchNorm layers synchronised on GPUs."""
    if next(model.parameters()).is_cuda:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(
            _WithLatent(model), device_ids=[torch.cuda.current_device()]
        )
    return nn.parallel.DistributedDataParallel(_WithLatent(model))


def loss_terms(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    affinity: torch.Tensor,
    dataset_size: int,
    batch: int,
    turns: torch.Generator | None = None,
) -> torch.Tensor:
    """This process's loss terms (``TERMS``' order) of its slice ``x`` of a global batch of
    ``batch`` boxes, such that their mean over the processes is the global batch's terms. The
    reparameterisation noise is drawn for the global batch and sliced, as one process would;
    the pose consistency's rotations (from ``turns``, None: no term) are drawn for the global
    batch and sliced, the same way."""
    from napari_affinity_vae.model.train import turned_copies  # it imports this module

    rank, size = world()
    sizes = [len(part) for part in torch.arange(batch).tensor_split(size)]
    vae = model.module.vae
    noise = torch.randn(batch, vae.architecture.latent_dims, device=x.device)
    offset = sum(sizes[:rank])
    slice_noise = noise[offset : offset + len(x)]
    consistency = x.new_zeros(())
    if turns is None:
        reconstruction, mu, log_variance, _, latent = model(x, slice_noise)
    else:
        rotations, turned = turned_copies(x, turns, batch, offset)
        reconstruction, mu, log_variance, pose, latent, turned_pose = model(x, slice_noise, turned)
        consistency = pose_consistency(pose, turned_pose, rotations)
    share = len(x) * size / batch
    mu_all, log_variance_all, latent_all, labels_all = (
        _gather(t, sizes) for t in (mu, log_variance, latent, labels)
    )
    return torch.stack(
        [
            reconstruction_loss(reconstruction, x) * share,
            kl_divergence(mu, log_variance) * share,
            affinity_loss(mu_all, labels_all, affinity),
            total_correlation(latent_all, mu_all, log_variance_all, dataset_size),
            consistency * share,
        ]
    )


def _gather(tensor: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """The processes' ``tensor``s (``sizes`` rows each) concatenated in rank order, with the
    gradient flowing back to each process's own rows."""
    longest = max(sizes)
    padded = torch.cat([tensor, tensor.new_zeros((longest - len(tensor), *tensor.shape[1:]))])
    parts = dist_functional.all_gather(padded)
    return torch.cat([part[:n] for part, n in zip(parts, sizes, strict=True)])
