"""Template-matching picks refined at the tomogram's own voxel size: a search binned for speed
sees 20 Å where the tomogram holds 10 Å, and its angles are only as good as its grid's step.

Each pick is scored again, unbinned, against every rotation of the search's grid at the voxels
around it, and the ``HYPOTHESES`` best rotations at least a step apart are kept: an elongated or
pseudo-symmetric molecule often scores about as well turned about its long axis, and the grid
may sit nearer the wrong one of two such mates. Each is turned about x, y and z by half the
step, and the ``FOLLOWED`` best go on by a quarter, an eighth, ... (keeping the best turn each
time); the best of them wins. The NCC is the search's (the same mask, transfer and
normalisation); the pick moves to the best voxel within ``SHIFT`` of it, never out of the
tomogram. A search run at the tomogram's voxel size is refined locally from its own rotation.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import pandas as pd
import torch
from scipy.spatial.transform import Rotation

from napari_affinity_vae.particles.extract import extract_boxes
from napari_affinity_vae.particles.template_maps import (
    BLANK_VARIANCE,
    Prepared,
    relion_angles,
    rotated,
)
from napari_affinity_vae.schema import ANGLES, AXES, TEMPLATE

SHIFT = 2  # voxels the refined centre may move, each way along each axis
HYPOTHESES = 6  # rotations of the grid refined per pick
FOLLOWED = 3  # of them, the best refined beyond the first level
LEVELS = 4  # local turns of step / 2, step / 4, ...: for a 30 degree grid down to 1.9 degrees
BATCH_VOXELS = 2**24  # rotated templates made at once: as many as hold this many voxels
CACHE_VOXELS = 2**26  # the grid's rotated templates are kept between picks up to this many
WINDOW_VOXELS = 2**25  # picks' shifted windows held at once: as many picks as fit this many


def refinement_work(grid_sizes: list[int]) -> int:
    """The units :func:`refine_steps` counts: per template, every grid rotation once
    (``grid_sizes``: 0 where the grid is not scored again) and the local turns of each level."""
    return sum(size + LEVELS * len(_turns(1.0)) for size in grid_sizes)


def refine_steps(
    tomogram: np.ndarray,
    picks: pd.DataFrame,
    templates: dict[str, Prepared],
    grids: dict[str, Rotation] | None,
    step: float,
    done: int,
) -> Generator[int, None, pd.DataFrame]:
    """Yield ``done`` plus the units finished (see :func:`refinement_work`), after each group of
    picks; return ``picks`` (z, y, x voxels of ``tomogram``, RELION angles, template name) with
    each pick's centre and angles refined. ``templates`` maps a name to its template prepared at
    the tomogram's voxel size, ``grids`` to the search's rotations to score again (None: the
    search ran at this voxel size), ``step`` their spacing in degrees."""
    picks = picks.copy()
    for name, template in templates.items():
        grid = grids[name] if grids else Rotation.identity(0)
        units = refinement_work([len(grid)])
        rows = np.flatnonzero(picks[TEMPLATE].to_numpy() == name)
        mine = picks.iloc[rows]
        centres = np.round(mine[list(AXES)].to_numpy())
        searched = Rotation.from_euler("ZYZ", mine[list(ANGLES)].to_numpy(), degrees=True)
        per_pick = (2 * SHIFT + 1) ** 3 * template.box**3
        parts = -(-len(rows) * per_pick // WINDOW_VOXELS)
        groups = np.array_split(np.arange(len(rows)), parts) if len(rows) else []
        flats = _GridTemplates(template, grid)
        for finished, group in enumerate(groups, start=1):
            windows = _Windows(tomogram, centres[group], template)
            if len(grid):
                starts = _hypotheses(windows, flats, grid, step)
            else:
                starts = searched[group].as_quat()[:, None]
            rotation, shift = _refined(windows, template, starts, step)
            inside = np.clip(centres[group] + shift, 0, np.subtract(tomogram.shape, 1))
            picks.loc[picks.index[rows[group]], list(AXES)] = inside
            picks.loc[picks.index[rows[group]], list(ANGLES)] = relion_angles(rotation)
            yield done + units * finished // len(groups)
        done += units
        if not groups:
            yield done
    return picks


class _GridTemplates:
    """The grid's rotated templates in batches, kept for the next picks where they fit in
    ``CACHE_VOXELS``."""

    def __init__(self, template: Prepared, grid: Rotation) -> None:
        self.template, self.grid = template, grid
        self.chunk = max(1, BATCH_VOXELS // template.box**3)
        self.kept: dict[int, torch.Tensor] | None = (
            {} if len(grid) * template.box**3 <= CACHE_VOXELS else None
        )

    def batches(self) -> Generator[torch.Tensor, None, None]:
        """The flattened rotated templates of each batch, in the grid's order."""
        for start in range(0, len(self.grid), self.chunk):
            if self.kept is not None and start in self.kept:
                yield self.kept[start]
                continue
            flat = _flat(self.template, self.grid[start : start + self.chunk])
            if self.kept is not None:
                self.kept[start] = flat
            yield flat


