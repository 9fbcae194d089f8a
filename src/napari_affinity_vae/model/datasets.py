"""Training sets from the three layouts ``avae train`` accepts, as normalised boxes and labels.

(a) a simulator training set: ``subtomograms.mrcs`` + ``subtomograms.csv`` (+ ``affinity.csv``);
(b) a tomogram and a coordinate file with a class column;
(c) the reference affinity-VAE's layout: a folder of ``<class>_<anything>.mrc(s)`` files with
    ``classes.csv`` (the class names to use) and an affinity CSV.

The affinity matrix comes from ``--affinity``, else from an affinity CSV beside the data, else from
the caller's ``fallback_affinity`` (the command line passes the simulator's built-in molecules').
A simulator set also knows the factors that made each box (:func:`load_factors`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd

from napari_affinity_vae.errors import InputFileError
from napari_affinity_vae.io.affinity import load_affinity
from napari_affinity_vae.io.frame import binned_pixel_size
from napari_affinity_vae.io.orientation import angles_to_matrices
from napari_affinity_vae.io.particles import read_particles
from napari_affinity_vae.io.subtomograms import read_subtomograms
from napari_affinity_vae.io.tomogram import axis_order, open_tomogram
from napari_affinity_vae.model.train import TrainingData
from napari_affinity_vae.particles.extract import extract_boxes
from napari_affinity_vae.schema import ANGLES, AXES, CLASS_NAME, SHIFTS
from napari_affinity_vae.text import count, first_few
from napari_affinity_vae.volumes import fit_box, normalise, resample

DEFAULT_BOX = 32  # voxels, of boxes cut from a tomogram
CLASS_COLUMNS = (CLASS_NAME, "rlnClassName", "class", "rlnClassNumber")
# (class names, voxel size) -> their affinity matrix, or None where the caller knows none
FallbackAffinity = Callable[[list[str], float], np.ndarray | None]


MIN_PER_CLASS = 2  # boxes; fewer cannot be both trained on and told apart
NO_VOXEL_SIZE = "no particle file's header gives a voxel size: give it with --voxel-size"


def load_training_set(
    source: str | Path,
    coordinates: str | Path | None = None,
    affinity: str | Path | None = None,
    box: int | None = None,
    fallback_affinity: FallbackAffinity | None = None,
    voxel_size: float | None = None,
    picks: PickChoice | None = None,
) -> TrainingData:
    """Boxes and labels from any of the three layouts (see the module's description);
    ``fallback_affinity`` gives the affinity matrix where no affinity CSV does. ``box`` is the
    size boxes are cut at from a tomogram (default 32), and the size a folder's boxes are
    resampled to (their voxel size changing with them; default: as they are). ``voxel_size``
    (Angstrom) overrides the headers (a tomogram's, a folder's files'), and a folder whose
    headers give none needs it. ``picks`` says which rows of a tomogram's coordinate file to
    read, and how."""
    source = Path(source)
    angles = None
    if coordinates is not None:
        boxes, names, voxel_size = _from_tomogram(
            source, Path(coordinates), box or DEFAULT_BOX, voxel_size, picks or PickChoice()
        )
        _refuse_non_finite(boxes, source, f"particle of {Path(coordinates).name}")
    elif (source / "subtomograms.mrcs").is_file():
        boxes, table = read_subtomograms(source)
        names = table[CLASS_NAME].astype(str).to_numpy()
        voxel_size = voxel_size or table.attrs["voxel_size"]
        if not voxel_size:
            raise InputFileError(source, NO_VOXEL_SIZE)
        angles = _known_angles(source, table)
        _refuse_non_finite(boxes, source, "box")
    elif source.is_dir():
        boxes, names, voxel_size = _from_particle_folder(source, voxel_size)  # checked as read
    elif not source.exists():
        raise InputFileError(source, "no such file or folder")
    else:
        raise InputFileError(
            source, "not a training set: give a subtomogram folder, or a tomogram with --coords"
        )
    if box and coordinates is None and box != boxes.shape[-1]:
        boxes, voxel_size = _resampled(boxes, box, voxel_size, source)
    classes = list(dict.fromkeys(sorted(names)))
    few = [c for c in classes if np.count_nonzero(np.asarray(names) == c) < MIN_PER_CLASS]
    if few:
        warnings.warn(
            f"{source}: {', '.join(few)} {'has' if len(few) == 1 else 'have'} fewer than "
            f"{MIN_PER_CLASS} boxes: a class of one is trained on but cannot be told apart",
            stacklevel=2,
        )
    matrix = _affinity_for(classes, voxel_size, source, affinity, fallback_affinity)
    lookup = {c: i for i, c in enumerate(classes)}
    return TrainingData(
        normalise(boxes),
        np.array([lookup[n] for n in names]),
        classes,
        matrix,
        voxel_size,
        description=f"{source} ({count(len(boxes), 'box', 'boxes')} of "
        f"{count(len(classes), 'class', 'classes')})",
        angles=angles,
    )


def _known_angles(source: Path, table: pd.DataFrame) -> np.ndarray | None:
    """The boxes' rot, tilt and psi; None, with a warning, where some are blank or missing:
    orientation is then not scored."""
    angles = table.reindex(columns=list(ANGLES)).to_numpy(dtype=float)
    unknown = ~np.isfinite(angles).all(axis=1)
    if unknown.any():
        warnings.warn(
            f"{source / 'subtomograms.csv'}: {int(unknown.sum())} of {len(table)} boxes have a "
            "blank rot, tilt or psi: the set's orientations are left unknown (avae evaluate "
            "scores no pose or disentanglement on it)",
            stacklevel=3,
        )
        return None
    return angles


def load_factors(source: str | Path) -> pd.DataFrame | None:
    """The generative factors of a simulator set's boxes, row by row as its stack: ``class``; the
    orientation as the nine entries ``R_ij`` (i, j in x, y, z) of the rotation that turns the
    reference into the particle; ``shift_z/y/x``, the particle's offset in its box (voxels).
    None for the other layouts, whose factors are not known, for a table without the
    simulator's shifts (a stack made by another tool) and for one with blank angles.

    Matrix entries rather than Euler angles, which wrap at 360 degrees and near tilt 0 say only
    rot + psi; or a quaternion, whose sign must be fixed, so that it jumps at half turns. Each
    entry, the cosine between a reference axis and a particle axis, is smooth and single-valued.
    """
    path = Path(source) / "subtomograms.csv"
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path)
        if not set(SHIFTS) <= set(table):
            return None  # a stack made by another tool: its factors are not known
        if not np.isfinite(table.reindex(columns=list(ANGLES)).to_numpy(dtype=float)).all():
            return None  # orientations not known (loading the set warns)
        matrices = angles_to_matrices(table[list(ANGLES)].to_numpy())
        factors = {"class": table[CLASS_NAME].astype(str).to_numpy()}
        factors |= {
            f"R_{i}{j}": matrices[:, a, b] for a, i in enumerate("xyz") for b, j in enumerate("xyz")
        }
        factors |= {name: table[name].to_numpy(dtype=float) for name in SHIFTS}
    except (OSError, ValueError, KeyError) as err:
        raise InputFileError(path, f"not a simulator table of factors ({err})") from None
    return pd.DataFrame(factors)


def _resampled(
    boxes: np.ndarray, box: int, voxel_size: float, source: Path
) -> tuple[np.ndarray, float]:
    """Cubic boxes resampled to ``box`` voxels a side (low-passed when shrinking), and their new
    voxel size."""
    size = boxes.shape[-1]
    if boxes.ndim != 4:
        raise InputFileError(source, f"{size}^2 images cannot be resampled to {box}: give 3D boxes")
    return fit_box(resample(boxes, box / size), box), voxel_size * size / box


def _affinity_for(
    classes: list[str],
    voxel_size: float,
    source: Path,
    affinity: str | Path | None,
    fallback: FallbackAffinity | None,
) -> np.ndarray:
    path = Path(affinity) if affinity else None
    if path is None and source.is_dir():
        path = next(
            (p for p in (source / "affinity.csv", source / "affinity_scores.csv") if p.is_file()),
            None,
        )
    if path is not None:
        table = load_affinity(path)
        missing = [c for c in classes if c not in table.columns]
        if missing:
            raise InputFileError(path, f"no affinity for class(es) {', '.join(missing)}")
        return table.loc[classes, classes].to_numpy()
    matrix = fallback(classes, voxel_size) if fallback is not None else None
    if matrix is not None:
        return np.asarray(matrix, dtype=float)
    raise InputFileError(source, "no affinity matrix: give one with --affinity")


@dataclass(frozen=True)
class PickChoice:
    """Which rows of a coordinate file to train on: ``tomo_name``'s, of a file naming several;
    pixel coordinates ``binning`` times finer than the tomogram's voxels; rows with NaN or
    outside the tomogram skipped (``skip_unusable``, with a warning) rather than refused."""

    tomo_name: str | None = None
    binning: float = 1.0
    skip_unusable: bool = False


def _from_tomogram(
    tomogram: Path, coordinates: Path, box: int, voxel_size: float | None, picks: PickChoice
) -> tuple[np.ndarray, np.ndarray, float]:
    volume = open_tomogram(tomogram, voxel_size)
    particles = read_particles(
        coordinates,
        voxel_size=volume.voxel_size,
        tomogram_shape=volume.shape,
        tomo_name=picks.tomo_name,
        pixel_size=binned_pixel_size(volume.voxel_size, picks.binning),
        drop_nan=picks.skip_unusable,
        drop_outside=picks.skip_unusable,
    )
    column = next((c for c in CLASS_COLUMNS if c in particles), None)
    if column is None:
        raise InputFileError(coordinates, f"no class column (one of {', '.join(CLASS_COLUMNS)})")
    names = class_names(particles[column])
    labelled = (names.notna() & (names != "")).to_numpy()
    if not labelled.any():
        raise InputFileError(coordinates, f"no particle has a class in column {column}")
    if not labelled.all():
        warnings.warn(
            f"{coordinates}: {int((~labelled).sum())} of {len(names)} particles have no "
            f"{column}; they are left out of training",
            stacklevel=2,
        )
    particles = particles[labelled]
    boxes, _ = extract_boxes(volume.data, particles[list(AXES)].to_numpy(), box)
    return boxes, names[labelled].to_numpy(dtype=str), float(volume.voxel_size)


def class_names(column: pd.Series) -> pd.Series:
    """A class column as text (missing: NA); a numeric column's class numbers as integers,
    ``1`` rather than ``1.0``, though a missing one made the column float. Text stays as typed:
    ``01`` and ``1`` are two classes, ``007`` is not ``7``."""
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if numeric and (column.dropna() % 1 == 0).all():
        column = column.astype("Int64")
    return column.astype("string").str.strip()


def _from_particle_folder(
    folder: Path, voxel_size: float | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """The boxes of a folder of ``<class>_<anything>.mrc`` files (a ``.mrcs`` volume stack gives
    each of its boxes to the file's class) and their voxel size (``voxel_size`` if given, else
    the headers'), refused where a file is unreadable, holds NaN, is not a cubic box (or square
    image), or differs from the others in shape or (unless given) voxel size, and where no
    header gives a voxel size and none is given. With a ``classes.csv``, a file's class is the
    longest listed class its name begins with before a ``_`` (``single_ring_0003.mrc`` is
    ``single_ring``), and a listed class without files is warned of; without one, the name up to
    its first ``_``."""
    wanted = None
    if (folder / "classes.csv").is_file():
        wanted = {t for t in re.split(r"[,\s]+", (folder / "classes.csv").read_text()) if t}
    boxes, names = [], []
    sizes: dict[float, Path] = {}  # voxel size -> the first file of it
    shapes: dict[tuple[int, ...], Path] = {}  # box shape -> the first file of it
    for path in sorted(folder.glob("*.mrc*")):
        name = _class_of(path.name, wanted)
        if name is None:
            continue
        data, size = _read_particle_file(path)
        sizes.setdefault(size, path)
        shapes.setdefault(data.shape[1:], path)
        boxes.extend(data)
        names.extend([name] * len(data))
    if not boxes:
        raise InputFileError(folder, "no <class>_<anything>.mrc files of the listed classes")
    absent = sorted((wanted or set()) - set(names))
    if absent:
        warnings.warn(
            f"{folder / 'classes.csv'}: lists {', '.join(absent)}, of which the folder has no "
            "<class>_<anything>.mrc file; the set has no such class",
            stacklevel=3,
        )
    if len(shapes) > 1:
        listed = "; ".join(f"{p.name}: {'x'.join(map(str, s))}" for s, p in shapes.items())
        raise InputFileError(
            folder,
            f"particles differ in shape ({listed}); cut them to one box size first (--box "
            "then resamples boxes of one size)",
        )
    if voxel_size:
        return np.stack(boxes), np.array(names), voxel_size
    known = {s: p for s, p in sizes.items() if s > 0}
    if len(known) > 1:
        listed = "; ".join(f"{p.name}: {s:g} Å" for s, p in sorted(known.items()))
        raise InputFileError(
            folder, f"particles differ in voxel size ({listed}); resample them to one voxel size"
        )
    if not known:
        raise InputFileError(folder, NO_VOXEL_SIZE)
    return np.stack(boxes), np.array(names), next(iter(known))


def _class_of(file_name: str, wanted: set[str] | None) -> str | None:
    """The class of a ``<class>_<anything>.mrc`` file: the longest of the ``wanted`` classes it
    begins with (None: of none), or without a list the name up to its first ``_``."""
    if wanted is None:
        return file_name.split("_", 1)[0]
    matching = [c for c in wanted if file_name.startswith(f"{c}_")]
    return max(matching, key=len) if matching else None


def _read_particle_file(path: Path) -> tuple[np.ndarray, float]:
    """A particle file's boxes as a stack (one box, or each of a ``.mrcs`` stack's) and its
    voxel size (0: not in the header). A ``.mrc`` file is one particle unless its header says
    it is a stack of volumes (space group 401): RELION, ChimeraX and cryoSPARC write volumes with
    space group 0, which mrcfile reads as a stack of images."""
    try:
        with mrcfile.open(path, permissive=False) as mrc:
            data = np.asarray(mrc.data, dtype=np.float32)
            images = mrc.is_image_stack() and path.suffix.lower() == ".mrcs"
            stack = mrc.is_volume_stack() or images
            to_zyx = axis_order(mrc.header)
            if to_zyx is not None and data.ndim == 3 and not stack:
                data = data.transpose(to_zyx)
            voxel_size = round(float(mrc.voxel_size.x), 3)
    except (OSError, ValueError, ArithmeticError, EOFError) as err:
        raise InputFileError(path, f"not a readable MRC file ({err})") from None
    if data is None or data.size == 0:
        raise InputFileError(path, "holds no data")
    boxes = data if stack else data[None]
    shape = boxes.shape[1:]
    if len(shape) not in (2, 3) or len(set(shape)) != 1:
        kind = "cubic 3D boxes" if len(shape) == 3 else "square 2D images"
        raise InputFileError(
            path,
            f"a particle of {'x'.join(map(str, shape))} voxels: particles must be {kind}"
            + (" (a single plane is not a 3D box)" if 1 in shape else ""),
        )
    bad = _non_finite(boxes)
    if bad.size:
        where = f"boxes {first_few(bad)} (from 0) of the stack hold" if stack else "the box holds"
        raise InputFileError(path, f"{where} NaN or infinite voxels; a particle must have none")
    return boxes, voxel_size


def _non_finite(boxes: np.ndarray) -> np.ndarray:
    """The indices of the boxes holding a NaN or an infinity."""
    return np.flatnonzero(~np.isfinite(boxes.reshape(len(boxes), -1)).all(axis=1))


def _refuse_non_finite(boxes: np.ndarray, source: Path, what: str) -> None:
    """Refuse boxes holding NaN or infinite voxels, naming ``source`` and the rows (``what``:
    what a row is, as ``particle of picks.csv``) that do: the model would learn NaN weights."""
    bad = _non_finite(boxes)
    if bad.size:
        raise InputFileError(
            source,
            f"{bad.size} of {len(boxes)} boxes hold NaN or infinite voxels ({what} row(s) "
            f"{first_few(bad)}, counted from 0); remove them, or fill the blank regions",
        )
