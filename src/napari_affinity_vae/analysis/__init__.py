"""Analysis of latent spaces: projections, clustering, metrics (scikit-learn)."""