class _Windows:
    """Picks' windows (picks, shifts, box^3): the tomogram under the template's box at each voxel
    within ``SHIFT`` of each centre (the outside of the tomogram filled with the inside's mean),
    and their spread under the mask (the NCC's denominator)."""

    def __init__(self, tomogram: np.ndarray, centres: np.ndarray, template: Prepared) -> None:
        box = template.box
        boxes, _ = extract_boxes(tomogram, centres, box + 2 * SHIFT)
        boxes -= boxes.mean(axis=(1, 2, 3), keepdims=True)  # the same NCC, a precise spread
        windows = torch.from_numpy(boxes).unfold(1, box, 1).unfold(2, box, 1).unfold(3, box, 1)
        self.data = windows.reshape(len(centres), (2 * SHIFT + 1) ** 3, box**3)
        mask = template.mask.reshape(-1).cpu()
        count = mask.sum()
        mean = self.data @ mask / count
        square = torch.einsum("psv,psv,v->ps", self.data, self.data, mask) / count
        variance = square - mean**2
        floor = BLANK_VARIANCE * square.clamp_min(float((boxes**2).mean()) if boxes.size else 0)
        # infinite where blank (:func:`~.templates._local_std`): no contrast scores 0
        spread = torch.sqrt(variance.clamp_min(0)) * count
        self.spread = spread.masked_fill(variance <= floor, torch.inf)

    def scores(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The NCC with rotated templates, the same for every pick (rotations, voxels) or each
        pick's own (picks, rotations, voxels), best over the shifts: (picks, rotations), and the
        index of that shift."""
        if flat.ndim == 2:
            products = torch.matmul(self.data, flat.T).transpose(1, 2)
        else:
            products = torch.bmm(flat, self.data.transpose(1, 2))
        return (products / self.spread[:, None, :]).clamp(-1, 1).max(dim=2)


def _hypotheses(
    windows: _Windows, flats: _GridTemplates, grid: Rotation, step: float
) -> np.ndarray:
    """(picks, HYPOTHESES, 4): quaternions of each pick's best grid rotations, each more than
    ``step`` degrees from the better ones."""
    scores = torch.cat([windows.scores(flat)[0] for flat in flats.batches()], dim=1).numpy()
    chosen = np.zeros((len(scores), HYPOTHESES, 4))
    for k in range(HYPOTHESES):
        best = scores.argmax(axis=1)
        chosen[:, k] = grid[best].as_quat()
        for pick, index in enumerate(best):  # the best's neighbours are no new hypothesis
            near = (grid * grid[index].inv()).magnitude() <= np.radians(step)
            scores[pick, near] = -np.inf
    return chosen


def _refined(
    windows: _Windows, template: Prepared, starts: np.ndarray, step: float
) -> tuple[Rotation, np.ndarray]:
    """Each pick's best rotation and shift (voxels) after turning its starting rotations (picks,
    hypotheses, 4 quaternions) by ever smaller steps; after the first, only the ``FOLLOWED``
    best go on."""
    picks = len(starts)
    quaternions = starts
    for level in range(1, LEVELS + 1):
        tracks = quaternions.shape[1]
        turns = _turns(step / 2**level)
        candidates = Rotation.from_quat(np.tile(turns.as_quat(), (picks * tracks, 1))) * (
            Rotation.from_quat(np.repeat(quaternions.reshape(-1, 4), len(turns), axis=0))
        )
        flat = _flat(template, candidates).reshape(picks, tracks * len(turns), -1)
        ncc, where = windows.scores(flat)
        ncc = ncc.reshape(picks, tracks, len(turns))
        turn = ncc.argmax(dim=2, keepdim=True)
        order = ncc.amax(dim=2).argsort(dim=1, descending=True)[:, :FOLLOWED, None]
        column = (order * len(turns) + turn.gather(1, order)).numpy()[..., 0]
        rows = np.arange(picks)[:, None]
        quaternions = candidates.as_quat().reshape(picks, -1, 4)[rows, column]
    index = where.numpy()[np.arange(picks), column[:, 0]]
    shifts = np.stack(np.unravel_index(index, (2 * SHIFT + 1,) * 3), axis=-1) - SHIFT
    return Rotation.from_quat(quaternions[:, 0]), shifts


def _turns(angle: float) -> Rotation:
    """The identity and turns of ``angle`` degrees each way about x, y and z."""
    axes = np.concatenate([np.zeros((1, 3)), np.eye(3), -np.eye(3)])
    return Rotation.from_rotvec(axes * np.radians(angle))


def _flat(template: Prepared, rotations: Rotation) -> torch.Tensor:
    """The search's masked, normalised ``T(A r)`` for each rotation, flattened, on the CPU."""
    chunk = max(1, BATCH_VOXELS // template.box**3)
    parts = [rotated(template, rotations[i : i + chunk]) for i in range(0, len(rotations), chunk)]
    return torch.cat(parts).reshape(len(rotations), -1).cpu()
