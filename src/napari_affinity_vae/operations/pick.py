"""Picking a tomogram, with the blob picker or by template matching, on the coarsest level of a
multiscale one that the search can use."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from napari_affinity_vae.errors import AffinityVAEError, TomogramFileError
from napari_affinity_vae.io.compressed import uncompressed_name
from napari_affinity_vae.io.tomogram import Level, Tomogram
from napari_affinity_vae.particles.picking import BIN_TARGET, PickSettings, chunk_count, pick_steps
from napari_affinity_vae.particles.template_maps import support_radius
from napari_affinity_vae.particles.templates import (
    MatchResult,
    MatchSettings,
    Template,
    match_steps,
    search_binning,
    symmetry_group,
    work,
)
from napari_affinity_vae.progress import Progress, run_steps
from napari_affinity_vae.schema import AXES
from napari_affinity_vae.simulate.molecules import load_reference
from napari_affinity_vae.volumes import NonFiniteError


def pick_level(tomogram: Tomogram, settings: PickSettings) -> tuple[Tomogram, Level, PickSettings]:
    """The level to pick on: the coarsest on which the smallest particle still spans the
    ``BIN_TARGET`` voxels the picker bins finer data down to (the finest for a single-resolution
    tomogram), with the settings at its voxel size and the margin keeping picks as far from the
    faces as on the finest level."""
    source, level = tomogram.level_for(settings.diameter_min / BIN_TARGET)
    margin = settings.diameter_min / 2 if settings.margin is None else settings.margin
    # the same faces as on the finest level, where a level's first voxel sits at its offset
    margin -= max(level.offset) * (tomogram.voxel_size or 0.0)
    return source, level, replace(settings, voxel_size=source.voxel_size, margin=margin)


def pick_tomogram_steps(
    tomogram: Tomogram, settings: PickSettings
) -> Generator[int, None, pd.DataFrame]:
    """:func:`~napari_affinity_vae.particles.picking.pick_steps` on :func:`pick_level`'s level;
    the picks in voxels of the finest level."""
    source, level, at_level = pick_level(tomogram, settings)
    with _refusing_blank(tomogram):
        picks = yield from pick_steps(source.data, at_level)
    picks[list(AXES)] = level.from_level(picks[list(AXES)].to_numpy())
    return picks


@contextlib.contextmanager
def _refusing_blank(tomogram: Tomogram) -> Iterator[None]:
    """A tomogram holding NaN or infinite voxels refused as a :class:`TomogramFileError`."""
    try:
        yield
    except NonFiniteError as err:
        raise TomogramFileError(
            tomogram.path,
            f"cannot pick: {err} (blank regions); fill them (with the mean, say) and pick again",
        ) from None


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


def load_templates(
    paths: list[Path], voxel_size: float, symmetries: list[str] | None = None
) -> list[Template]:
    """Reference maps (MRC, compressed MRC, PDB / mmCIF) at ``voxel_size``, each named by its
    file (``ribosome.mrc``: "ribosome") and of a point-group symmetry (``symmetries``: ``C7``,
    ``D7``, ``T``, ...; default C1)."""
    symmetries = symmetries or ["C1"] * len(paths)
    if len(symmetries) != len(paths):
        raise AffinityVAEError(f"{len(symmetries)} symmetries given for {len(paths)} templates")
    for path, symmetry in zip(paths, symmetries, strict=True):
        try:
            symmetry_group(symmetry)
        except ValueError as err:
            raise AffinityVAEError(f"Template {path.name}: {err}") from None
    names = [uncompressed_name(p).stem for p in paths]
    if len(set(names)) != len(names):
        raise AffinityVAEError(f"Two templates share a name: {', '.join(names)}")
    return [
        Template(name, load_reference(path, voxel_size), n)
        for name, path, n in zip(names, paths, symmetries, strict=True)
    ]


@dataclass(frozen=True)
class MatchPlan:
    """What a template search runs on, decided (and the templates loaded) once: the level of a
    multiscale tomogram nearest the search voxel size (no coarser), the templates at its voxel
    size, the settings with its binning, and the level to map the picks back with."""

    source: Tomogram
    level: Level
    templates: list[Template]
    settings: MatchSettings

    def work(self) -> int:
        """How many rotations :meth:`steps` counts up to."""
        return work(self.source.shape, self.templates, self.settings)

    def steps(self) -> Generator[int, None, MatchResult]:
        """:func:`~napari_affinity_vae.particles.templates.match_steps` on the plan; the picks
        in voxels of the tomogram's finest level."""
        with _refusing_blank(self.source):
            result = yield from match_steps(self.source.data, self.templates, self.settings)
        picks = result.picks
        picks[list(AXES)] = self.level.from_level(picks[list(AXES)].to_numpy())
        result.binning = round(result.binning * self.level.factor)
        return result


def plan_match(
    tomogram: Tomogram,
    templates: list[Path],
    settings: MatchSettings,
    symmetries: list[str] | None = None,
) -> MatchPlan:
    """The :class:`MatchPlan` of matching the reference files ``templates`` (of ``symmetries``)
    over ``tomogram``."""
    if tomogram.voxel_size is None:
        raise TomogramFileError(tomogram.path, "the voxel size is unknown; give one to match")
    finest = load_templates(templates, tomogram.voxel_size, symmetries)
    _refuse_larger_than(tomogram, finest, templates)
    binning = search_binning(finest, replace(settings, voxel_size=tomogram.voxel_size))
    if min(tomogram.shape) < binning:
        shape = " x ".join(map(str, tomogram.shape))
        raise TomogramFileError(
            tomogram.path,
            f"it is {shape} voxels: too thin to search, binned {binning} times as the "
            "templates' size asks, for a particle to fit",
        )
    source, level = tomogram.level_for(tomogram.voxel_size * binning)
    at_level = replace(
        settings, voxel_size=source.voxel_size, binning=max(1, round(binning / level.factor))
    )
    if level.factor != 1:
        finest = load_templates(templates, source.voxel_size, symmetries)
    return MatchPlan(source, level, finest, at_level)


def _refuse_larger_than(tomogram: Tomogram, templates: list[Template], paths: list[Path]) -> None:
    """Refuse a template whose density spans more voxels than the tomogram's longest side: no
    particle of it fits, and the search would end with no picks and no reason given (most often
    one of the two files has a wrong voxel size)."""
    side = max(tomogram.shape)
    for template, path in zip(templates, paths, strict=True):
        across = 2 * support_radius(template.volume)
        if across > side:
            raise AffinityVAEError(
                f"Template {path.name} spans {across:.0f} voxels at the tomogram's "
                f"{tomogram.voxel_size:g} Å/voxel, more than the longest side of "
                f"{tomogram.path.name} ({side} voxels): no particle of it fits. Check the "
                "voxel size of both files."
            )
