"""Template-free particle picking: difference-of-Gaussians band-passes matched to the particle
size, local maxima, non-maximum suppression and an automatic threshold, chunk by chunk.

The tomogram is binned so that the smallest particle spans about ``BIN_TARGET`` voxels and
band-passed at two scales (particles dark unless ``inverted``):

- the **particle band**, between Gaussians of ``d_min / 2`` and ``d_max / 2``, finds whole
  particles of the given sizes;
- the **fine band**, between ``0.15 d_min`` and ``d_min / 2``, finds small particles whose mass
  sits in less than their nominal diameter (a 100 A protein with a 60 A core), which the
  particle band blurs into the noise.

Every local maximum at least ``d_min / 2`` from a larger one is a candidate. Candidates on sheets
(membranes: the middle eigenvalue of the Hessian under a ``MIN_ROUNDNESS`` share of the largest)
are dropped. A particle-band peak, which sits on the densest domain of an asymmetric or hollow
particle, climbs the smoothed positive density to the particle's middle, placed to a fraction of
a voxel by a parabola through its neighbours. On an elongated particle (a filament) that top lies
near one end, so the pick then goes half-way to the middle of the particle's extent along its
long axis: the principal axis of the density around it, along which the particle band stays
above half its value at the pick. A fine-band candidate counts only where the particle band is
quiet (under ``QUIET_SIGMAS``) and no particle-band pick lies within the largest radius:
otherwise it is a detail of a larger particle, a membrane or a gold bead. No pick is kept within
``d_min`` of a better one: two particles cannot be closer.

Scores are in noise standard deviations of each band; the noise is 1.4826 x the median absolute
band value (particles fill a small share of the voxels, so the median sees noise). The fine band
has more noise maxima per volume, so its scores are scaled by ``AUTO_SIGMAS / FINE_SIGMAS`` and
one threshold serves both. The automatic threshold, ``AUTO_SIGMAS``, does not depend on how many
particles there are, so it holds in crowded tomograms as in sparse ones.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from napari_affinity_vae.errors import AffinityVAEError
from napari_affinity_vae.particles.suppression import kept
from napari_affinity_vae.progress import Progress, pauses, run_steps
from napari_affinity_vae.schema import AXES, SCORE
from napari_affinity_vae.volumes import check_finite

MIN_ROUNDNESS = 0.3  # Hessian |middle| / |largest| eigenvalue: blobs and rods above, sheets below
NOISE_STRIDE = 3  # band voxels sampled for the noise level, along each axis
AUTO_SIGMAS = 3.1  # the automatic threshold, in noise standard deviations of the particle band
FINE_SIGMAS = 4.5  # the same false-pick rate in the fine band
QUIET_SIGMAS = 3.0  # the particle band under this: nothing larger is there
FINE_SHARE = 0.3  # the fine band's smaller Gaussian, as a share of the smallest radius
CLIMB_STEPS = 8  # voxels a pick may move towards the middle of its particle
AXIS_STEPS = 4  # density samples from a pick to the largest radius that give its long axis
BANDS = ("particle", "fine")
BIN_TARGET = 5.0  # voxels across the smallest particle after binning
MIN_BINNED = 3  # voxels along each axis after binning: a peak needs a voxel either side
CHUNK_VOXELS = 16_000_000  # binned voxels per chunk before its overlap


@dataclass(frozen=True)
class PickSettings:
    """Diameters in Angstrom; ``threshold`` in noise standard deviations (default automatic);
    ``margin`` (Angstrom, default the smallest radius) keeps picks away from the faces."""

    diameter_min: float
    diameter_max: float
    voxel_size: float
    threshold: float | None = None
    max_count: int | None = None
    margin: float | None = None
    inverted: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.diameter_min <= self.diameter_max:
            raise ValueError("diameters must satisfy 0 < min <= max")


def pick(
    tomogram: np.ndarray, settings: PickSettings, progress: Progress | None = None
) -> pd.DataFrame:
    """Picks as a table: z, y, x (voxels of ``tomogram``) and score, best first."""
    steps = pick_steps(tomogram, settings)
    return run_steps(steps, chunk_count(tomogram.shape, settings), "picking", progress)


def chunk_count(shape: tuple[int, ...], settings: PickSettings) -> int:
    """How many chunks :func:`pick_steps` reads for a tomogram of ``shape``."""
    layout = _Layout(shape, settings)
    return -(-int(layout.binned_shape[1]) // layout.rows)


class _Layout:
    """Binning, Gaussian widths, minimum distance, chunk rows and overlap, in binned voxels."""

    def __init__(self, shape: tuple[int, ...], settings: PickSettings) -> None:
        d_min = settings.diameter_min / settings.voxel_size
        d_max = settings.diameter_max / settings.voxel_size
        self.binning = max(1, int(d_min // BIN_TARGET))
        self.sigmas = np.array([FINE_SHARE * d_min, d_min, max(d_max, 1.6 * d_min)]) / 2
        self.sigmas /= self.binning
        self.largest_radius = d_max / 2 / self.binning
        self.min_distance = max(1, round(d_min / 2 / self.binning))
        self.spacing = d_min / self.binning  # between picks: two particles cannot be closer
        # the widest field (the middles) at a climbed pick; the particle band a long axis on
        along = 4 * self.sigmas[2] + 2 * np.ceil(self.largest_radius)
        reach = max(4 * (self.sigmas[1] + self.sigmas[2]), along)
        self.halo = int(np.ceil(reach)) + CLIMB_STEPS + self.min_distance + 1
        self.binned_shape = np.asarray(shape) // self.binning
        if (self.binned_shape < MIN_BINNED).any():
            least = MIN_BINNED * self.binning * settings.voxel_size
            size = " x ".join(f"{n * settings.voxel_size:g}" for n in shape)
            raise AffinityVAEError(
                f"Particles of {settings.diameter_min:g} Å or more are picked in a tomogram at "
                f"least {least:g} Å along each axis; this one is {size} Å (z, y, x): give "
                "smaller diameters"
            )
        self.rows = max(1, CHUNK_VOXELS // int(self.binned_shape[0] * self.binned_shape[2]))


def _check_rows(tomogram: np.ndarray, lo: int, hi: int) -> None:
    """Raise :class:`NonFiniteError` if the y rows from ``lo`` to ``hi`` of ``tomogram`` hold
    NaN or infinite voxels, naming the rows and counting them in its own voxels (not a binned
    copy's)."""
    region = np.asarray(tomogram[:, lo:hi])
    bad = np.flatnonzero(~np.isfinite(region).all(axis=(0, 2)))
    if bad.size:
        check_finite(region, f"the tomogram (in y rows {lo + bad[0]} to {lo + bad[-1]})")


def pick_steps(tomogram: np.ndarray, settings: PickSettings) -> Generator[int, None, pd.DataFrame]:
    """Yield the number of chunks done, also between the stages of a chunk so that a Cancel
    (stop iterating) takes effect within a stage; return the picks."""
    layout = _Layout(tomogram.shape, settings)
    height = int(layout.binned_shape[1])
    found: dict[str, list[np.ndarray]] = {band: [] for band in BANDS}
    noise: dict[str, list[np.ndarray]] = {band: [] for band in BANDS}
    for done, start in enumerate(range(0, height, layout.rows), start=1):
        stop = min(start + layout.rows, height)
        lo, hi = max(0, start - layout.halo), min(height, stop + layout.halo)
        block = _binned(tomogram, layout.binning, lo, hi, layout.binned_shape)
        if not np.isfinite(block).all():
            _check_rows(tomogram, lo * layout.binning, hi * layout.binning)
        yield done - 1
        stages = _chunk(block, settings.inverted, layout, lo, start, stop)
        bands = yield from pauses(stages, done - 1)
        for band, (table, sample) in bands.items():
            found[band].append(table)
            noise[band].append(sample)
        yield done
    levels = {band: 1.4826 * float(np.median(np.concatenate(noise[band]))) for band in BANDS}
    threshold = settings.threshold if settings.threshold is not None else AUTO_SIGMAS
    particle = _candidates(np.concatenate(found["particle"]), levels["particle"], threshold, layout)
    fine = np.concatenate(found["fine"])
    fine = fine[fine[:, 5] < QUIET_SIGMAS * levels["particle"]]
    fine = _candidates(fine, levels["fine"], threshold, layout, AUTO_SIGMAS / FINE_SIGMAS)
    if len(particle) and len(fine):
        fine = fine[cKDTree(particle[:, :3]).query(fine[:, :3])[0] > layout.largest_radius]
    table = np.concatenate([particle, fine])
    table = table[np.argsort(-table[:, 3], kind="stable")]
    centres = (table[:, :3] + 0.5) * layout.binning - 0.5
    margin = settings.margin if settings.margin is not None else settings.diameter_min / 2
    margin /= settings.voxel_size
    upper = np.asarray(tomogram.shape) - 1 - margin
    inside = np.all((centres >= margin) & (centres <= upper), axis=1)
    picks = pd.DataFrame(centres[inside], columns=list(AXES))
    picks[SCORE] = table[inside, 3]
    picks["roundness"] = table[inside, 4]
    if settings.max_count is not None:
        picks = picks.head(settings.max_count)
    picks.attrs.update(
        voxel_size=settings.voxel_size, threshold=float(threshold), noise=levels["particle"]
    )
    return picks


def _chunk(
    block: np.ndarray, inverted: bool, layout: _Layout, lo: int, start: int, stop: int
) -> Generator[None, None, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Each band's candidates among binned rows ``start:stop`` (y) of a block read from row
    ``lo``, as rows of z, y, x, band value, roundness and particle-band value, and the band's
    noise sample there; pausing (yielding) between stages."""
    if not inverted:
        block = -block
    smoothed = []
    for sigma in layout.sigmas:
        smoothed.append((yield from _gaussian(block, sigma)))
    fine, middle, large = smoothed
    particle_band, density = middle - large, fine - large
    middles = yield from _gaussian(np.maximum(density, 0), layout.sigmas[1])
    first = start + (-start) % NOISE_STRIDE - lo  # the same sample whatever the chunks
    result = {}
    for name, band, smooth in (("particle", particle_band, middle), ("fine", fine - middle, fine)):
        at = _peaks(band, layout.min_distance, start - lo, stop - lo)
        if name == "particle":  # to the middle of the particle, off its densest part
            climbed = _climb(middles, at)
            along = _middle_along(band, density, climbed, layout.largest_radius)
            centred = (climbed + along) / 2
        else:
            centred = at + _subvoxel(band, at)
        values = [band[tuple(at.T)], _roundness(smooth, at), particle_band[tuple(at.T)]]
        sample = band[::NOISE_STRIDE, first : stop - lo : NOISE_STRIDE, ::NOISE_STRIDE]
        table = np.column_stack([centred + np.array([0, lo, 0]), *values])
        result[name] = (table, np.abs(sample).ravel())
        yield
    return result


def _gaussian(volume: np.ndarray, sigma: float) -> Generator[None, None, np.ndarray]:
    """``ndimage.gaussian_filter(volume, sigma)``, one axis at a time with a pause after each."""
    out = volume
    for axis in range(volume.ndim):
        out = ndimage.gaussian_filter1d(out, sigma, axis=axis)
        yield
    return out


def _peaks(band: np.ndarray, min_distance: int, start: int, stop: int) -> np.ndarray:
    """Positive local maxima of ``band`` in rows ``start:stop`` (y) as (n, 3) indices."""
    peaks = (band == ndimage.maximum_filter(band, size=2 * min_distance + 1)) & (band > 0)
    at = np.argwhere(peaks)
    return at[(at[:, 1] >= start) & (at[:, 1] < stop)]


def _candidates(
    table: np.ndarray, noise: float, threshold: float, layout: _Layout, weight: float = 1.0
) -> np.ndarray:
    """Round candidates of one band scoring over ``threshold`` in noise deviations (times
    ``weight``), best first, none within the smallest diameter of a better one."""
    table = table[table[:, 4] >= MIN_ROUNDNESS].copy()  # membranes and other sheets
    table[:, 3] *= weight / max(noise, 1e-12)
    table = table[table[:, 3] > threshold]
    table = table[np.argsort(-table[:, 3], kind="stable")]
    return _suppress(table, layout.spacing)


def _roundness(volume: np.ndarray, at: np.ndarray) -> np.ndarray:
    """|middle| / |largest| eigenvalue of the Hessian of ``volume`` at ``at``: near 1 for a blob
    or a rod, near 0 for a sheet such as a membrane."""
    inner = np.clip(at, 1, np.asarray(volume.shape) - 2)

    def value(*steps: tuple[int, int]) -> np.ndarray:
        p = inner.copy()
        for axis, step in steps:
            p[:, axis] += step
        return volume[tuple(p.T)]

    hessian = np.zeros((len(at), 3, 3))
    centre = value()
    for i in range(3):
        hessian[:, i, i] = value((i, 1)) - 2 * centre + value((i, -1))
        for j in range(i + 1, 3):
            cross = value((i, 1), (j, 1)) - value((i, 1), (j, -1))
            cross += value((i, -1), (j, -1)) - value((i, -1), (j, 1))
            hessian[:, i, j] = hessian[:, j, i] = cross / 4
    eigen = np.sort(np.abs(np.linalg.eigvalsh(hessian)), axis=1)
    return eigen[:, 1] / np.maximum(eigen[:, 2], 1e-12)


def _climb(field: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``at`` moved uphill on ``field``, one voxel at a time for up to ``CLIMB_STEPS`` steps,
    then placed to a fraction of a voxel."""
    moves = np.stack(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij"), -1).reshape(-1, 3)
    upper = np.asarray(field.shape) - 1
    for _ in range(CLIMB_STEPS):
        around = np.clip(at[:, None, :] + moves, 0, upper)
        best = np.argmax(field[tuple(np.moveaxis(around, 2, 0))], axis=1)
        at = around[np.arange(len(at)), best]
    return at + _subvoxel(field, at)


def _middle_along(
    band: np.ndarray, density: np.ndarray, at: np.ndarray, radius: float
) -> np.ndarray:
    """The middle of each particle along its long axis through ``at`` (the principal axis of
    the squared positive ``density`` within ``radius``): the middle of the run of ``band``
    above half its value at ``at``, up to ``radius`` either side."""
    axes = _long_axes(density, np.rint(at).astype(int), radius)
    steps = np.arange(-np.ceil(radius), np.ceil(radius) + 1)
    points = at[:, None, :] + steps[None, :, None] * axes[:, None, :]
    profile = ndimage.map_coordinates(band, points.reshape(-1, 3).T, order=1, mode="nearest")
    profile = profile.reshape(len(at), len(steps))
    centre = len(steps) // 2
    above = profile > profile[:, centre : centre + 1] / 2
    ahead = np.cumprod(above[:, centre + 1 :], axis=1).sum(axis=1)
    behind = np.cumprod(above[:, :centre][:, ::-1], axis=1).sum(axis=1)
    return at + ((ahead - behind) / 2)[:, None] * axes


def _long_axes(density: np.ndarray, at: np.ndarray, radius: float) -> np.ndarray:
    """Unit principal axes of the squared positive ``density`` within ``radius`` of ``at``,
    sampled every ``radius / AXIS_STEPS`` voxels (at least 2)."""
    step = max(2, round(radius / AXIS_STEPS))
    span = np.arange(-int(radius), int(radius) + 1, step)
    offsets = np.stack(np.meshgrid(span, span, span, indexing="ij"), -1).reshape(-1, 3)
    offsets = offsets[np.linalg.norm(offsets, axis=1) <= radius]
    around = np.clip(at[:, None, :] + offsets, 0, np.asarray(density.shape) - 1)
    weight = np.maximum(density[tuple(np.moveaxis(around, 2, 0))], 0) ** 2
    mean = weight @ offsets / np.maximum(weight.sum(axis=1, keepdims=True), 1e-12)
    spread = offsets[None] - mean[:, None]
    inertia = np.einsum("nk,nki,nkj->nij", weight, spread, spread)
    return np.linalg.eigh(inertia)[1][:, :, -1]


def _subvoxel(band: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Offsets (within half a voxel) of the peaks at ``at`` from a parabola through each peak
    and its two neighbours along each axis."""
    offsets = np.zeros(at.shape, dtype=float)
    centre = band[tuple(at.T)]
    for axis in range(3):
        below, above = at.copy(), at.copy()
        below[:, axis] = np.maximum(at[:, axis] - 1, 0)
        above[:, axis] = np.minimum(at[:, axis] + 1, band.shape[axis] - 1)
        lower, upper = band[tuple(below.T)], band[tuple(above.T)]
        curvature = lower - 2 * centre + upper
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(curvature < 0, 0.5 * (lower - upper) / curvature, 0.0)
        offsets[:, axis] = np.clip(step, -0.5, 0.5)
    return offsets


def _binned(
    tomogram: np.ndarray, binning: int, lo: int, hi: int, binned_shape: np.ndarray
) -> np.ndarray:
    """Rows ``lo:hi`` (binned y) of the tomogram binned by ``binning``, read from the file."""
    nz, _, nx = binned_shape * binning
    block = np.asarray(tomogram[:nz, lo * binning : hi * binning, :nx], dtype=np.float32)
    if binning == 1:
        return block
    shape = (binned_shape[0], binning, hi - lo, binning, binned_shape[2], binning)
    return block.reshape(shape).mean(axis=(1, 3, 5))


def _suppress(table: np.ndarray, distance: float) -> np.ndarray:
    """Greedy non-maximum suppression of score-sorted (z, y, x, score) rows."""
    return table[kept(table[:, :3], distance - 1e-9)]
