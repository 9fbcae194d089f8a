"""Two-dimensional views of a latent space: PCA, UMAP or t-SNE, each seeded."""

from __future__ import annotations

import numpy as np

PROJECTIONS = ("pca", "umap", "tsne")


def project(latent: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(n, 2) coordinates of the latent vectors (n, d); the same seed gives the same picture."""
    latent = np.asarray(latent, dtype=np.float64)
    if method not in PROJECTIONS:
        raise ValueError(f"projection must be one of {PROJECTIONS}, got {method!r}")
    if len(latent) < 3:
        return np.zeros((len(latent), 2)) if latent.shape[1] < 2 else latent[:, :2].copy()
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(latent)
    if method == "umap":
        import umap

        neighbours = min(15, len(latent) - 1)
        return umap.UMAP(n_neighbors=neighbours, random_state=seed).fit_transform(latent)
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (len(latent) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, random_state=seed).fit_transform(latent)
