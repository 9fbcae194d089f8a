"""From the explorer's labelled particles to a training set: their boxes, cut as the model sees
them, their classes, and an affinity matrix for those classes (the model's own where it knows
the classes, from the decoded class centres, or from a file)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path

import numpy as np
import pandas as pd

from napari_affinity_vae.errors import AffinityVAEError, TomogramFileError
from napari_affinity_vae.io.tomogram import Tomogram
from napari_affinity_vae.model.checkpoint import ModelCard
from napari_affinity_vae.model.datasets import MIN_PER_CLASS, class_names
from napari_affinity_vae.model.embedding import check_voxel_sizes
from napari_affinity_vae.model.inference import decode
from napari_affinity_vae.model.network import AffinityVAE
from napari_affinity_vae.model.train import TrainingData
from napari_affinity_vae.particles.extract import blank_boxes, extract_boxes
from napari_affinity_vae.schema import AXES, TOMO_NAME, latent_columns
from napari_affinity_vae.simulate.affinity import correlation_steps, scale_affinity
from napari_affinity_vae.simulate.molecules import load_reference
from napari_affinity_vae.text import first_few
from napari_affinity_vae.volumes import fit_box


def class_counts(labels: pd.Series) -> pd.Series:
    """Particles per class of a label column (None, NaN or blank: not labelled), by class name
    in sorted order. The distinct labels are counted first, so a million rows cost one pass."""
    counts = labels.value_counts(dropna=True)
    names = class_names(pd.Series(counts.index, dtype=labels.dtype))
    counts = counts.groupby(names.to_numpy()).sum()
    return counts[counts.index != ""].sort_index()


def check_labels(labels: pd.Series, needing: str = "Training") -> list[str]:
    """The classes to train on (or to find the affinity of, ``needing`` says which in the
    message); refuses fewer than two, or a class of too few particles."""
    counts = class_counts(labels)
    classes = [str(c) for c in counts.index]
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise AffinityVAEError(
            f"{needing} needs particles of at least two classes labelled; found {found}"
        )
    few = [c for c in classes if counts[c] < MIN_PER_CLASS]
    if few:
        raise AffinityVAEError(
            f"Label at least {MIN_PER_CLASS} particles of each class: {', '.join(few)} "
            f"{'has' if len(few) == 1 else 'have'} fewer"
        )
    return classes


def default_affinity(classes: list[str], card: ModelCard | None) -> pd.DataFrame:
    """1 on the diagonal; the model's own affinity between classes it knows; 0 (unrelated)
    between the others, to be edited."""
    matrix = pd.DataFrame(np.eye(len(classes)), index=classes, columns=classes)
    known = [c for c in classes if card is not None and c in card.classes]
    if len(known) > 1:
        theirs = pd.DataFrame(card.affinity, index=card.classes, columns=card.classes)
        matrix.loc[known, known] = theirs.loc[known, known].to_numpy()
    return matrix


def labelled_boxes(
    particles: pd.DataFrame,
    label_column: str,
    open_tomogram: Callable[[str | None], Tomogram],
    card: ModelCard,
    inverted: bool = False,
) -> Generator[int, None, TrainingData]:
    """Yield the particles done, tomogram by tomogram; return the training set of the labelled
    particles: boxes of the model's size at its voxel size, normalised as the model expects.
    ``open_tomogram(name)`` opens a project's tomogram (None: the one tomogram)."""
    labels = particles[label_column]
    classes = check_labels(labels)
    names = class_names(labels).fillna("")
    rows = np.flatnonzero(names.isin(classes).to_numpy())
    table = particles.iloc[rows].reset_index(drop=True)  # index: the row in the training set
    groups = table.groupby(TOMO_NAME, sort=False) if TOMO_NAME in table else [(None, table)]
    box, done = card.architecture.box, 0
    boxes = np.empty((len(table), box, box, box), dtype=np.float32)
    for name, group in groups:
        tomogram = open_tomogram(name)
        source, level = tomogram.level_for(card.voxel_size)
        scale = check_voxel_sizes(source, card)
        centres = level.to_level(group[list(AXES)].to_numpy(dtype=float))
        boxes[group.index.to_numpy()], _ = extract_boxes(
            source.data, centres, box, scale, normalised=True, inverted=inverted
        )
        _refuse_blank(boxes[group.index.to_numpy()], rows[group.index.to_numpy()], tomogram)
        done += len(group)
        yield done
    lookup = {c: i for i, c in enumerate(classes)}
    counts = ", ".join(f"{c} {n}" for c, n in class_counts(labels).items())
    return TrainingData(
        boxes,
        names.iloc[rows].map(lookup).to_numpy(dtype=np.int64),
        classes,
        np.eye(len(classes)),
        card.voxel_size,
        description=f"{len(rows)} particles labelled by their {label_column} ({counts})",
    )


