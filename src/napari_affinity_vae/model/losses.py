"""The affinity-VAE loss terms and the per-epoch schedules of their weights.

loss = reconstruction (MSE) + beta * KL + gamma * affinity, where the affinity term is the mean over
pairs i < j of | cos(mu_i, mu_j) - A[class_i, class_j] |.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

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


@dataclass(frozen=True)
class Schedule:
    """A weight per epoch: ``flat`` (always ``high``), ``ramp`` (``low`` to ``high`` over the run),
    or cyclical: ``n_cycles`` cycles, each rising from ``low`` to ``high`` over its first
    ``ratio`` with a linear, sigmoid or cosine shape, then staying at ``high``."""

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
        period = epochs / self.n_cycles
        phase = (epoch % period) / period / self.ratio
        if phase >= 1:
            return self.high
        shape = {
            "cyclical_linear": phase,
            "cyclical_sigmoid": 1 / (1 + math.exp(-12 * (phase - 0.5))),
            "cyclical_cosine": 0.5 * (1 - math.cos(math.pi * phase)),
        }[self.kind]
        return self.low + (self.high - self.low) * shape
