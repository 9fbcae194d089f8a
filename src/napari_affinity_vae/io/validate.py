"""Checks shared by every coordinate format: numeric columns, missing values, picks outside, and
the choice of one tomogram from a file holding several."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from napari_affinity_vae.errors import ParticleFileError, UnusableRowsError
from napari_affinity_vae.schema import ANGLES, AXES

OUTSIDE_QUESTION = "is it the right tomogram and binning?"


def numeric_column(path: Path, table: pd.DataFrame, column: str) -> pd.Series:
    """``table[column]`` as floats; text that is not a number (other than NaN) is an error."""
    raw = table[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():  # text other than "nan" that is not a number
        bad &= raw.astype(str).str.strip().str.lower() != "nan"
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ParticleFileError(
            path,
            f"{int(bad.sum())} non-numeric value(s) in column {column} "
            f"(first in row {row + 1}: {raw.iloc[row]!r})",
        )
    return values.astype(float)


def numeric_columns(path: Path, table: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """:func:`numeric_column` of each of ``columns``, side by side (n, len(columns))."""
    return np.column_stack([numeric_column(path, table, c) for c in columns])


def select_tomogram(
    path: Path,
    table: pd.DataFrame,
    names: pd.Series | None,
    tomo_name: str | None,
    every: bool = False,
) -> pd.DataFrame:
    """The rows of ``table`` belonging to tomogram ``tomo_name`` (with ``every``, to any);
    ``names`` holds each row's tomogram (``None`` when the file names none).

    Particles of several tomograms are never merged: without ``tomo_name``, a file naming more
    than one tomogram is an error that lists them (unless ``every``: a project's file, split by
    tomogram by the caller); a ``tomo_name`` the file lacks is one too.
    Rows naming no tomogram (blank) in a file whose other rows name one are left out, with a
    warning saying how many.
    """
    unnamed = np.zeros(len(table), dtype=bool) if names is None else _unnamed(names)
    if unnamed.all():
        names = None  # a column of blanks names nothing
    labels = None if names is None else names.astype(str).str.strip().reset_index(drop=True)
    found = named_tomograms(names) if names is not None else []
    if tomo_name is None and len(found) > 1 and not every:
        raise ParticleFileError(
            path,
            f"holds particles of {len(found)} tomograms ({_listing(found)}); choose one "
            "(--tomo-name on the command line)",
        )
    if tomo_name is not None and (labels is None or str(tomo_name) not in found):
        have = f"found {_listing(found)}" if found else "the file names no tomograms"
        raise ParticleFileError(path, f"no particles of tomogram {tomo_name!r} ({have})")
    if labels is not None and unnamed.any():
        warnings.warn(
            f"{path}: {int(unnamed.sum())} of {len(table)} rows name no tomogram; they were "
            "left out",
            stacklevel=3,
        )
    if tomo_name is None:
        return table[~unnamed].reset_index(drop=True) if labels is not None else table
    return table[(labels == str(tomo_name)).to_numpy() & ~unnamed].reset_index(drop=True)


def named_tomograms(names: pd.Series) -> list[str]:
    """The distinct tomograms a column of names holds, as text in file order (blanks: none)."""
    named = names[~_unnamed(names)].astype(str).str.strip()
    return [str(n) for n in named.drop_duplicates()]  # pandas' own pass, not one per row


def _unnamed(names: pd.Series) -> np.ndarray:
    """Which rows of a column of tomogram names are blank (missing, or spaces)."""
    return (names.isna() | (names.astype(str).str.strip() == "")).to_numpy()


def check_particles(
    path: Path,
    particles: pd.DataFrame,
    shape: tuple[int, int, int] | None,
    *,
    drop_nan: bool = False,
    drop_outside: bool = False,
) -> pd.DataFrame:
    """Refuse (or, if asked, drop with a warning) rows with NaN coordinates or outside ``shape``;
    angles that are not numbers are refused (a missing one, as a hand pick's, is NaN)."""
    particles = particles.copy(deep=False)
    for angle in (a for a in ANGLES if a in particles):
        particles[angle] = numeric_column(path, particles, angle)
    coords = particles[list(AXES)].to_numpy(dtype=float)
    nan_rows = ~np.isfinite(coords).all(axis=1)
    if nan_rows.any():
        message = (
            f"{int(nan_rows.sum())} of {len(particles)} particles have missing (NaN) coordinates"
        )
        if not drop_nan:
            raise UnusableRowsError(
                path, f"{message} (rows {_rows(nan_rows)}); skip them to import the others"
            )
        warnings.warn(f"{path}: {message}; they were dropped", stacklevel=3)
        particles, coords = particles[~nan_rows], coords[~nan_rows]
    if shape is not None:
        outside = outside_rows(coords, shape)
        if outside.any():
            message = outside_message(outside, shape)
            if not drop_outside:
                raise UnusableRowsError(
                    path, f"{message} (rows {_rows(outside)}); {OUTSIDE_QUESTION}"
                )
            warnings.warn(f"{path}: {message}; they were dropped", stacklevel=3)
            particles = particles[~outside]
    return particles.reset_index(drop=True)


def outside_rows(coords: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Which rows of ``coords`` (z, y, x voxels) lie outside a tomogram of ``shape`` (NaN: not)."""
    upper = np.asarray(shape, dtype=float) - 0.5
    return ((coords < -0.5) | (coords >= upper)).any(axis=1)


def outside_message(outside: np.ndarray, shape: tuple[int, int, int]) -> str:
    """How many of the particles (the mask ``outside``) lie outside a tomogram of ``shape``."""
    return (
        f"{int(outside.sum())} of {len(outside)} particles lie outside the tomogram "
        f"(z, y, x shape {tuple(shape)})"
    )


def _rows(mask: np.ndarray) -> str:
    """The file's particles ``mask`` marks, as a person counts them (embedding's messages count
    the table's rows from 0, and say so too)."""
    rows = np.flatnonzero(mask) + 1
    shown = ", ".join(str(r) for r in rows[:5])
    return shown + (", ..." if rows.size > 5 else "") + ", counted from 1"


def _listing(names: list) -> str:
    return ", ".join(map(str, names[:10])) + (", ..." if len(names) > 10 else "")
