"""Stacks of subtomograms with their table: ``subtomograms.mrcs`` (a volume stack) and
``subtomograms.csv`` (one row per box, in the stack's order), as ``avae simulate --subtomograms``
writes training sets and ``avae train`` reads them."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd

from napari_affinity_vae.errors import InputFileError
from napari_affinity_vae.io.atomic import atomic_path
from napari_affinity_vae.io.tomogram import write_tomogram
from napari_affinity_vae.schema import CLASS_NAME


def write_subtomograms(
    folder: str | Path, boxes: np.ndarray, table: pd.DataFrame, voxel_size: float
) -> tuple[Path, Path]:
    """``subtomograms.mrcs`` (a volume stack) and ``subtomograms.csv`` (its table, row by row)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stack = write_tomogram(folder / "subtomograms.mrcs", boxes, voxel_size)
    with atomic_path(folder / "subtomograms.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    return stack, folder / "subtomograms.csv"


def read_subtomograms(folder: str | Path) -> tuple[np.ndarray, pd.DataFrame]:
    """The boxes and table written by :func:`write_subtomograms`."""
    folder = Path(folder)
    stack = folder / "subtomograms.mrcs"
    try:
        with mrcfile.open(stack, permissive=False) as mrc:
            boxes = np.array(mrc.data, dtype=np.float32)
            voxel_size = float(mrc.voxel_size.x)
    except FileNotFoundError:
        problem = "not a subtomogram training set (no subtomograms.mrcs)"
        raise InputFileError(folder, problem) from None
    except (OSError, ValueError, ArithmeticError, EOFError) as err:
        # ArithmeticError: mrcfile divides by a header's zero sizes (a stack of 0-voxel boxes)
        raise InputFileError(stack, f"not a readable stack of boxes ({err})") from None
    try:  # class names as text: "01" stays "01"
        table = pd.read_csv(folder / "subtomograms.csv", dtype={CLASS_NAME: str})
    except (OSError, ValueError) as err:
        raise InputFileError(folder, f"not a subtomogram training set ({err})") from None
    if boxes.ndim != 4 or len(boxes) != len(table) or not boxes.size:
        raise InputFileError(folder, f"{len(table)} table rows for boxes of shape {boxes.shape}")
    _check_classes(folder / "subtomograms.csv", table)
    table.attrs["voxel_size"] = voxel_size
    return boxes, table


def _check_classes(path: Path, table: pd.DataFrame) -> None:
    """Refuse a table without a class for every box."""
    if CLASS_NAME not in table:
        raise InputFileError(path, f"no {CLASS_NAME} column: each box's class is needed")
    blank = table[CLASS_NAME].isna() | (table[CLASS_NAME].str.strip() == "")
    if blank.any():
        first = int(np.flatnonzero(blank.to_numpy())[0]) + 2  # the file's line: header first
        raise InputFileError(
            path,
            f"{int(blank.sum())} of {len(table)} rows name no class ({CLASS_NAME} blank, the "
            f"first on line {first}): name each box's class, or remove its row and box",
        )
