"""Simulated tomograms with ground truth: specimen, forward model, reconstruction."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from napari_affinity_vae.errors import InputFileError
from napari_affinity_vae.schema import TOMO_NAME
from napari_affinity_vae.simulate.molecules import (
    MOLECULES,
    extent,
    map_extent,
    reference_maps,
    user_molecule_map,
)
from napari_affinity_vae.simulate.specimen import (
    GOLD_RADIUS,
    LEAFLET_SEPARATION,
    Sphere,
    add_gold,
    add_vesicles,
    place_particles,
    random_spheres,
    render_particles,
)
from napari_affinity_vae.simulate.tiltseries import (
    Microscope,
    Progress,
    add_noise,
    image_contrast,
    project,
    projector,
    weighted_backprojection,
)

VESICLE_RADIUS = (250.0, 500.0)  # Angstrom
MOLECULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # a class name that is a file name too


@dataclass(frozen=True)
class Simulation:
    """What to simulate. ``classes`` names the molecules: built-in ones (``MOLECULES``) and the
    user's, whose maps or atomic models ``molecules`` gives by class name (read with
    :func:`user_molecule_map`). ``snr`` (per tilt image) or ``dose`` (electrons / A^2 in total)
    sets the noise; ``snr=None`` and ``dose=None`` gives a noise-free tomogram."""

    shape: tuple[int, int, int] = (200, 400, 400)
    particles: int = 300
    classes: tuple[str, ...] = tuple(MOLECULES)
    voxel_size: float = 10.0
    snr: float | None = 0.1
    dose: float | None = None
    seed: int = 0
    vesicles: int = 0
    fiducials: int = 0
    invert: bool = False
    microscope: Microscope = field(default_factory=Microscope)
    name: str = "simulated"
    molecules: Mapping[str, Path] = field(default_factory=dict)


@dataclass
class SimulatedTomogram:
    """A reconstructed tomogram (z, y, x, normalised to mean 0 and standard deviation 1), its
    ground truth (z, y, x voxels, RELION angles, class name) and the reference maps used."""

    tomogram: np.ndarray
    particles: pd.DataFrame
    references: dict[str, np.ndarray]
    settings: Simulation


def simulate_tomogram(
    settings: Simulation,
    progress: Progress | None = None,
    margin: float = 0.0,
    references: Mapping[str, np.ndarray] | None = None,
) -> SimulatedTomogram:
    """Simulate a tomogram; the same settings (seed included) give the same output.
    ``references``: the classes' maps from :func:`class_maps`, when already made."""
    rng = np.random.default_rng(settings.seed)
    references = dict(class_maps(settings) if references is None else references)
    specimen, particles = build_specimen(settings, references, rng, progress, margin)
    tomogram = image_and_reconstruct(specimen, settings, rng, progress)
    particles.insert(0, TOMO_NAME, settings.name)
    particles.attrs["voxel_size"] = settings.voxel_size
    return SimulatedTomogram(tomogram, particles, references, settings)


def class_maps(settings: Simulation) -> dict[str, np.ndarray]:
    """The reference map of each of ``settings.classes``, in that order: the built-in ones in one
    common box, the user's read from ``settings.molecules``. Raises ValueError for a class that is
    neither, and InputFileError (naming the file) for a molecule that is unreadable or whose name
    is a built-in class's or no file name."""
    for name, path in settings.molecules.items():
        if name in MOLECULES:
            raise InputFileError(path, f"{name} is a built-in class; give your molecule a new name")
        if not MOLECULE_NAME.fullmatch(name):
            raise InputFileError(path, f"{name!r} is no class name: use letters, digits, _ and -")
    known = [*MOLECULES, *settings.molecules]
    unknown = [c for c in settings.classes if c not in known]
    if unknown:
        raise ValueError(f"unknown classes {unknown}; known: {', '.join(known)}")
    built_in = [c for c in settings.classes if c in MOLECULES]
    maps = reference_maps(built_in, settings.voxel_size) if built_in else {}
    for name in settings.classes:
        if name not in MOLECULES:
            maps[name] = user_molecule_map(settings.molecules[name], settings.voxel_size)
    return {name: maps[name] for name in settings.classes}


def class_diameters(
    classes: tuple[str, ...] | list[str], references: Mapping[str, np.ndarray], voxel_size: float
) -> dict[str, float]:
    """Diameter (Angstrom) of each class: a built-in molecule's extent, a user's from the support
    of its map in ``references``."""
    return {
        name: extent(name) if name in MOLECULES else map_extent(references[name], voxel_size)
        for name in classes
    }


def build_specimen(
    settings: Simulation,
    references: dict[str, np.ndarray],
    rng: np.random.Generator,
    progress: Progress | None = None,
    margin: float = 0.0,
) -> tuple[np.ndarray, pd.DataFrame]:
    """The noise-free density volume and its particle table."""
    shape = tuple(int(n) for n in settings.shape)
    voxel = settings.voxel_size
    half_width = LEAFLET_SEPARATION / 2 / voxel + 1
    radius = (VESICLE_RADIUS[0] / voxel, min(VESICLE_RADIUS[1] / voxel, min(shape) / 2 - 2))
    vesicles = random_spheres(settings.vesicles, radius, shape, rng, half_width=half_width)
    gold_radius = GOLD_RADIUS / voxel
    gold = random_spheres(
        settings.fiducials, (gold_radius, gold_radius), shape, rng, existing=vesicles
    )
    diameters = class_diameters(settings.classes, references, voxel)
    radii = {name: diameter / 2 / voxel for name, diameter in diameters.items()}
    particles = place_particles(
        list(settings.classes), radii, shape, settings.particles, rng, [*vesicles, *gold], margin
    )
    volume = np.zeros(shape, dtype=np.float32)
    render_particles(volume, particles, references, progress)
    add_vesicles(volume, vesicles, voxel)
    add_gold(volume, [Sphere(b.centre, b.radius) for b in gold])
    return volume, particles


def image_and_reconstruct(
    volume: np.ndarray,
    settings: Simulation,
    rng: np.random.Generator,
    progress: Progress | None = None,
) -> np.ndarray:
    """Tilt series, CTF, noise and weighted back-projection of a density volume."""
    nz, _, nx = volume.shape
    microscope = settings.microscope
    matrix = projector(nz, nx, microscope.tilt_angles)
    contrast = image_contrast(project(volume, matrix, progress), settings.voxel_size, microscope)
    if settings.snr is not None or settings.dose is not None:
        contrast = add_noise(
            contrast, rng, snr=settings.snr, dose=settings.dose, voxel_size=settings.voxel_size
        )
    tomogram = weighted_backprojection(
        contrast, matrix, nz, settings.voxel_size, microscope, progress
    )
    tomogram -= tomogram.mean()
    tomogram /= tomogram.std() or 1.0
    return -tomogram if settings.invert else tomogram
