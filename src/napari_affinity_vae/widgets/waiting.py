"""Particles a coordinate file dropped onto napari holds for a tomogram not open yet: read as
they can be, then read again against their tomogram when it opens."""

from __future__ import annotations

import warnings
from pathlib import Path

import napari
from napari.layers import Points

from napari_affinity_vae.errors import InputFileError
from napari_affinity_vae.io.particles import read_particles_for
from napari_affinity_vae.io.projects.folder import name_among
from napari_affinity_vae.io.tomogram import Tomogram
from napari_affinity_vae.layers import particles_layer_data
from napari_affinity_vae.widgets.viewer_session import HIDDEN_FOR, OF_TOMOGRAM, tomogram_identity

# a Points layer's metadata while it waits: its file, and the name the file gives its particles
WAITING = "waiting for its tomogram"


def place_waiting_particles(viewer: napari.Viewer, tomogram: Tomogram) -> None:
    """Read again, against ``tomogram``, the waiting particles that are its (the file names it,
    or no tomogram): on its voxels (a STAR file's pixels at their own pixel size, RELION 5
    Angstrom from its centre), inside it, shown, and its particles. Without a voxel size they
    wait on; a file that no longer reads is said in a warning."""
    if not tomogram.voxel_size:
        return
    waiting = [x for x in viewer.layers if isinstance(x, Points) and WAITING in x.metadata]
    names: dict[str, list[str]] = {}  # each file's names of the tomograms its layers wait for
    for layer in waiting:
        if "tomo_name" in layer.metadata:
            names.setdefault(layer.metadata[WAITING][0], []).append(layer.metadata["tomo_name"])
    for layer in waiting:
        meta = layer.metadata
        theirs = name_among(tomogram.name, names.get(meta[WAITING][0], []))  # TS_01: TS_01_rec
        if meta.get("tomo_name", theirs) != theirs:
            continue
        path, tomo_name = meta[WAITING]
        try:
            particles = read_particles_for(Path(path), tomogram, tomo_name)
        except InputFileError as err:
            warnings.warn(str(err), stacklevel=2)
            continue
        owner = {"tomo_name": tomogram.name, OF_TOMOGRAM: tomogram_identity(tomogram)}
        data, kwargs, _ = particles_layer_data(particles, layer.name, {"path": path, **owner})
        for key in (WAITING, HIDDEN_FOR):
            meta.pop(key, None)
        meta.update(kwargs["metadata"])
        layer.scale = kwargs["scale"]
        layer.data = data
        layer.features = kwargs["features"]
        layer.visible = True
