"""Analyse latents: a 2D projection, clusters, and each cluster's centre snapped to a particle."""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import pandas as pd

from napari_affinity_vae.analysis.clustering import (
    cluster,
    clusters_possible,
    snap_centres,
    too_few_for_hdbscan,
)
from napari_affinity_vae.analysis.projection import layout, project
from napari_affinity_vae.operations import defaults
from napari_affinity_vae.schema import CLUSTER, CLUSTER_CENTRE, EMBEDDING

NOTES = "notes"  # attrs key: sentences the user should read (fewer clusters, a fallback)
ANALYSIS_STEPS = 2


def analyse_steps(
    latent: np.ndarray,
    projection: str = defaults.PROJECTION,
    clustering: str = defaults.CLUSTERING,
    clusters: int = defaults.CLUSTERS,
    seed: int = defaults.SEED,
) -> Generator[int, None, pd.DataFrame]:
    """Yield 1 after the projection and 2 after the clustering; return the columns
    ``embedding_x``, ``embedding_y``, ``cluster`` and ``cluster_centre`` (a bool), one row per
    latent vector, with ``attrs["notes"]``: what the user should know (clusters fewer than
    asked, UMAP replaced by PCA for few particles, HDBSCAN's noise). Rows with NaN latents (a
    tomogram that was not embedded) get no position and cluster -1."""
    latent = np.asarray(latent, dtype=np.float64)
    embedded = np.flatnonzero(np.isfinite(latent).all(axis=1))
    _, laid_out = layout(latent[embedded], projection)
    notes = [laid_out] if laid_out else []
    xy = project(latent[embedded], projection, seed)
    yield 1
    k = clusters
    if clustering == "hdbscan":
        noise = too_few_for_hdbscan(len(embedded))
        notes += [noise] if noise else []
    else:
        distinct = len(np.unique(latent[embedded], axis=0))  # picks at one place are one
        k, fewer = clusters_possible(clusters, len(embedded), distinct)
        notes += [fewer] if fewer else []
    labels = cluster(latent[embedded], clustering, k, seed)
    yield 2
    columns = pd.DataFrame(
        {EMBEDDING[0]: np.nan, EMBEDDING[1]: np.nan, CLUSTER: -1, CLUSTER_CENTRE: False},
        index=range(len(latent)),
    )
    columns.loc[embedded, list(EMBEDDING)] = xy
    columns.loc[embedded, CLUSTER] = labels
    centres = list(snap_centres(latent[embedded], labels).values())
    columns.loc[embedded[centres], CLUSTER_CENTRE] = True
    columns.attrs[NOTES] = notes
    return columns
