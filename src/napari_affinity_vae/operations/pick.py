"""Picking a tomogram, on the coarsest level of a multiscale one that the picker can use."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace

import pandas as pd

from napari_affinity_vae.io.tomogram import Level, Tomogram
from napari_affinity_vae.particles.picking import BIN_TARGET, PickSettings, chunk_count, pick_steps
from napari_affinity_vae.progress import Progress, run_steps
from napari_affinity_vae.schema import AXES


def pick_level(tomogram: Tomogram, settings: PickSettings) -> tuple[Tomogram, Level, PickSettings]:
    """The level to pick on: the coarsest on which the smallest particle still spans the
    ``BIN_TARGET`` voxels the picker bins finer data down to (the finest for a single-resolution
    tomogram), with the settings at its voxel size."""
    source, level = tomogram.level_for(settings.diameter_min / BIN_TARGET)
    return source, level, replace(settings, voxel_size=source.voxel_size)


def pick_tomogram_steps(
    tomogram: Tomogram, settings: PickSettings
) -> Generator[int, None, pd.DataFrame]:
    """:func:`~napari_affinity_vae.particles.picking.pick_steps` on :func:`pick_level`'s level;
    the picks in voxels of the finest level."""
    source, level, at_level = pick_level(tomogram, settings)
    picks = yield from pick_steps(source.data, at_level)
    picks[list(AXES)] = level.from_level(picks[list(AXES)].to_numpy())
    return picks


def pick_chunks(tomogram: Tomogram, settings: PickSettings) -> int:
    """How many chunks :func:`pick_tomogram_steps` counts up to."""
    source, _, at_level = pick_level(tomogram, settings)
    return chunk_count(source.shape, at_level)


def pick_tomogram(
    tomogram: Tomogram, settings: PickSettings, progress: Progress | None = None
) -> pd.DataFrame:
    """:func:`pick_tomogram_steps` run to the end, with an optional progress bar."""
    steps = pick_tomogram_steps(tomogram, settings)
    return run_steps(steps, pick_chunks(tomogram, settings), "picking", progress)
