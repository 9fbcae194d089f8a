"""Explain a particle table's columns by its latents: which columns a formula can be fitted to,
and the fit of one over the selection or over all particles."""

from __future__ import annotations

import numpy as np
import pandas as pd

from napari_affinity_vae.analysis.explain import ColumnFit, fit_column
from napari_affinity_vae.errors import AnalysisError
from napari_affinity_vae.io.star import INTEGER_COLUMNS
from napari_affinity_vae.schema import (
    ANGLES,
    AXES,
    CLUSTER,
    EMBEDDING,
    LATENT_PREFIX,
    MODEL_ANGLES,
    POSE_PREFIX,
    latent_columns,
)

# not quantities a formula of the latents explains: coordinates, the latents' own projection, a
# cluster's label, angles, which wrap around (-180 is 180) as no polynomial does, and numbers
# that name things (RELION's optics group, class, subset; a Dynamo tag)
NOT_FITTED = {*AXES, *EMBEDDING, CLUSTER, *ANGLES, *MODEL_ANGLES, *INTEGER_COLUMNS, "tag"}


def fittable_columns(particles: pd.DataFrame) -> list[str]:
    """The numeric (not yes/no) columns of ``particles`` with a value that a formula of the
    latents can be fitted to, in table order: a picker's score, the reconstruction error,
    imported numbers."""
    return [
        str(c)
        for c, dtype in particles.dtypes.items()
        if _numeric(dtype)
        and c not in NOT_FITTED
        and not str(c).startswith((LATENT_PREFIX, POSE_PREFIX))
        and particles[c].notna().any()
    ]


def _numeric(dtype: object) -> bool:
    """Whether a column of ``dtype`` holds numbers (nullable integers too), not yes/no."""
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def fit_particle_column(
    particles: pd.DataFrame, column: str, rows: np.ndarray | None = None, seed: int = 0
) -> ColumnFit:
    """Fit ``column`` as a short polynomial of the latents over ``rows`` (the selection) or,
    when ``rows`` is None or empty, over all particles (:func:`analysis.explain.fit_column`)."""
    latents = latent_columns(particles)
    if not latents:
        raise AnalysisError("The particles have no latents: run the embedding first")
    if column not in particles:
        raise AnalysisError(f"The particles have no column {column}")
    who = "particles"
    if rows is not None and len(rows):
        particles, who = particles.iloc[rows], "selected particles"
    values = particles[column]
    if _numeric(values.dtype):  # pandas' nullable integers become floats, NaN for missing
        values = values.to_numpy(dtype=float, na_value=np.nan)
    return fit_column(particles[latents].to_numpy(), np.asarray(values), column, who, seed)
