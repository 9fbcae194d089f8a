"""Template matching: the normalised cross-correlation of reference maps with a tomogram over a
grid of rotations, by FFT in torch (on a GPU when there is one, else on the CPU, binned).

Each template, at the search voxel size, is rotated (``T(A r)``, RELION's convention: ``A`` gives
the particle's angles), filtered as the tomogram saw it (the missing wedge of its tilt range about
y, and a low-pass), masked by a sphere and normalised inside it. The score at a voxel is the
correlation of the template with the tomogram under the mask there, over the local standard
deviation of the tomogram: NCC in [-1, 1]. The mask is a sphere, so the local statistics do not
depend on the rotation and are computed once per tile; each rotation costs one product of
spectra. The tomogram is cut in tiles with a template's half-box of overlap, so memory stays
bounded whatever its size.

The threshold comes from the scores' statistics: under noise the score of one rotation at one
voxel is near-normal with standard deviation ``sigma`` (measured, robustly, on the searched
volume for the first rotation), so ``sigma * ndtri(1 - n / (voxels * rotations))`` is exceeded by
noise about ``n`` times over the whole search (``false_alarms``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import fft as scipy_fft
from scipy import ndimage, special
from scipy.spatial.transform import Rotation

from napari_affinity_vae.particles.suppression import kept
from napari_affinity_vae.rotations import uniform_rotations
from napari_affinity_vae.schema import ANGLES, AXES, SCORE, TEMPLATE

SO3_VOLUME = 8 * np.pi**2  # of the rotation group, in the Euler angles' measure
TILE_VOXELS = 2**24  # voxels of a tile with its overlap (binned): 64 MB as float32
BATCH_VOXELS = 2**24  # rotations correlated at once: as many tiles' worth as fit this many
MAX_BATCH = 16  # voxels, at most this many
SIGMA_SAMPLES = 200_000  # voxels of the first rotation's scores kept per tile for sigma
MASK_MARGIN = 1.0  # voxels between the template's support and its mask's edge
# binned on the CPU until the smallest template is MIN_ACROSS voxels across, or as many as its
# rim needs to move about a voxel between neighbouring rotations (ANGULAR_SPAN / step in radians)
MIN_ACROSS, ANGULAR_SPAN = 8, 3.0


@dataclass(frozen=True)
class Template:
    """A reference map (z, y, x, density positive) at the tomogram's voxel size, its name and
    its point-group symmetry (Schoenflies: ``C7`` and ``D7`` about z, ``T``, ``O``, ``I``)."""

    name: str
    volume: np.ndarray
    symmetry: str = "C1"


@dataclass(frozen=True)
class MatchSettings:
    """``voxel_size`` (Angstrom) of the tomogram; ``angular_step`` (degrees) of the rotation
    grid; ``tilt_range`` (degrees) of the tilt series, whose missing wedge the templates get (None:
    none); ``lowpass`` (Angstrom, default three search voxels); ``binning`` of the tomogram for the
    search (default 1 on a GPU, else the largest that keeps the smallest template 8 voxels
    across, more for finer angular steps); ``false_alarms`` expected noise peaks over the
    search, or an explicit ``threshold`` in noise standard deviations; ``inverted`` for
    particles brighter than their surroundings."""

    voxel_size: float
    angular_step: float = 30.0
    tilt_range: tuple[float, float] | None = (-60.0, 60.0)
    lowpass: float | None = None
    binning: int | None = None
    false_alarms: float = 1.0
    threshold: float | None = None
    inverted: bool = False
    max_count: int | None = None


@dataclass
class MatchResult:
    """The picks (z, y, x voxels of the tomogram, score, template, RELION angles; in
    ``attrs["threshold"]`` the threshold in noise standard deviations), each template's
    score map over the searched (binned) tomogram, and the binning."""

    picks: pd.DataFrame
    scores: dict[str, _ScoreMap]
    binning: int

    def best_scores(self) -> np.ndarray:
        """The best score of any template at every voxel of the searched tomogram."""
        return np.max([m.best for m in self.scores.values()], axis=0)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def rotation_grid(step: float, symmetry: str = "C1") -> Rotation:
    """Near-uniform rotations about ``step`` degrees apart, the identity among them; for a
    symmetric template only one of each set of equivalent rotations (``S A`` for ``S`` in the
    group is the same particle): those nearer the identity than any of their equivalents."""
    count = max(1, round(SO3_VOLUME / np.radians(step) ** 3))
    grid = uniform_rotations(count)
    group = symmetry_group(symmetry)
    if len(group) > 1:
        nearest = np.min([(element * grid).magnitude() for element in group], axis=0)
        grid = grid[grid.magnitude() <= nearest + 1e-9]
    return Rotation.concatenate([Rotation.identity(), grid])


def symmetry_group(symmetry: str) -> Rotation:
    """The rotations of a point group named as ``C7``, ``D7`` (axis z), ``T``, ``O`` or ``I``."""
    name = symmetry.strip().upper()
    if not re.fullmatch(r"[CD][1-9]\d*|[TOI]", name):
        raise ValueError(f"symmetry {symmetry!r} is not a point group such as C1, C7, D7, T, O, I")
    if name == "C1":
        return Rotation.identity(1)
    return Rotation.create_group(name)


def search_binning(templates: list[Template], settings: MatchSettings) -> int:
    """The binning the search runs at (see :class:`MatchSettings`)."""
    if settings.binning is not None:
        return max(1, int(settings.binning))
    if device().type == "cuda":
        return 1
    smallest = min(2 * _support_radius(t.volume) for t in templates)
    across = max(MIN_ACROSS, ANGULAR_SPAN / np.radians(settings.angular_step))
    return max(1, int(smallest // across))


def match_steps(
    tomogram: np.ndarray, templates: list[Template], settings: MatchSettings
) -> Generator[int, None, MatchResult]:
    """Yield the number of rotations done over all tiles (stop iterating to cancel); return the
    :class:`MatchResult`. See :func:`work` for the total."""
    binning = search_binning(templates, settings)
    volume = _binned(tomogram, binning)
    prepared = [_prepare(t, binning, settings) for t in templates]
    grids = [rotation_grid(settings.angular_step, t.symmetry) for t in templates]
    box = max(p.box for p in prepared)
    maps = [_ScoreMap(volume.shape) for _ in templates]
    done = 0
    dev = device()
    for core, padded in _tiles(volume.shape, box // 2 + 1):
        tile = torch.as_tensor(np.ascontiguousarray(volume[padded]), device=dev)
        size = tuple(scipy_fft.next_fast_len(n + box, real=True) for n in tile.shape)  # no wrap
        spectrum = torch.fft.rfftn(tile, s=size)
        inner = tuple(
            slice(c.start - p.start, c.stop - p.start) for c, p in zip(core, padded, strict=True)
        )
        batch = min(MAX_BATCH, max(1, BATCH_VOXELS // int(np.prod(size))))
        for template, grid, scores in zip(prepared, grids, maps, strict=True):
            sigma_f = _local_std(tile, template.mask, size, spectrum)
            for start in range(0, len(grid), batch):
                ncc = _correlate(spectrum, _rotated(template, grid[start : start + batch]), size)
                scores.update(core, (ncc[(slice(None), *inner)] / sigma_f[inner]), start)
                done += min(batch, len(grid) - start)
                yield done
    searched = volume.size * sum(len(g) for g in grids)  # where noise could raise a false peak
    for scores in maps:
        scores.finish(settings, searched)
    picks = _merged_peaks(maps, prepared, grids, templates, binning)
    if settings.max_count is not None:
        picks = picks.iloc[: settings.max_count]
    picks.attrs["threshold"] = float(np.mean([m.sigmas for m in maps]))
    return MatchResult(picks, {t.name: m for t, m in zip(templates, maps, strict=True)}, binning)


class _ScoreMap:
    """A template's best score at every voxel of the searched volume, the rotation giving it, and
    the noise level and threshold of its scores."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.best = np.full(shape, -np.inf, dtype=np.float32)
        self.rotation = np.zeros(shape, dtype=np.int32)
        self.samples: list[np.ndarray] = []
        self.sigma = self.sigmas = self.threshold = np.nan

    def update(self, core: tuple[slice, ...], ncc: torch.Tensor, first: int) -> None:
        """Keep the better of the scores so far and those of rotations ``first``, ... here."""
        top, arg = (x.cpu().numpy() for x in ncc.max(dim=0))
        if first == 0:  # the first rotation's scores: a sample of the noise's spread
            flat = ncc[0].cpu().numpy().ravel()
            self.samples.append(flat[:: max(1, flat.size // SIGMA_SAMPLES)])
        best, rotation = self.best[core], self.rotation[core]
        better = top > best
        best[better], rotation[better] = top[better], arg[better] + first

    def finish(self, settings: MatchSettings, searched: int) -> None:
        """The noise's standard deviation (robust: particles are rare; never 0, which a blank
        tomogram would give) and the threshold, also in units of it (``sigmas``)."""
        spread = 1.4826 * float(np.median(np.abs(np.concatenate(self.samples))))
        self.sigma = max(spread, 1e-12)
        self.sigmas = settings.threshold
        if self.sigmas is None:
            self.sigmas = float(special.ndtri(1 - settings.false_alarms / searched))
        self.threshold = self.sigmas * self.sigma


def work(
    tomogram_shape: tuple[int, ...], templates: list[Template], settings: MatchSettings
) -> int:
    """How many rotations :func:`match_steps` counts up to."""
    binning = search_binning(templates, settings)
    shape = tuple(max(1, n // binning) for n in tomogram_shape)
    box = max(_prepared_box(t, binning) for t in templates)
    tiles = len(list(_tiles(shape, box // 2 + 1)))
    return tiles * sum(len(rotation_grid(settings.angular_step, t.symmetry)) for t in templates)


def _binned(tomogram: np.ndarray, binning: int) -> np.ndarray:
    """The tomogram as float32, each ``binning``^3 block averaged (read plane block by block)."""
    if binning == 1:
        return np.asarray(tomogram, dtype=np.float32)
    nz, ny, nx = (n // binning for n in tomogram.shape)
    out = np.empty((nz, ny, nx), dtype=np.float32)
    for z in range(nz):
        block = np.asarray(
            tomogram[z * binning : (z + 1) * binning, : ny * binning, : nx * binning],
            dtype=np.float32,
        )
        out[z] = block.reshape(binning, ny, binning, nx, binning).mean(axis=(0, 2, 4))
    return out


def _support_radius(volume: np.ndarray) -> float:
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


def _prepared_box(template: Template, binning: int) -> int:
    radius = _support_radius(template.volume) / binning + MASK_MARGIN
    return int(2 * np.ceil(radius + 1))


@dataclass(frozen=True)
class _Prepared:
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


def _prepare(
    template: Template,
    binning: int,
    settings: MatchSettings,
) -> _Prepared:
    """The template at the search voxel size, dark unless ``settings.inverted``, with its mask
    and the tomogram's transfer (missing wedge and low-pass)."""
    from napari_affinity_vae.volumes import fit_box, resample

    volume = template.volume.astype(np.float32)
    if binning > 1:
        volume = resample(volume, 1 / binning)
    box = _prepared_box(template, binning)
    volume = fit_box(volume, box) * (1 if settings.inverted else -1)
    radius = _support_radius(np.abs(volume))
    offsets = np.indices((box,) * 3) - box // 2
    mask = (np.sqrt((offsets**2).sum(axis=0)) <= radius + MASK_MARGIN).astype(np.float32)
    dev = device()
    voxel = settings.voxel_size * binning
    cutoff = voxel / (settings.lowpass or 3 * voxel)
    xyz = torch.as_tensor(offsets[::-1].reshape(3, -1).copy(), dtype=torch.float32, device=dev)
    return _Prepared(
        torch.as_tensor(volume, device=dev),
        torch.as_tensor(mask, device=dev),
        _filter(box, settings.tilt_range, cutoff, dev),
        xyz,
        radius,
    )


def _rotated(template: _Prepared, rotations: Rotation) -> torch.Tensor:
    """``T(A r)`` for each rotation ``A``, filtered by the tomogram's transfer, then masked and
    normalised to mean 0 and a sum of squares of the mask's voxel count inside the mask."""
    box, dev = template.box, template.volume.device
    matrices = torch.as_tensor(rotations.as_matrix(), dtype=torch.float32, device=dev)
    source = torch.einsum("bij,jn->bin", matrices, template.xyz) + box // 2  # indices (x, y, z)
    grid = (source / (box - 1) * 2 - 1).transpose(1, 2).reshape(len(rotations), box, box, box, 3)
    volume = template.volume.expand(len(rotations), 1, box, box, box)
    rotated = torch.nn.functional.grid_sample(volume, grid, align_corners=True)[:, 0]
    spectrum = torch.fft.rfftn(rotated, dim=(1, 2, 3)) * template.transfer
    rotated = torch.fft.irfftn(spectrum, s=(box,) * 3, dim=(1, 2, 3))
    mask = template.mask
    count = mask.sum()
    mean = (rotated * mask).sum(dim=(1, 2, 3), keepdim=True) / count
    centred = (rotated - mean) * mask
    scale = torch.sqrt((centred**2).sum(dim=(1, 2, 3), keepdim=True) / count).clamp_min(1e-12)
    return centred / scale


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


def _local_std(
    tile: torch.Tensor, mask: torch.Tensor, size: tuple[int, ...], spectrum: torch.Tensor
) -> torch.Tensor:
    """The tomogram's standard deviation under the mask centred at every voxel of the tile,
    times the mask's voxel count (the NCC's denominator)."""
    count = mask.sum()
    mask_spectrum = torch.fft.rfftn(_centred(mask[None], size), s=size)[0].conj()
    mean = torch.fft.irfftn(spectrum * mask_spectrum, s=size)
    square = torch.fft.irfftn(torch.fft.rfftn(tile**2, s=size) * mask_spectrum, s=size)
    variance = (square / count - (mean / count) ** 2).clamp_min(0)
    return (torch.sqrt(variance) * count).clamp_min(1e-6 * count)


def _centred(boxes: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Boxes placed in arrays of ``size`` with their centre voxel at index 0 (wrapped)."""
    box = boxes.shape[-1]
    index = [(torch.arange(box, device=boxes.device) - box // 2) % n for n in size]
    out = torch.zeros((boxes.shape[0], *size), dtype=boxes.dtype, device=boxes.device)
    out[:, index[0][:, None, None], index[1][None, :, None], index[2][None, None, :]] = boxes
    return out


def _correlate(
    spectrum: torch.Tensor, templates: torch.Tensor, size: tuple[int, ...]
) -> torch.Tensor:
    """``sum_r T(r) f(x + r)`` for each template at every voxel of the (padded) tile."""
    template_spectra = torch.fft.rfftn(_centred(templates, size), s=size, dim=(1, 2, 3)).conj()
    return torch.fft.irfftn(spectrum[None] * template_spectra, s=size, dim=(1, 2, 3))


def _tiles(
    shape: tuple[int, ...], halo: int
) -> Generator[tuple[tuple[slice, ...], tuple[slice, ...]], None, None]:
    """(core, core with ``halo`` voxels around it, within the volume) slices of tiles of about
    equal size, as few as keep each within ``TILE_VOXELS``."""
    counts = [1, 1, 1]
    while (
        np.prod([int(np.ceil(n / c)) + 2 * halo for n, c in zip(shape, counts, strict=True)])
        > TILE_VOXELS
    ):
        axis = int(np.argmax([n / c for n, c in zip(shape, counts, strict=True)]))
        counts[axis] += 1
    edges = [
        np.linspace(0, n, c + 1).round().astype(int) for n, c in zip(shape, counts, strict=True)
    ]
    for corner in np.ndindex(*counts):
        core = tuple(slice(int(e[i]), int(e[i + 1])) for e, i in zip(edges, corner, strict=True))
        padded = tuple(
            slice(max(0, c.start - halo), min(n, c.stop + halo))
            for c, n in zip(core, shape, strict=True)
        )
        yield core, padded


def _merged_peaks(
    maps: list[_ScoreMap],
    prepared: list[_Prepared],
    grids: list[Rotation],
    templates: list[Template],
    binning: int,
) -> pd.DataFrame:
    """Each template's local maxima above its threshold, then all of them by significance (score
    over the noise's spread, so a small template's many middling matches do not outrank a large
    one's), none within the radius of a more significant one; in voxels of the unbinned
    tomogram."""
    tables = []
    for index, scores in enumerate(maps):
        best = scores.best
        peaks = (best >= ndimage.maximum_filter(best, size=3, mode="nearest")) & (
            best > scores.threshold
        )
        zyx = np.argwhere(peaks)
        rotations = grids[index][scores.rotation[peaks]] if len(zyx) else None
        table = pd.DataFrame(zyx.astype(float), columns=list(AXES))
        table[SCORE] = best[peaks]
        table["significance"] = best[peaks] / scores.sigma
        table[TEMPLATE] = templates[index].name
        table["radius"] = prepared[index].radius
        table[list(ANGLES)] = relion_angles(rotations) if rotations else np.zeros((0, 3))
        tables.append(table)
    table = pd.concat(tables, ignore_index=True).sort_values(
        "significance", ascending=False, kind="stable"
    )
    table = _suppressed(table.reset_index(drop=True))
    table[list(AXES)] = (table[list(AXES)] + 0.5) * binning - 0.5
    return table.drop(columns=["significance", "radius"]).reset_index(drop=True)


def relion_angles(rotations: Rotation) -> np.ndarray:
    """RELION (rot, tilt, psi) of rotations; at tilt 0 (the identity among them) rot takes all
    of the turn, as RELION writes it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "gimbal lock": expected at tilt 0
        return rotations.as_euler("ZYZ", degrees=True)


def _suppressed(table: pd.DataFrame) -> pd.DataFrame:
    """Rows (best first) without those within the radius of a better row's template."""
    return table[kept(table[list(AXES)].to_numpy(), table["radius"].to_numpy())]
