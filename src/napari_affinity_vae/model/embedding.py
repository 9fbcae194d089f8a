"""From a tomogram and its particles to latent vectors: extraction and encoding in batches, so
memory stays bounded however many particles there are."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from napari_affinity_vae.errors import TomogramFileError
from napari_affinity_vae.io.tomogram import Tomogram
from napari_affinity_vae.model.checkpoint import CheckpointError, ModelCard, check_fits
from napari_affinity_vae.model.inference import device, encode, for_inference
from napari_affinity_vae.model.network import AffinityVAE
from napari_affinity_vae.model.splats import pose_angles, turns_pose
from napari_affinity_vae.particles.chunked import planned_reads
from napari_affinity_vae.particles.extract import blank_boxes, extract_boxes, read_size
from napari_affinity_vae.progress import Progress, run_steps
from napari_affinity_vae.schema import (
    AXES,
    CROSSES_EDGE,
    LATENT_PREFIX,
    MODEL_ANGLES,
    POSE_PREFIX,
    RECONSTRUCTION_ERROR,
)
from napari_affinity_vae.text import first_few

BATCH = 512
MAX_RESAMPLING = 4.0  # the most the tomogram's and the model's voxel sizes may differ, either way


def check_voxel_sizes(tomogram: Tomogram, card: ModelCard) -> float:
    """The factor by which boxes are resampled to the model's voxel size (model / tomogram).

    A tomogram whose voxel size is unknown, or differs from the model's by more than
    ``MAX_RESAMPLING`` times either way, is refused before anything is read: a wrong header value
    (1.0 is a common placeholder) would otherwise resample every box tenfold, tens of gigabytes
    a batch, or blow a few voxels up into the model's box.
    """
    if tomogram.voxel_size is None:
        raise TomogramFileError(
            tomogram.path, "the voxel size is unknown: give one (the Voxel size box, --voxel-size)"
        )
    ours, model = float(tomogram.voxel_size), float(card.voxel_size)
    scale = model / ours
    if 1 / MAX_RESAMPLING <= scale <= MAX_RESAMPLING:
        return scale
    box = card.architecture.box
    if scale > 1:
        problem = (
            f"{scale:.3g}x finer than the model's {model:g} Å; boxes would be resampled "
            f"{scale:.3g}-fold ({box * scale:.0f} voxels a side read for the model's {box})"
        )
    else:
        problem = (
            f"{1 / scale:.3g}x coarser than the model's {model:g} Å; boxes would be enlarged "
            f"{1 / scale:.3g}-fold ({box * scale:.3g} voxels a side read for the model's {box})"
        )
    raise TomogramFileError(
        tomogram.path,
        f"voxel size {ours:g} Å is {problem}. Check the voxel size (a header value of 1.0 is "
        "often a placeholder) and set it with --voxel-size or in the Tomogram widget.",
    )


def check_embeddable(tomogram: Tomogram, model: AffinityVAE, card: ModelCard) -> float:
    """:func:`check_voxel_sizes`, then that the model takes the boxes it will get. Boxes are cut
    at the model's box size from the tomogram resampled to the model's voxel size, so what can
    still not fit is the network itself: one for 2D images, or one of another box than its card's
    (:func:`~napari_affinity_vae.model.checkpoint.check_fits` names the checkpoint). A multiscale
    tomogram is checked at the level boxes come from (:meth:`Tomogram.level_for`)."""
    source, _ = tomogram.level_for(card.voxel_size)
    scale = check_voxel_sizes(source, card)
    voxel_size = float(source.voxel_size) * scale
    check_fits(card, model.architecture.box, voxel_size, card.path or "the model", ndim=3)
    return scale


def embed_steps(
    tomogram: Tomogram,
    particles: pd.DataFrame,
    model: AffinityVAE,
    card: ModelCard,
    batch: int = BATCH,
    inverted: bool = False,
    error: bool = True,
    read_ahead: bool | None = None,
) -> Generator[int, None, pd.DataFrame]:
    """Yield the number of particles done after each batch (stop iterating to cancel); return the
    particle table with ``latent_*``, ``pose_*``, ``crosses_edge`` and, with ``error``,
    ``reconstruction_error`` (the decoder then runs too: about five times the time).
    A voxel size far from the model's is refused before anything is read
    (:func:`check_voxel_sizes`), and so is a model that does not take 3D boxes
    (:func:`check_embeddable`). Boxes come from the coarsest level of a multiscale tomogram that
    is no coarser than the model; from a chunked one (Zarr) they are cut in chunk order, so each
    chunk is decompressed once, and the rows keep their order.

    On the CPU, boxes are cut between encodings on the threads torch encodes with: a reader
    thread beside them would take cores the encoder needs. Where the encoder has a GPU (or with
    ``read_ahead``), the next batch is cut in a thread while this one is encoded."""
    scale = check_embeddable(tomogram, model, card)
    source, level = tomogram.level_for(card.voxel_size)
    box = model.architecture.box
    centres = level.to_level(particles[list(AXES)].to_numpy(dtype=float))
    data, order = planned_reads(source.data, centres, read_size(box, scale))
    coords = centres[order]
    parts: dict[str, list[np.ndarray]] = {"mu": [], "pose": [], "error": [], "edge": []}
    network = for_inference(model)  # made once for every batch
    on_cpu = device().type == "cpu"
    ahead = not on_cpu if read_ahead is None else read_ahead
    shape = (min(batch, len(coords)), box, box, box)
    buffers = [np.empty(shape, dtype=np.float32) for _ in range(2 if ahead else 1)]

    def extract(k: int) -> tuple[np.ndarray, np.ndarray]:
        chunk = coords[k * batch : (k + 1) * batch]
        out = buffers[k % len(buffers)][: len(chunk)]
        threads = torch.get_num_threads() if on_cpu else None
        return extract_boxes(
            data, chunk, box, scale, normalised=True, inverted=inverted, out=out, threads=threads
        )

    batches = -(-len(coords) // batch)
    blank: list[int] = []  # rows (in read order) whose boxes hold NaN or infinities
    for k, (boxes, crossed) in enumerate(_read(extract, batches, ahead)):
        blank.extend(blank_boxes(boxes) + k * batch)
        if not blank:  # once one is found, the rest are only counted
            encoded = encode(network, boxes, error=error)
            for key in ("mu", "pose", "error"):
                parts[key].append(encoded[key])
        parts["edge"].append(crossed)
        yield min((k + 1) * batch, len(coords))
    if blank:
        where = np.sort(order[blank])
        raise TomogramFileError(
            tomogram.path,
            f"the boxes of {where.size} of {len(coords)} particles hold NaN or infinite voxels "
            f"(rows {first_few(where)}, counted from 0): the tomogram has blank regions. "
            "Remove those particles, or fill the regions, and embed again",
        )
    a = card.architecture
    rows = np.argsort(order)  # back to the table's order
    mu = np.concatenate(parts["mu"])[rows] if parts["mu"] else np.zeros((0, a.latent_dims))
    check_finite(mu, card)
    pose = np.concatenate(parts["pose"])[rows] if parts["pose"] else np.zeros((0, a.pose_dims))
    columns = {f"{LATENT_PREFIX}{i}": mu[:, i] for i in range(a.latent_dims)}
    columns |= {f"{POSE_PREFIX}{i}": pose[:, i] for i in range(a.pose_dims)}
    if turns_pose(a):
        columns |= dict(zip(MODEL_ANGLES, pose_angles(pose).T, strict=True))
    if error:
        columns[RECONSTRUCTION_ERROR] = (
            np.concatenate(parts["error"])[rows] if parts["error"] else []
        )
    columns[CROSSES_EDGE] = np.concatenate(parts["edge"])[rows] if parts["edge"] else []
    result = pd.concat([particles.reset_index(drop=True), pd.DataFrame(columns)], axis=1)
    result.attrs = dict(particles.attrs) | {"voxel_size": tomogram.voxel_size}
    return result


def check_finite(mu: np.ndarray, card: ModelCard) -> None:
    """Refuse latents the model made NaN or infinite from finite boxes: its weights hold NaN."""
    bad = ~np.isfinite(mu).all(axis=1)
    if bad.any():
        raise CheckpointError(
            card.path or Path("the model"),
            f"gives NaN or infinite latents for {int(bad.sum())} of {len(bad)} particles, whose "
            "boxes are finite: its weights hold NaN (its training diverged?); train it again, "
            "or choose another model",
        )


def _read(
    extract: Callable[[int], tuple[np.ndarray, np.ndarray]], batches: int, ahead: bool
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``extract(k)`` for each batch k, one batch ahead in a thread with ``ahead``."""
    if not ahead:
        yield from map(extract, range(batches))
        return
    with ThreadPoolExecutor(1) as reader:
        future = reader.submit(extract, 0)
        for k in range(batches):
            result = future.result()
            if k + 1 < batches:
                future = reader.submit(extract, k + 1)
            yield result


def embed(
    tomogram: Tomogram,
    particles: pd.DataFrame,
    model: AffinityVAE,
    card: ModelCard,
    batch: int = BATCH,
    inverted: bool = False,
    progress: Progress | None = None,
    error: bool = True,
    read_ahead: bool | None = None,
) -> pd.DataFrame:
    """:func:`embed_steps` run to the end, with an optional progress bar (started only once the
    voxel sizes and the model are known to fit)."""
    check_embeddable(tomogram, model, card)
    steps = embed_steps(tomogram, particles, model, card, batch, inverted, error, read_ahead)
    return run_steps(steps, len(particles), "embedding", progress)
