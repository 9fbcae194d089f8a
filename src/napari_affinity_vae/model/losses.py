"""The affinity-VAE loss terms and the per-epoch schedules of their weights.

loss = reconstruction (MSE) + beta * KL + gamma * affinity (+ tc * total correlation + pose *
pose consistency), where the affinity term is the mean over pairs i < j of
| cos(mu_i, mu_j) - A[class_i, class_j] |, the total correlation KL(q(z) || prod_j q(z_j)) is
beta-TCVAE's (Chen et al. 2018) estimate over the batch, and the pose consistency asks a rotation
pose to turn with the box (:func:`pose_consistency`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from napari_affinity_vae.model.splats import rotation_matrices

SCHEDULES = ("flat", "ramp", "cyclical_linear", "cyclical_sigmoid", "cyclical_cosine")


def reconstruction_loss(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every voxel of the batch."""
    return F.mse_loss(reconstruction, target)


def kl_divergence(mu: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)), summed over latent dimensions, averaged over the batch."""
    per_sample = -0.5 * torch.sum(1 + log_variance - mu**2 - log_variance.exp(), dim=1)
    return per_sample.mean()


def affinity_loss(mu: torch.Tensor, labels: torch.Tensor, affinity: torch.Tensor) -> torch.Tensor:
    """Mean over pairs i < j of | cos(mu_i, mu_j) - affinity[label_i, label_j] | (0 below 2)."""
    n = len(mu)
    if n < 2:
        return mu.new_zeros(())
    unit = F.normalize(mu, dim=1, eps=1e-8)
    cosine = unit @ unit.T
    target = affinity[labels][:, labels]
    i, j = torch.triu_indices(n, n, offset=1, device=mu.device)
    return (cosine[i, j] - target[i, j]).abs().mean()


def total_correlation(
    latent: torch.Tensor, mu: torch.Tensor, log_variance: torch.Tensor, dataset_size: int
) -> torch.Tensor:
    """TC = KL(q(z) || prod_j q(z_j)) at the batch's latents ``latent`` (n, D), by minibatch
    stratified sampling: q(z_i) is the mixture of the batch's posteriors N(mu_k, var_k), the
    box's own weighted 1 / N and each other box (N - 1) / (N (n - 1)), with N the
    ``dataset_size``; the same for each dimension's q(z_ij). Mean over the batch, in nats
    (0 below 2 boxes)."""
    n = len(latent)
    if n < 2:
        return latent.new_zeros(())
    log_density = _gaussian_log_density(latent[:, None], mu[None], log_variance[None])
    log_weight = _stratified_log_weights(n, dataset_size, latent)
    joint = torch.logsumexp(log_density.sum(dim=2) + log_weight, dim=1)
    marginals = torch.logsumexp(log_density + log_weight[..., None], dim=1).sum(dim=1)
    return (joint - marginals).mean()


def pose_consistency(
    pose: torch.Tensor, turned_pose: torch.Tensor, rotations: torch.Tensor
) -> torch.Tensor:
    """How far the rotations of ``turned_pose`` (the pose of the boxes turned by ``rotations``,
    on (x, y, z)) are from those of ``pose`` turned the same way: the squared Frobenius
    distance over 8, which is (1 - cos(angle)) / 2 of the angle between them (0 when the pose
    turns with the box, 1 at a half turn), averaged over the batch."""
    expected = rotations @ rotation_matrices(pose)
    return ((rotation_matrices(turned_pose) - expected) ** 2).sum(dim=(1, 2)).mean() / 8


def _gaussian_log_density(
    z: torch.Tensor, mu: torch.Tensor, log_variance: torch.Tensor
) -> torch.Tensor:
    """log N(z; mu, exp(log_variance)) per element (broadcast)."""
    standardised = (z - mu) * torch.exp(-0.5 * log_variance)
    return -0.5 * (math.log(2 * math.pi) + log_variance + standardised**2)


def _stratified_log_weights(n: int, dataset_size: int, like: torch.Tensor) -> torch.Tensor:
    """(n, n) log importance weights: 1 / N on the diagonal, (N - 1) / (N (n - 1)) elsewhere."""
    if dataset_size < n:
        raise ValueError(f"dataset_size {dataset_size} is smaller than the batch ({n})")
    other = math.log((dataset_size - 1) / (dataset_size * (n - 1)))
    weights = torch.full((n, n), other, dtype=like.dtype, device=like.device)
    return weights.fill_diagonal_(-math.log(dataset_size))


@dataclass(frozen=True)
class Schedule:
    """A weight per epoch: ``flat`` (always ``high``), ``ramp`` (``low`` to ``high`` over the run),
    or cyclical: ``n_cycles`` cycles, each rising from ``low`` to ``high`` over its first
    ``ratio`` with a linear, sigmoid or cosine shape, then staying at ``high``. A cycle takes
    at least 2 epochs: in a shorter run there are fewer (4 cycles of 2 epochs kept the weight at
    ``low`` throughout, each epoch beginning a cycle)."""

    kind: str = "flat"
    high: float = 1.0
    low: float = 0.0
    n_cycles: int = 4
    ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.kind!r}")
        if not 0 < self.ratio <= 1 or self.n_cycles < 1:
            raise ValueError("ratio must be in (0, 1] and n_cycles at least 1")

    def value(self, epoch: int, epochs: int) -> float:
        if self.kind == "flat":
            return self.high
        if self.kind == "ramp":
            return self.low + (self.high - self.low) * min(1.0, epoch / max(1, epochs - 1))
        period = epochs / min(self.n_cycles, max(1, epochs // 2))
        phase = (epoch % period) / period / self.ratio
        if phase >= 1:
            return self.high
        shape = {
            "cyclical_linear": phase,
            "cyclical_sigmoid": 1 / (1 + math.exp(-12 * (phase - 0.5))),
            "cyclical_cosine": 0.5 * (1 - math.cos(math.pi * phase)),
        }[self.kind]
        return self.low + (self.high - self.low) * shape
