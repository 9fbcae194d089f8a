"""The forward model of cryo-ET: tilt-series projection, CTF, noise, weighted back-projection.

The specimen is tilted about the y axis. Every y-plane (z, x) projects with the same matrix, so a
sparse projector from (z, x) to (tilt, detector column) is applied to all planes at once, in chunks
of planes. The detector is as wide as the tomogram (x). Images follow the weak-phase
approximation: ``1 + 2 * CTF (*) phase``, where a voxel full of protein shifts the phase by
``PHASE_PER_ANGSTROM * voxel_size`` radians (protein against vitreous ice at 300 kV).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from napari_affinity_vae.progress import Progress

PHASE_PER_ANGSTROM = 0.00065 * 1.6  # interaction constant (rad / V / A) x protein-ice potential (V)
CHUNK_PLANES = 64
RADIAL_CUTOFF, RADIAL_FALLOFF = 0.35, 0.05  # cycles/voxel: the ramp filter's Gaussian roll-off


@dataclass(frozen=True)
class Microscope:
    """Imaging conditions. Defocus is positive for underfocus; angles are in degrees."""

    voltage_kv: float = 300.0
    defocus_um: float = 3.0
    spherical_aberration_mm: float = 2.7
    amplitude_contrast: float = 0.07
    bfactor: float = 50.0
    tilt_min: float = -60.0
    tilt_max: float = 60.0
    tilt_step: float = 3.0
    phase_flip: bool = False

    @property
    def tilt_angles(self) -> np.ndarray:
        count = round((self.tilt_max - self.tilt_min) / self.tilt_step) + 1
        return np.linspace(self.tilt_min, self.tilt_max, count)

    @property
    def wavelength(self) -> float:
        """Relativistic electron wavelength in Angstrom."""
        volts = self.voltage_kv * 1e3
        return 12.2643 / np.sqrt(volts * (1 + 0.978466e-6 * volts))


def projector(nz: int, nx: int, angles_degrees: np.ndarray) -> sparse.csr_matrix:
    """Sparse (tilts * nx, nz * nx) matrix projecting a (z, x) plane along each tilted direction,
    with linear interpolation onto detector columns."""
    z, x = np.meshgrid(np.arange(nz) - (nz - 1) / 2, np.arange(nx) - (nx - 1) / 2, indexing="ij")
    z, x = z.ravel(), x.ravel()
    columns = np.arange(nz * nx)
    rows, cols, weights = [], [], []
    for t, angle in enumerate(np.radians(angles_degrees)):
        u = x * np.cos(angle) + z * np.sin(angle) + (nx - 1) / 2
        left = np.floor(u).astype(int)
        frac = u - left
        for bin_, weight in ((left, 1 - frac), (left + 1, frac)):
            keep = (bin_ >= 0) & (bin_ < nx)
            rows.append(t * nx + bin_[keep])
            cols.append(columns[keep])
            weights.append(weight[keep])
    shape = (len(angles_degrees) * nx, nz * nx)
    matrix = sparse.coo_matrix(
        (np.concatenate(weights).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
        shape=shape,
    )
    return matrix.tocsr()


def project(
    volume: np.ndarray, matrix: sparse.csr_matrix, progress: Progress | None = None
) -> np.ndarray:
    """Project a (z, y, x) volume into a (tilt, y, x) tilt series."""
    return _planewise(matrix, volume, matrix.shape[0] // volume.shape[2], progress, "projecting")


def backproject(
    images: np.ndarray, matrix: sparse.csr_matrix, nz: int, progress: Progress | None = None
) -> np.ndarray:
    """The adjoint of :func:`project`: a (tilt, y, x) series back into a (z, y, x) volume."""
    return _planewise(matrix.T.tocsr(), images, nz, progress, "back-projecting")


def _planewise(
    matrix: sparse.csr_matrix,
    stack: np.ndarray,
    out_planes: int,
    progress: Progress | None,
    desc: str,
) -> np.ndarray:
    """Apply ``matrix`` from (planes, x) to (out_planes, x) at every y, a chunk of y at a time."""
    planes, ny, nx = stack.shape
    out = np.empty((out_planes, ny, nx), dtype=np.float32)
    for start in _chunks(ny, progress, desc):
        stop = min(start + CHUNK_PLANES, ny)
        columns = stack[:, start:stop, :].transpose(0, 2, 1).reshape(planes * nx, stop - start)
        product = matrix @ columns
        out[:, start:stop, :] = product.reshape(out_planes, nx, stop - start).transpose(0, 2, 1)
    return out


def ctf(shape: tuple[int, int], voxel_size: float, microscope: Microscope) -> np.ndarray:
    """The contrast transfer function on the ``rfft2`` grid of a (y, x) image (negative at low
    frequency for underfocus, so protein comes out dark)."""
    ky = np.fft.fftfreq(shape[0], d=voxel_size)[:, None]
    kx = np.fft.rfftfreq(shape[1], d=voxel_size)[None, :]
    k2 = ky**2 + kx**2
    lam = microscope.wavelength
    defocus = microscope.defocus_um * 1e4
    cs = microscope.spherical_aberration_mm * 1e7
    chi = np.pi * lam * defocus * k2 - 0.5 * np.pi * cs * lam**3 * k2**2
    a = microscope.amplitude_contrast
    envelope = np.exp(-microscope.bfactor * k2 / 4)
    return (-(np.sqrt(1 - a * a) * np.sin(chi) + a * np.cos(chi)) * envelope).astype(np.float32)


def filter_images(images: np.ndarray, transfer: np.ndarray) -> np.ndarray:
    """Multiply each (y, x) image of a series by ``transfer`` in Fourier space."""
    spectrum = np.fft.rfft2(images, axes=(-2, -1))
    return np.fft.irfft2(spectrum * transfer, s=images.shape[-2:], axes=(-2, -1)).astype(np.float32)


def image_contrast(
    projections: np.ndarray, voxel_size: float, microscope: Microscope
) -> np.ndarray:
    """Noise-free image contrast (``image / mean - 1``) of projected protein fractions."""
    phase = projections * (PHASE_PER_ANGSTROM * voxel_size)
    return 2 * filter_images(phase, ctf(projections.shape[-2:], voxel_size, microscope))


def add_noise(
    contrast: np.ndarray,
    rng: np.random.Generator,
    *,
    snr: float | None = None,
    dose: float | None = None,
    voxel_size: float = 10.0,
) -> np.ndarray:
    """Noisy images: Gaussian noise for a signal-to-noise ratio (variance of the noise-free series
    over that of the noise), or Poisson counting noise for a total dose in electrons per A^2
    spread evenly over the tilts."""
    if (snr is None) == (dose is None):
        raise ValueError("give exactly one of snr and dose")
    if snr is not None:
        if snr <= 0:
            raise ValueError(f"snr must be positive, got {snr}")
        sigma = np.sqrt(contrast.var() / snr)
        noise = rng.standard_normal(contrast.shape, dtype=np.float32) * np.float32(sigma)
        return contrast + noise
    if dose <= 0:
        raise ValueError(f"dose must be positive, got {dose}")
    electrons = dose / contrast.shape[0] * voxel_size**2
    counts = rng.poisson(np.clip(electrons * (1 + contrast), 0, None))
    return (counts / electrons - 1).astype(np.float32)


def weighted_backprojection(
    images: np.ndarray,
    matrix: sparse.csr_matrix,
    nz: int,
    voxel_size: float,
    microscope: Microscope,
    progress: Progress | None = None,
) -> np.ndarray:
    """Reconstruct a (z, y, x) tomogram: optional phase flipping, a ramp filter along x rolled
    off above 0.35 cycles/voxel (as IMOD's default radial filter), then back-projection."""
    ntilts, ny, nx = images.shape
    frequency = np.fft.rfftfreq(nx)
    falloff = np.exp(-((np.clip(frequency - RADIAL_CUTOFF, 0, None) / RADIAL_FALLOFF) ** 2))
    ramp = (np.abs(frequency) * falloff)[None, :].astype(np.float32)
    ramp[0, 0] = 0.5 / nx
    transfer = np.broadcast_to(ramp, (ny, ramp.shape[1]))
    if microscope.phase_flip:
        # -sign: undo the reversals beyond the first zero, keep the dark low-frequency contrast
        transfer = transfer * -np.sign(ctf((ny, nx), voxel_size, microscope))
    filtered = filter_images(images, transfer)
    return backproject(filtered, matrix, nz, progress) * np.float32(np.pi / ntilts)


def _chunks(n: int, progress: Progress | None, desc: str) -> Iterable[int]:
    starts = range(0, n, CHUNK_PLANES)
    return progress(starts, desc=desc) if progress else starts