def _refuse_blank(boxes: np.ndarray, rows: np.ndarray, tomogram: Tomogram) -> None:
    """Refuse boxes holding NaN or infinities (the model would learn NaN weights), naming the
    tomogram and the particles' ``rows`` in the table, as embedding does."""
    blank = rows[blank_boxes(boxes)]
    if blank.size:
        raise TomogramFileError(
            tomogram.path,
            f"the boxes of {blank.size} of {len(boxes)} labelled particles hold NaN or infinite "
            f"voxels (rows {first_few(np.sort(blank))}, counted from 0): the tomogram has blank "
            "regions. Remove or unlabel those particles, or fill the regions, and train again",
        )


def centre_affinity(
    particles: pd.DataFrame,
    label_column: str,
    model: AffinityVAE,
    stop: Callable[[], bool] | None = None,
) -> Generator[int, None, pd.DataFrame]:
    """Affinity from what the model decodes for each class's mean latent (an average of
    unaligned boxes would only be a rotational blur): the best correlation of each pair over
    rotations and shifts, scaled as ``avae affinity`` scales it. Yields pairs done; ``stop``
    ends it within a pair."""
    classes = check_labels(particles[label_column])
    columns = latent_columns(particles)
    if not columns or particles[columns].isna().all(axis=None):
        raise AffinityVAEError("Embed the particles first: the class centres are their latents")
    names = class_names(particles[label_column]).fillna("")
    placed = particles[columns].notna().all(axis=1)  # not those added or moved since
    unplaced = [c for c in classes if not (placed & (names == c)).any()]
    if unplaced:
        raise AffinityVAEError(
            f"No particle of {', '.join(unplaced)} is embedded (added or moved by hand since "
            "the last embedding?): embed again, or label embedded particles"
        )
    means = np.stack(
        [particles.loc[placed & (names == c), columns].mean().to_numpy() for c in classes]
    )
    volumes = decode(model, means, np.zeros((len(classes), 0)))
    raw = yield from correlation_steps(list(volumes), stop=stop)
    return pd.DataFrame(scale_affinity(raw), index=classes, columns=classes)


def reference_affinity(
    references: dict[str, Path],
    classes: list[str],
    voxel_size: float,
    stop: Callable[[], bool] | None = None,
) -> Generator[int, None, pd.DataFrame]:
    """Affinity from a reference map or atomic model per class (``references`` by class name),
    as ``avae affinity`` computes it, at the model's voxel size: a class without one is refused
    at once; the steps, which read the files, yield pairs done."""
    missing = [c for c in classes if c not in references]
    if missing:
        raise AffinityVAEError(
            f"No map or model for class(es) {', '.join(missing)}: name each file after its class "
            f"(found {', '.join(references) or 'none'})"
        )
    return _reference_steps([references[c] for c in classes], classes, voxel_size, stop)


def _reference_steps(
    paths: list[Path], classes: list[str], voxel_size: float, stop: Callable[[], bool] | None
) -> Generator[int, None, pd.DataFrame]:
    maps = [load_reference(path, voxel_size) for path in paths]
    box = max(max(m.shape) for m in maps)
    raw = yield from correlation_steps([fit_box(m, box) for m in maps], stop=stop)
    return pd.DataFrame(scale_affinity(raw), index=classes, columns=classes)
