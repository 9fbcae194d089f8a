"""The affinity-VAE network: a convolutional encoder with latent (mu, log-variance) and pose heads,
and a decoder back to the box: convolutional, from [latent, pose] (the reference implementation's
"A" design), or Gaussian splats placed by the latent and turned by the pose (:mod:`.splats`)."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch
from torch import nn

from napari_affinity_vae.model.splats import ROTATION_DIMS, SplatDecoder

DECODERS = ("conv", "splat")


@dataclass(frozen=True)
class Architecture:
    """Shape of the network. ``box`` must be divisible by ``2 ** depth``. A ``splat`` decoder
    renders ``splats`` Gaussians of widths within ``splat_width`` (fractions of the box's side),
    refined by ``splat_convs`` convolutions; its pose is a rotation (4 numbers in 3D, 1 in 2D)
    or none."""

    box: int = 32
    ndim: int = 3
    depth: int = 3
    capacity: int = 8
    latent_dims: int = 8
    pose_dims: int = 1
    batch_norm: bool = True
    decoder: str = "conv"
    splats: int = 256
    splat_width: tuple[float, float] = (0.02, 0.1)
    splat_convs: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "splat_width", tuple(float(w) for w in self.splat_width))
        if self.ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {self.ndim}")
        if self.depth < 1 or self.box % 2**self.depth:
            raise ValueError(
                f"box {self.box} is not divisible by 2**depth = {2**self.depth}; choose a box that "
                f"is a multiple of {2**self.depth} or a smaller depth"
            )
        if self.latent_dims < 1 or self.pose_dims < 0 or self.capacity < 1:
            raise ValueError("latent_dims and capacity must be positive, pose_dims not negative")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.decoder == "splat":
            rotation = ROTATION_DIMS[self.ndim]
            if self.pose_dims not in (0, rotation):
                raise ValueError(
                    f"a splat decoder's pose is a rotation: pose_dims {rotation} in {self.ndim}D "
                    f"(or 0), got {self.pose_dims}"
                )
            low, high = self.splat_width
            if self.splats < 1 or not 0 < low <= high or self.splat_convs < 0:
                raise ValueError("splats must be positive, 0 < splat_width[0] <= splat_width[1]")

    @property
    def deepest(self) -> tuple[int, ...]:
        """Channels and spatial size of the deepest feature map."""
        return (self.capacity * 2 ** (self.depth - 1),) + (self.box // 2**self.depth,) * self.ndim

    def to_dict(self) -> dict:
        return asdict(self)


class AffinityVAE(nn.Module):
    """``forward(x)`` returns (reconstruction, mu, log_variance, pose); in eval mode the latent
    passed to the decoder is ``mu`` (no sampling). ``forward_with_latent`` adds that latent."""

    def __init__(self, architecture: Architecture) -> None:
        super().__init__()
        self.architecture = a = architecture
        conv = nn.Conv3d if a.ndim == 3 else nn.Conv2d
        deconv = nn.ConvTranspose3d if a.ndim == 3 else nn.ConvTranspose2d
        norm = nn.BatchNorm3d if a.ndim == 3 else nn.BatchNorm2d
        channels = [1] + [a.capacity * 2**level for level in range(a.depth)]
        encoder: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise(channels):
            encoder += [conv(c_in, c_out, 3, stride=2, padding=1)]
            encoder += [norm(c_out)] if a.batch_norm else []
            encoder += [nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*encoder, nn.Flatten())
        features = int(torch.tensor(a.deepest).prod())
        self.mu = nn.Linear(features, a.latent_dims)
        self.log_variance = nn.Linear(features, a.latent_dims)
        self.pose = nn.Linear(features, a.pose_dims) if a.pose_dims else None
        if a.decoder == "splat":
            self.splat = SplatDecoder(a)
            return
        self.expand = nn.Sequential(nn.Linear(a.latent_dims + a.pose_dims, features), nn.ReLU())
        decoder: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(itertools.pairwise(channels[::-1])):
            decoder += [deconv(c_in, c_out, 3, stride=2, padding=1, output_padding=1)]
            if i < a.depth - 1:
                decoder += [norm(c_out)] if a.batch_norm else []
                decoder += [nn.ReLU(inplace=True)]
        self.decoder = nn.Sequential(*decoder)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mu, log_variance, pose) of a batch of boxes shaped (n, 1, *box)."""
        h = self.encoder(x)
        pose = self.pose(h) if self.pose is not None else h.new_zeros((len(h), 0))
        return self.mu(h), self.log_variance(h), pose

    def decode(
        self, latent: torch.Tensor, pose: torch.Tensor, box: int | None = None, zoom: float = 1.0
    ) -> torch.Tensor:
        """Boxes (n, 1, *box) from latent vectors and pose values. A splat decoder also renders
        at another ``box`` and ``zoom`` (voxels ``1 / zoom`` of the trained voxel size)."""
        if self.architecture.decoder == "splat":
            return self.splat(latent, pose, box, zoom)
        if (box or self.architecture.box) != self.architecture.box or zoom != 1.0:
            raise ValueError("a convolutional decoder renders its trained box only")
        h = self.expand(torch.cat([latent, pose], dim=1))
        return self.decoder(h.view(len(h), *self.architecture.deepest))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.forward_with_latent(x)[:4]

    def forward_with_latent(
        self, x: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """``forward``'s (reconstruction, mu, log_variance, pose) and the latent the decoder was
        given: a draw from N(mu, exp(log_variance)) in training (with the standard normal
        ``noise`` when given, else a fresh one), ``mu`` in eval mode."""
        mu, log_variance, pose = self.encode(x)
        noise = torch.randn_like(mu) if noise is None else noise
        sampled = mu + noise * torch.exp(0.5 * log_variance)
        latent = sampled if self.training else mu
        return self.decode(latent, pose), mu, log_variance, pose, latent
