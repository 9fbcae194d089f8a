"""Two-dimensional views of a latent space: PCA, UMAP or t-SNE, each seeded."""

from __future__ import annotations

import numpy as np

PROJECTIONS = ("pca", "umap", "tsne")
MIN_NEIGHBOURS = 5  # UMAP and t-SNE lay out neighbourhoods: with fewer particles, PCA does
LANDMARKS = 50_000  # above this many particles, UMAP and t-SNE lay out a sample of this many
PLACING_NEIGHBOURS = 10  # ... and place the others among their nearest sampled neighbours
ONE_POINT = "one point"  # the layout of identical latent vectors


def project(
    latent: np.ndarray, method: str = "pca", seed: int = 0, landmarks: int = LANDMARKS
) -> np.ndarray:
    """(n, 2) coordinates of the latent vectors (n, d); the same seed gives the same picture.

    Above ``landmarks`` particles, UMAP and t-SNE lay out a random sample of that many (the
    landmarks) and place every other particle at the distance-weighted mean position of its
    ``PLACING_NEIGHBOURS`` nearest landmarks in latent space: a million particles take under a
    minute instead of ten.

    Any number of particles has a layout: PCA puts one particle at the origin and two on the
    x axis, their latent distance apart. UMAP and t-SNE need neighbourhoods; for fewer than
    ``MIN_NEIGHBOURS`` particles they give the PCA layout. Identical latent vectors are all laid
    out at the origin. :func:`layout` says which, and why.
    """
    latent = np.asarray(latent, dtype=np.float64)
    method, _ = layout(latent, method)
    if method == ONE_POINT:  # t-SNE crashes on identical points
        return np.zeros((len(latent), 2))
    if method == "pca":
        return _pca(latent, seed)
    if len(latent) > landmarks:
        return _through_landmarks(latent, method, seed, landmarks)
    n = len(latent)
    if method == "umap":
        import umap

        neighbours = min(15, n - 1)
        return umap.UMAP(n_neighbors=neighbours, random_state=seed).fit_transform(latent)
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (n - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, random_state=seed).fit_transform(latent)


def layout(latent: np.ndarray, method: str) -> tuple[str, str | None]:
    """How :func:`project` lays ``latent`` out when asked for ``method``: that method, else
    PCA or ``ONE_POINT``, with a sentence saying why (None where it is the method asked for)."""
    if method not in PROJECTIONS:
        raise ValueError(f"projection must be one of {PROJECTIONS}, got {method!r}")
    n = len(latent)
    if n > 1 and np.ptp(latent, axis=0).max() == 0:
        return ONE_POINT, f"the {n} latent vectors are all the same; they are laid out at one point"
    if method != "pca" and n < MIN_NEIGHBOURS:
        name = "UMAP" if method == "umap" else "t-SNE"
        why = f"{name} needs at least {MIN_NEIGHBOURS} particles; {n} are laid out by PCA instead"
        return "pca", why if n > 1 else None  # one particle has but one layout
    return method, None


def _through_landmarks(latent: np.ndarray, method: str, seed: int, landmarks: int) -> np.ndarray:
    """A sample laid out by ``method``; the others placed among their nearest landmarks."""
    from sklearn.neighbors import NearestNeighbors

    sample = np.sort(np.random.default_rng(seed).choice(len(latent), landmarks, replace=False))
    placed = np.ones(len(latent), dtype=bool)
    placed[sample] = False
    out = np.empty((len(latent), 2))
    out[sample] = project(latent[sample], method, seed, landmarks)
    neighbours = NearestNeighbors(n_neighbors=PLACING_NEIGHBOURS, n_jobs=-1).fit(latent[sample])
    distance, index = neighbours.kneighbors(latent[placed])
    weight = 1 / np.maximum(distance, 1e-12)
    out[placed] = np.einsum("nk,nkd->nd", weight, out[sample][index]) / weight.sum(axis=1)[:, None]
    return out


def _pca(latent: np.ndarray, seed: int) -> np.ndarray:
    """The first two principal components; fewer than two particles or latent dimensions leave
    the missing components at 0."""
    n, d = latent.shape
    if min(n, d) >= 2:
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(latent)
    out = np.zeros((n, 2))
    if n > 1:  # one dimension: its centred values along x
        out[:, 0] = latent[:, 0] - latent[:, 0].mean()
    return out
