"""The one set of defaults the command line and the dock widgets share."""

from __future__ import annotations

PROJECTION = "umap"  # the 2D view of the latents: "pca" (instant), "umap" or "tsne"
CLUSTERING = "kmeans"  # "kmeans", "gmm" or "hdbscan" (which chooses its own number)
CLUSTERS = 10  # the sample's nine classes and its gold beads; allow one or two for debris
SEED = 0
DIAMETERS = (100.0, 300.0)  # Angstrom: the picker's smallest and largest particle
