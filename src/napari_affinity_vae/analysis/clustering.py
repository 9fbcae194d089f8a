"""Clusters in a latent space (k-means, Gaussian mixture, HDBSCAN), and cluster centres snapped to
the nearest real particle."""

from __future__ import annotations

import numpy as np

CLUSTERINGS = ("kmeans", "gmm", "hdbscan")


def cluster(latent: np.ndarray, method: str = "kmeans", k: int = 8, seed: int = 0) -> np.ndarray:
    """A cluster label per row (HDBSCAN's noise is -1; it chooses its own number of clusters)."""
    latent = np.asarray(latent, dtype=np.float64)
    if method not in CLUSTERINGS:
        raise ValueError(f"clustering must be one of {CLUSTERINGS}, got {method!r}")
    if method != "hdbscan" and not 1 <= k <= len(latent):
        raise ValueError(f"cannot make {k} clusters of {len(latent)} particles")
    if method == "kmeans":
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(latent)
    if method == "gmm":
        from sklearn.mixture import GaussianMixture

        return GaussianMixture(n_components=k, random_state=seed).fit_predict(latent)
    from sklearn.cluster import HDBSCAN

    return HDBSCAN(min_cluster_size=max(5, len(latent) // 100)).fit_predict(latent)


def snap_centres(latent: np.ndarray, labels: np.ndarray) -> dict[int, int]:
    """For each cluster, the row of the particle nearest its mean latent vector."""
    latent = np.asarray(latent, dtype=np.float64)
    snapped = {}
    for label in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == label)
        centre = latent[rows].mean(axis=0)
        snapped[int(label)] = int(rows[np.argmin(np.linalg.norm(latent[rows] - centre, axis=1))])
    return snapped
