"""napari reader contributions: tomograms as Image layers, coordinate files as Points layers."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from napari_affinity_vae.errors import ParticleFileError
from napari_affinity_vae.io.compressed import uncompressed_suffix
from napari_affinity_vae.io.omezarr import is_ome_zarr
from napari_affinity_vae.io.particles import PARTICLE_SUFFIXES, tomogram_names
from napari_affinity_vae.io.projects.folder import name_among
from napari_affinity_vae.io.tomogram import TOMOGRAM_SUFFIXES, Tomogram, open_tomogram
from napari_affinity_vae.layers import particles_layer_data, tomogram_layer_data
from napari_affinity_vae.schema import AXES

LayerData = tuple[Any, dict[str, Any], str]


def get_tomogram_reader(path: str | list[str]) -> Callable[[str], list[LayerData]] | None:
    """Return the tomogram reader if every path is an MRC-family file (``.map.gz`` too)."""
    paths = _paths(path)
    is_tomogram = bool(paths) and all(uncompressed_suffix(p) in TOMOGRAM_SUFFIXES for p in paths)
    return read_tomograms if is_tomogram else None


def get_zarr_reader(path: str | list[str]) -> Callable[[str], list[LayerData]] | None:
    """Return the tomogram reader if every path is an OME-Zarr image folder."""
    paths = _paths(path)
    return read_tomograms if paths and all(map(is_ome_zarr, paths)) else None


def get_particles_reader(path: str | list[str]) -> Callable[[str], list[LayerData]] | None:
    """Return the coordinate reader if every path is a coordinate file."""
    return read_particle_files if _all_have_suffix(path, PARTICLE_SUFFIXES) else None


def read_tomograms(path: str | list[str]) -> list[LayerData]:
    """One Image layer per tomogram, memory-mapped (MRC) or multiscale and read chunk by chunk
    (OME-Zarr), scaled to Angstrom."""
    layers = []
    for p in _paths(path):
        tomogram = open_tomogram(p, require_voxel_size=False)
        if tomogram.voxel_size is None:
            warnings.warn(
                f"{p}: the header has no voxel size; the layer uses 1 A/voxel until you set it "
                "in Plugins > Affinity-VAE > Tomogram",
                stacklevel=2,
            )
        layers.append(tomogram_layer_data(tomogram))
        viewer = _viewer()
        if viewer is not None:
            from napari_affinity_vae.widgets.waiting import place_waiting_particles

            place_waiting_particles(viewer, tomogram)
    return layers


def read_particle_files(path: str | list[str]) -> list[LayerData]:
    """Points layers in voxels of the open tomogram (the newest Image layer with a voxel size).

    A file holding several tomograms gives the open tomogram's particles if its name is among
    them, otherwise one layer per tomogram. Those of another tomogram, or of any before one is
    open, wait for it (hidden while another is shown) and are read against it when it opens.
    NaN rows and picks outside the open tomogram are dropped with a warning that says how many.
    """
    from napari_affinity_vae.io.particles import read_particles_for
    from napari_affinity_vae.widgets.viewer_session import HIDDEN_FOR, OF_TOMOGRAM
    from napari_affinity_vae.widgets.viewer_session import tomogram_identity as identity
    from napari_affinity_vae.widgets.waiting import WAITING

    tomogram = _open_tomogram()
    open_name = tomogram.name if tomogram else None
    listed = _project_tomograms()
    layers = []
    for p in _paths(path):
        names, waiting = tomogram_names(p), []
        own = name_among(open_name, names)
        numbered = p.suffix.lower() == ".tbl"  # Dynamo numbers its tomograms, names none
        # one other tomogram's: placed on the open one, unless the project holds that one
        placed = open_name and not own and len(names) == 1 and names[0] not in listed
        if placed and not numbered:
            warnings.warn(
                f"{p}: its particles are of {names[0]}, not of the open tomogram {open_name}; "
                f"they are placed on {open_name}",
                stacklevel=2,
            )
        if own:
            chosen = [own]
        elif len(names) > 1 or (names and open_name and not placed):
            chosen = names  # each another tomogram's: they wait for it
        else:
            chosen = [None]  # the one tomogram's the file holds (or names none)
        for tomo_name in chosen:
            label = p.stem if tomo_name is None else f"{p.stem} [{tomo_name}]"
            ours = tomogram is not None and tomo_name == own  # else: another tomogram's
            try:
                particles = read_particles_for(p, tomogram if ours else None, tomo_name)
            except ParticleFileError:
                if ours or tomogram is None:
                    raise
                # Angstrom from its centre, fractions of its size: read when it opens
                particles = pd.DataFrame(columns=list(AXES), dtype=float)
            if ours:
                meta = {"path": str(p), "tomo_name": open_name, OF_TOMOGRAM: identity(tomogram)}
            else:  # read again against its tomogram when that opens
                owner = tomo_name or (names[0] if names else None)
                meta = {"path": str(p), WAITING: (str(p), tomo_name)}
                meta |= {"tomo_name": owner} if owner else {}
                if tomogram is not None:
                    meta[HIDDEN_FOR] = True
                    waiting.append(str(tomo_name))
            if ours and particles.empty:  # an empty layer, the user told why
                warnings.warn(f"{p}: holds no particles", stacklevel=2)
            data, kwargs, kind = particles_layer_data(particles, label, meta)
            kwargs["visible"] = HIDDEN_FOR not in meta
            layers.append((data, kwargs, kind))
        if waiting and numbered:  # no tomogram is named "1": the user says which is which
            warnings.warn(
                f"{p}: its particles are of Dynamo tomograms {', '.join(waiting)}, which name "
                f"no tomogram file: hidden; to place one on {open_name}, import the table with "
                "the Particles dock (it asks which), or open it as a project with its .doc index",
                stacklevel=2,
            )
        elif waiting:
            warnings.warn(
                f"{p}: its particles are of {', '.join(waiting)}, not of the open tomogram "
                f"{open_name}: hidden, they are placed when their tomogram opens",
                stacklevel=2,
            )
    return layers


def _project_tomograms() -> list[str]:
    """The names of the open project's tomograms, if a project is open in the current viewer."""
    from napari_affinity_vae.widgets.viewer_session import session_for

    viewer = _viewer()
    project = session_for(viewer).project if viewer is not None else None
    return list(project.tomograms) if project is not None else []


def _open_tomogram() -> Tomogram | None:
    """The tomogram the explorer works on in the current viewer (the same rule as the
    Particles widget's), if any."""
    from napari_affinity_vae.widgets.viewer_session import current_tomogram

    viewer = _viewer()
    return current_tomogram(viewer) if viewer is not None else None


def _viewer() -> Any:
    """The current napari viewer, if any."""
    import napari

    return napari.current_viewer()


def _paths(path: str | list[str]) -> list[Path]:
    return [Path(p) for p in ([path] if isinstance(path, str | Path) else path)]


def _all_have_suffix(path: str | list[str], suffixes: tuple[str, ...]) -> bool:
    paths = _paths(path)
    return bool(paths) and all(p.suffix.lower() in suffixes for p in paths)
