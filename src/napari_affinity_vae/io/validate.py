"""Checks shared by every coordinate format: numeric columns, missing values, picks outside."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from napari_affinity_vae.errors import ParticleFileError
from napari_affinity_vae.io.frame import AXES


def numeric_column(path: Path, table: pd.DataFrame, column: str) -> pd.Series:
    """``table[column]`` as floats; text that is not a number (other than NaN) is an error."""
    raw = table[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna() & (raw.astype(str).str.strip().str.lower() != "nan")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ParticleFileError(
            path,
            f"{int(bad.sum())} non-numeric value(s) in column {column} "
            f"(first in row {row + 1}: {raw.iloc[row]!r})",
        )
    return values.astype(float)


def check_particles(
    path: Path,
    particles: pd.DataFrame,
    shape: tuple[int, int, int] | None,
    *,
    drop_nan: bool = False,
    drop_outside: bool = False,
) -> pd.DataFrame:
    """Refuse (or, if asked, drop with a warning) rows with NaN coordinates or outside ``shape``."""
    coords = particles[list(AXES)].to_numpy(dtype=float)
    nan_rows = ~np.isfinite(coords).all(axis=1)
    if nan_rows.any():
        message = (
            f"{int(nan_rows.sum())} of {len(particles)} particles have missing (NaN) coordinates"
        )
        if not drop_nan:
            raise ParticleFileError(
                path, f"{message} (rows {_rows(nan_rows)}); skip them to import the others"
            )
        warnings.warn(f"{path}: {message}; they were dropped", stacklevel=3)
        particles, coords = particles[~nan_rows], coords[~nan_rows]
    if shape is not None:
        upper = np.asarray(shape, dtype=float) - 0.5
        outside = ((coords < -0.5) | (coords >= upper)).any(axis=1)
        if outside.any():
            message = (
                f"{int(outside.sum())} of {len(particles)} particles lie outside the tomogram "
                f"(z, y, x shape {tuple(shape)})"
            )
            if not drop_outside:
                raise ParticleFileError(
                    path,
                    f"{message} (rows {_rows(outside)}); is it the right tomogram and binning?",
                )
            warnings.warn(f"{path}: {message}; they were dropped", stacklevel=3)
            particles = particles[~outside]
    return particles.reset_index(drop=True)


def _rows(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask) + 1
    shown = ", ".join(str(r) for r in rows[:5])
    return shown + (", ..." if rows.size > 5 else "")
