"""Explore cryo-ET tomograms through the latent space of an affinity-VAE, inside napari."""

__version__ = "0.1.0"
