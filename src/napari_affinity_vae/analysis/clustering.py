"""Clusters in a latent space (k-means, Gaussian mixture, HDBSCAN), and cluster centres snapped to
the nearest real particle."""

from __future__ import annotations

import numpy as np

from napari_affinity_vae.errors import AnalysisError
from napari_affinity_vae.text import count

CLUSTERINGS = ("kmeans", "gmm", "hdbscan")
HDBSCAN_MIN_CLUSTER = 5  # HDBSCAN's smallest cluster, and so the fewest particles it can group


def clusters_possible(k: int, n: int, distinct: int | None = None) -> tuple[int, str | None]:
    """The number of clusters to make when ``k`` are asked of ``n`` particles, ``distinct`` of
    them with distinct latents (picks at one place: all, if not given), and, when that is fewer
    than asked, a sentence saying so (``"asked for 9 clusters of 2 particles; made 2"``) for
    the user to see. Asking for fewer than one cluster is an :class:`AnalysisError`."""
    if k < 1:
        raise AnalysisError(f"asked for {k} clusters; ask for at least 1")
    distinct = n if distinct is None else distinct
    if k <= distinct:
        return k, None
    alike = f", {distinct} of them distinct" if distinct < n else ""
    return distinct, f"asked for {k} clusters of {count(n, 'particle')}{alike}; made {distinct}"


def too_few_for_hdbscan(n: int) -> str | None:
    """Why HDBSCAN leaves ``n`` particles all noise, None where it can find a cluster (or
    there is none to find)."""
    if n == 0 or n >= HDBSCAN_MIN_CLUSTER:
        return None
    return (
        f"HDBSCAN needs at least {HDBSCAN_MIN_CLUSTER} particles to make a cluster; "
        f"{count(n, 'particle')} left as noise (-1)"
    )


def cluster(latent: np.ndarray, method: str = "kmeans", k: int = 8, seed: int = 0) -> np.ndarray:
    """A cluster label per row (HDBSCAN's noise is -1; it chooses its own number of clusters).

    ``k`` must lie between 1 and the number of particles (:func:`clusters_possible` says what to
    ask for); no particles give no labels. A single particle is cluster 0 by every method.
    HDBSCAN cannot find a cluster among fewer than ``HDBSCAN_MIN_CLUSTER`` particles, as it
    leaves groups smaller than that as noise: such a set is all noise (-1), as HDBSCAN itself
    labels that many scattered particles (:func:`too_few_for_hdbscan` says so).
    """
    latent = np.asarray(latent, dtype=np.float64)
    if method not in CLUSTERINGS:
        raise ValueError(f"clustering must be one of {CLUSTERINGS}, got {method!r}")
    n = len(latent)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if method != "hdbscan" and not 1 <= k <= n:
        raise AnalysisError(f"cannot make {k} clusters of {count(n, 'particle')}")
    if method == "hdbscan":
        if too_few_for_hdbscan(n):
            return np.full(n, -1, dtype=np.int64)
        from sklearn.cluster import HDBSCAN

        size = max(HDBSCAN_MIN_CLUSTER, n // 100)
        return HDBSCAN(min_cluster_size=size, copy=True).fit_predict(latent)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    if method == "kmeans":
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(latent)
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(n_components=k, random_state=seed).fit_predict(latent)


def snap_centres(latent: np.ndarray, labels: np.ndarray) -> dict[int, int]:
    """For each cluster, the row of the particle nearest its mean latent vector."""
    latent = np.asarray(latent, dtype=np.float64)
    snapped = {}
    for label in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == label)
        centre = latent[rows].mean(axis=0)
        snapped[int(label)] = int(rows[np.argmin(np.linalg.norm(latent[rows] - centre, axis=1))])
    return snapped
