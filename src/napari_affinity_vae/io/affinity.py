"""Affinity matrices as CSV files: the reference affinity-VAE's layout (a header row of class
names, then the square matrix), with or without a first column repeating the names."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from napari_affinity_vae.errors import InputFileError
from napari_affinity_vae.io.atomic import atomic_path

ASYMMETRY_TOLERANCE = 1e-4  # larger differences between A and A.T are reported
DIAGONAL_TOLERANCE = 1e-3  # a diagonal this far from 1 is refused (written to 6 decimals)


def save_affinity(matrix: pd.DataFrame, path: str | Path) -> Path:
    """Write the reference implementation's layout: class names as header, then the matrix."""
    path = Path(path)
    with atomic_path(path) as tmp:
        matrix.to_csv(tmp, index=False, float_format="%.6f")
    return path


def load_affinity(path: str | Path) -> pd.DataFrame:
    """Read an affinity CSV: a header row of class names, then the square matrix, with or without
    a first column repeating the names (the reference affinity-VAE writes none; pandas one).

    An asymmetric matrix (the reference tool's may differ from its transpose by 0.2) is used as
    ``(A + A.T) / 2``, with a warning saying how asymmetric it was. A matrix that is not square,
    whose header and first column name different classes, repeats a class, holds non-numeric or
    missing values, values outside [-1, 1] or other than 1 on its diagonal is refused with an
    :class:`InputFileError`.
    """
    path = Path(path)
    names, rows, values = _read_affinity_csv(path)
    if rows is not None:
        if sorted(rows) != sorted(names):
            raise InputFileError(
                path,
                f"the class names of the header ({', '.join(names)}) and of the first column "
                f"({', '.join(rows)}) disagree",
            )
        values = values[[rows.index(name) for name in names]]  # rows in the header's order
    if np.abs(values).max(initial=0.0) > 1 + 1e-6:
        i, j = np.unravel_index(np.argmax(np.abs(values)), values.shape)
        raise InputFileError(
            path,
            f"affinities must lie in [-1, 1]; found {values[i, j]:g} "
            f"({names[i]} against {names[j]})",
        )
    unlike_itself = np.flatnonzero(np.abs(np.diag(values) - 1) > DIAGONAL_TOLERANCE)
    if unlike_itself.size:
        i = int(unlike_itself[0])
        raise InputFileError(
            path,
            f"a class's affinity with itself must be 1; found {values[i, i]:g} for {names[i]}"
            f"{f' and {unlike_itself.size - 1} more' if unlike_itself.size > 1 else ''} (a "
            "distance matrix, 0 on its diagonal, is no affinity)",
        )
    asymmetry = np.abs(values - values.T)
    if asymmetry.max(initial=0.0) > ASYMMETRY_TOLERANCE:
        i, j = np.unravel_index(np.argmax(asymmetry), asymmetry.shape)
        warnings.warn(
            f"{path}: the affinity matrix is not symmetric (largest |A - A.T| is "
            f"{asymmetry[i, j]:.3g}, {names[i]} against {names[j]}); using (A + A.T) / 2",
            stacklevel=2,
        )
    return pd.DataFrame((values + values.T) / 2, index=names, columns=names)


def _read_affinity_csv(path: Path) -> tuple[list[str], list[str] | None, np.ndarray]:
    """Class names of the header, of the first column (None if there is none), and the values;
    separated by commas, or by semicolons with decimal commas (as Excel writes CSV where the
    comma is the decimal mark)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:  # Excel's byte-order mark
            text = file.read()
        first = next((line for line in text.splitlines() if line.strip()), "")
        european = ";" in first and "," not in first  # Excel's CSV where "," is the decimal
        rows = csv.reader(text.splitlines(), delimiter=";" if european else ",")
        lines = [row for row in rows if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputFileError(path, f"not a readable affinity CSV ({err})") from None
    if european:
        lines = [lines[0], *([cell.replace(",", ".") for cell in row] for row in lines[1:])]
    if len(lines) < 2:
        raise InputFileError(path, "not an affinity CSV: a header of class names, then a matrix")
    header, body = [c.strip() for c in lines[0]], [[c.strip() for c in r] for r in lines[1:]]
    n, widths = len(body), {len(row) for row in body}
    first_column = [row[0] for row in body]
    indexed = widths == {n + 1} and (
        len(header) == n or header[0] == "" or not all(map(_is_number, first_column))
    )
    if indexed:
        names, rows, cells = header[-n:], first_column, [row[1:] for row in body]
    elif widths == {n} and len(header) == n:
        names, rows, cells = header, None, body
    else:
        raise InputFileError(
            path,
            f"the matrix is not square: {n} row(s) of {', '.join(map(str, sorted(widths)))} "
            f"value(s) under a header of {len(header)} class name(s)",
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated or "" in names:
        raise InputFileError(
            path, f"class names must be distinct and not empty (repeated: {', '.join(repeated)})"
        )
    values = np.full((n, n), np.nan)
    row_names = names if rows is None else rows
    for i, row in enumerate(cells):
        for j, cell in enumerate(row):
            values[i, j] = float(cell) if _is_number(cell) else np.nan
            if not np.isfinite(values[i, j]):
                raise InputFileError(
                    path,
                    f"non-numeric or missing value {cell!r} ({row_names[i]} against "
                    f"{names[j]}); affinities are numbers in [-1, 1]",
                )
    return names, rows, values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
