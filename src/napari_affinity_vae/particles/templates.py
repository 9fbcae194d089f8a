"""Template matching: the normalised cross-correlation of reference maps with a tomogram over a
grid of rotations, by FFT in torch (on a GPU when there is one, else on the CPU, binned).

Each template, at the search voxel size, is rotated (``T(A r)``, RELION's convention: ``A`` gives
the particle's angles), filtered as the tomogram saw it (the missing wedge of its tilt range about
y, and a low-pass), masked by a sphere and normalised inside it (:mod:`.template_maps`); the
picks are then refined at the tomogram's voxel size (:mod:`.refine`). The score at a voxel is the
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
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import fft as scipy_fft
from scipy import ndimage, special
from scipy.spatial.transform import Rotation

from napari_affinity_vae.particles.refine import refine_steps, refinement_work
from napari_affinity_vae.particles.suppression import kept
from napari_affinity_vae.particles.template_maps import (
    BLANK_VARIANCE,
    Prepared,
    Template,
    device,
    prepare,
    prepared_box,
    relion_angles,
    rotated,
    support_radius,
)
from napari_affinity_vae.rotations import uniform_rotations
from napari_affinity_vae.schema import ANGLES, AXES, SCORE, TEMPLATE
from napari_affinity_vae.volumes import check_finite

SO3_VOLUME = 8 * np.pi**2  # of the rotation group, in the Euler angles' measure
TILE_VOXELS = 2**24  # voxels of a tile with its overlap (binned): 64 MB as float32
BATCH_VOXELS = 2**24  # rotations correlated at once: as many tiles' worth as fit this many
MAX_BATCH = 16  # voxels, at most this many
SIGMA_SAMPLES = 200_000  # voxels of the first rotation's scores kept per tile for sigma
# binned on the CPU until the smallest template is MIN_ACROSS voxels across, or as many as its
# rim needs to move about a voxel between neighbouring rotations (ANGULAR_SPAN / step in radians)
MIN_ACROSS, ANGULAR_SPAN = 8, 3.0
MAX_REFINE_BOX = 64  # voxels across the largest template where picks are refined


@dataclass(frozen=True)
class MatchSettings:
    """``voxel_size`` (Angstrom) of the tomogram; ``angular_step`` (degrees) of the rotation
    grid; ``tilt_range`` (degrees) of the tilt series, whose missing wedge the templates get (None:
    none); ``lowpass`` (Angstrom, default three search voxels); ``binning`` of the tomogram for the
    search (default 1 on a GPU, else the largest that keeps the smallest template 8 voxels
    across, more for finer angular steps); ``false_alarms`` expected noise peaks over the
    search, or an explicit ``threshold`` in noise standard deviations; ``inverted`` for
    particles brighter than their surroundings; ``refine`` each pick's centre and angles at the
    tomogram's voxel size (:mod:`.refine`)."""

    voxel_size: float
    angular_step: float = 30.0
    tilt_range: tuple[float, float] | None = (-60.0, 60.0)
    lowpass: float | None = None
    binning: int | None = None
    false_alarms: float = 1.0
    threshold: float | None = None
    inverted: bool = False
    max_count: int | None = None
    refine: bool = True


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
    smallest = min(2 * support_radius(t.volume) for t in templates)
    across = max(MIN_ACROSS, ANGULAR_SPAN / np.radians(settings.angular_step))
    return max(1, int(smallest // across))


def match_steps(
    tomogram: np.ndarray, templates: list[Template], settings: MatchSettings
) -> Generator[int, None, MatchResult]:
    """Yield the number of rotations done over all tiles (stop iterating to cancel); return the
    :class:`MatchResult`. See :func:`work` for the total."""
    binning = search_binning(templates, settings)
    volume = _binned(tomogram, binning)
    check_finite(volume, "the tomogram")
    prepared = [prepare(t, binning, settings) for t in templates]
    grids = [rotation_grid(settings.angular_step, t.symmetry) for t in templates]
    box = max(p.box for p in prepared)
    maps = [_ScoreMap(volume.shape) for _ in templates]
    done = 0
    dev = device()
    for core, padded in _tiles(volume.shape, box // 2 + 1):
        tile = torch.as_tensor(np.ascontiguousarray(volume[padded]), device=dev)
        tile = tile - tile.mean()  # the NCC is the same; the local variance more precise
        size = tuple(scipy_fft.next_fast_len(n + box, real=True) for n in tile.shape)  # no wrap
        spectrum = torch.fft.rfftn(tile, s=size)
        inner = tuple(
            slice(c.start - p.start, c.stop - p.start) for c, p in zip(core, padded, strict=True)
        )
        batch = min(MAX_BATCH, max(1, BATCH_VOXELS // int(np.prod(size))))
        for template, grid, scores in zip(prepared, grids, maps, strict=True):
            sigma_f = _local_std(tile, template.mask, size, spectrum)
            for start in range(0, len(grid), batch):
                ncc = _correlate(spectrum, rotated(template, grid[start : start + batch]), size)
                ncc = (ncc[(slice(None), *inner)] / sigma_f[inner]).clamp(-1, 1)
                scores.update(core, ncc, start)
                done += min(batch, len(grid) - start)
                yield done
    searched = volume.size * sum(len(g) for g in grids)  # where noise could raise a false peak
    for scores in maps:
        scores.finish(settings, searched)
    picks = _merged_peaks(maps, prepared, grids, templates, binning)
    if settings.max_count is not None:
        picks = picks.iloc[: settings.max_count]
    if settings.refine:
        picks = yield from refine_picks(tomogram, picks, templates, settings, binning, done)
    picks.attrs["threshold"] = float(np.mean([m.sigmas for m in maps]))
    return MatchResult(picks, {t.name: m for t, m in zip(templates, maps, strict=True)}, binning)


def refine_picks(
    tomogram: np.ndarray,
    picks: pd.DataFrame,
    templates: list[Template],
    settings: MatchSettings,
    binning: int,
    done: int = 0,
) -> Generator[int, None, pd.DataFrame]:
    """Yield ``done`` plus the units of :func:`~.refine.refinement_work` finished; return the
    picks of a search binned by ``binning`` with their centres and angles refined at the
    tomogram's voxel size, or binned by :func:`refinement_binning` (:mod:`.refine`)."""
    fine = refinement_binning(templates, binning)
    volume = tomogram if fine == 1 else _binned(tomogram, fine)  # boxes are cut as needed
    prepared = {t.name: prepare(t, fine, settings) for t in templates}
    grids = {t.name: rotation_grid(settings.angular_step, t.symmetry) for t in templates}
    binned = picks.assign(**{a: (picks[a] + 0.5) / fine - 0.5 for a in AXES})
    refined = yield from refine_steps(
        volume, binned, prepared, grids if binning > fine else None, settings.angular_step, done
    )
    return refined.assign(**{a: (refined[a] + 0.5) * fine - 0.5 for a in AXES})


def refinement_binning(templates: list[Template], binning: int) -> int:
    """The binning picks are refined at: 1 unless the largest template would be more than
    ``MAX_REFINE_BOX`` voxels across there (memory grows as its cube), never coarser than the
    search's ``binning``."""
    largest = max(prepared_box(t, 1) for t in templates)
    return min(binning, max(1, int(np.ceil(largest / MAX_REFINE_BOX))))


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
            flat = flat[flat != 0]  # not of blank regions, which score 0 (:func:`_local_std`)
            self.samples.append(flat[:: max(1, flat.size // SIGMA_SAMPLES)])
        best, rotation = self.best[core], self.rotation[core]
        better = top > best
        best[better], rotation[better] = top[better], arg[better] + first

    def finish(self, settings: MatchSettings, searched: int) -> None:
        """The noise's standard deviation (robust: particles are rare; never 0) and the
        threshold, also in units of it (``sigmas``). A blank tomogram (every score 0) has no
        noise to measure: its threshold is infinite, and nothing is picked."""
        sample = np.concatenate(self.samples)
        spread = 1.4826 * float(np.median(np.abs(sample))) if sample.size else np.inf
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
    box = max(prepared_box(t, binning) for t in templates)
    tiles = len(list(_tiles(shape, box // 2 + 1)))
    sizes = [len(rotation_grid(settings.angular_step, t.symmetry)) for t in templates]
    rescored = binning > refinement_binning(templates, binning)
    refined = refinement_work(sizes if rescored else [0] * len(sizes)) if settings.refine else 0
    return tiles * sum(sizes) + refined


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


def _local_std(
    tile: torch.Tensor, mask: torch.Tensor, size: tuple[int, ...], spectrum: torch.Tensor
) -> torch.Tensor:
    """The tomogram's standard deviation under the mask centred at every voxel of the tile,
    times the mask's voxel count (the NCC's denominator); infinite where the tomogram is blank
    (a variance within the FFT's rounding of 0), so that a region without contrast scores 0."""
    count = mask.sum()
    mask_spectrum = torch.fft.rfftn(_centred(mask[None], size), s=size)[0].conj()
    mean = torch.fft.irfftn(spectrum * mask_spectrum, s=size)
    square = torch.fft.irfftn(torch.fft.rfftn(tile**2, s=size) * mask_spectrum, s=size) / count
    variance = square - (mean / count) ** 2
    blank = variance <= BLANK_VARIANCE * torch.clamp_min(square, (tile**2).mean())
    return (torch.sqrt(variance.clamp_min(0)) * count).masked_fill(blank, torch.inf)


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
    prepared: list[Prepared],
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


def _suppressed(table: pd.DataFrame) -> pd.DataFrame:
    """Rows (best first) without those within the radius of a better row's template."""
    return table[kept(table[list(AXES)].to_numpy(), table["radius"].to_numpy())]
