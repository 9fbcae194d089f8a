"""Reference maps made ready for template matching: each at the search voxel size in a box just
holding its spherical mask, rotated (``T(A r)``, RELION's convention), filtered as the tomogram
saw it (the missing wedge of its tilt range about y, and a low-pass), masked and normalised.
Shared by the search (:mod:`.templates`) and the refinement of its picks (:mod:`.refine`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from napari_affinity_vae.volumes import fit_box, resample

if TYPE_CHECKING:
    from napari_affinity_vae.particles.templates import MatchSettings

# a local variance under the mask at most this share of the mean square is float32 rounding of
# 0: the region is blank (no contrast), and scores 0 against any template
BLANK_VARIANCE = 1e-5
MASK_MARGIN = 1.0  # voxels between the template's support and its mask's edge


@dataclass(frozen=True)
class Template:
    """A reference map (z, y, x, density positive) at the tomogram's voxel size, its name and
    its point-group symmetry (Schoenflies: ``C7`` and ``D7`` about z, ``T``, ``O``, ``I``)."""

    name: str
    volume: np.ndarray
    symmetry: str = "C1"


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def support_radius(volume: np.ndarray) -> float:
    """The radius (voxels) from the box centre that holds the template's density."""
    weight = np.clip(volume, 0, None)
    if not weight.any():
        return volume.shape[0] / 2
    inside = weight > 0.05 * weight.max()
    distance = np.sqrt(
        sum(
            (g - c) ** 2
            for g, c in zip(np.indices(volume.shape), np.array(volume.shape) // 2, strict=True)
        )
    )
    return float(distance[inside].max())


def prepared_box(template: Template, binning: int) -> int:
    radius = support_radius(template.volume) / binning + MASK_MARGIN
    return int(2 * np.ceil(radius + 1))


@dataclass(frozen=True)
class Prepared:
    """A template ready for the search: its map at the search voxel size (the particles' sign) in
    a box just holding its spherical mask, the mask, the transfer its rotations get, the (x, y, z)
    offset of every box voxel from the centre, and its radius (voxels)."""

    volume: torch.Tensor
    mask: torch.Tensor
    transfer: torch.Tensor
    xyz: torch.Tensor
    radius: float

    @property
    def box(self) -> int:
        return self.volume.shape[0]


def prepare(
    template: Template,
    binning: int,
    settings: MatchSettings,
) -> Prepared:
    """The template at the search voxel size, dark unless ``settings.inverted``, with its mask
    and the tomogram's transfer (missing wedge and low-pass)."""
    volume = template.volume.astype(np.float32)
    if binning > 1:
        volume = resample(volume, 1 / binning)
    box = prepared_box(template, binning)
    volume = fit_box(volume, box) * (1 if settings.inverted else -1)
    radius = support_radius(np.abs(volume))
    offsets = np.indices((box,) * 3) - box // 2
    mask = (np.sqrt((offsets**2).sum(axis=0)) <= radius + MASK_MARGIN).astype(np.float32)
    dev = device()
    voxel = settings.voxel_size * binning
    cutoff = voxel / (settings.lowpass or 3 * voxel)
    xyz = torch.as_tensor(offsets[::-1].reshape(3, -1).copy(), dtype=torch.float32, device=dev)
    return Prepared(
        torch.as_tensor(volume, device=dev),
        torch.as_tensor(mask, device=dev),
        _filter(box, settings.tilt_range, cutoff, dev),
        xyz,
        radius,
    )


def rotated(template: Prepared, rotations: Rotation) -> torch.Tensor:
    """``T(A r)`` for each rotation ``A``, filtered by the tomogram's transfer, then masked and
    normalised to mean 0 and a sum of squares of the mask's voxel count inside the mask."""
    box, dev = template.box, template.volume.device
    matrices = torch.as_tensor(rotations.as_matrix(), dtype=torch.float32, device=dev)
    # grid_sample's coordinates (x, y, z in [-1, 1]) of the voxel at A r, for every voxel r
    to_unit = 2 / (box - 1)
    grid = torch.matmul(template.xyz.T * to_unit, matrices.transpose(1, 2))
    grid = grid.add_(box // 2 * to_unit - 1).reshape(len(rotations), box, box, box, 3)
    volume = template.volume.expand(len(rotations), 1, box, box, box)
    rotated = torch.nn.functional.grid_sample(volume, grid, align_corners=True)[:, 0]
    spectrum = torch.fft.rfftn(rotated, dim=(1, 2, 3)).mul_(template.transfer)
    rotated = torch.fft.irfftn(spectrum, s=(box,) * 3, dim=(1, 2, 3)).flatten(1)
    mask = template.mask.flatten()
    count = mask.sum()
    centred = rotated.sub_((rotated @ mask / count)[:, None]).mul_(mask)
    scale = (torch.linalg.vector_norm(centred, dim=1, keepdim=True) / count.sqrt()).clamp_min(1e-12)
    return centred.div_(scale).reshape(len(rotations), box, box, box)


def _filter(
    box: int, tilt_range: tuple[float, float] | None, cutoff: float, dev: torch.device
) -> torch.Tensor:
    """The transfer of the tomogram for a box's spectrum (rfft layout over z, y, x): a Gaussian
    low-pass falling to half at ``cutoff`` cycles/voxel, and zero in the missing wedge of a tilt
    series about y with ``tilt_range``."""
    kz = torch.fft.fftfreq(box, device=dev)[:, None, None]
    ky = torch.fft.fftfreq(box, device=dev)[None, :, None]
    kx = torch.fft.rfftfreq(box, device=dev)[None, None, :]
    radius2 = kz**2 + ky**2 + kx**2
    transfer = torch.exp(-np.log(2) * radius2 / cutoff**2)
    if tilt_range is not None:
        low, high = np.radians(tilt_range)
        angle = torch.atan2(-kz, kx)  # the tilt whose central slice holds k (kx >= 0 here)
        sampled = ((angle >= low) & (angle <= high)) | ((kz == 0) & (kx == 0))
        transfer = transfer * sampled
    return transfer


def relion_angles(rotations: Rotation) -> np.ndarray:
    """RELION (rot, tilt, psi) of rotations; at tilt 0 (the identity among them) rot takes all
    of the turn, as RELION writes it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "gimbal lock": expected at tilt 0
        return rotations.as_euler("ZYZ", degrees=True)
