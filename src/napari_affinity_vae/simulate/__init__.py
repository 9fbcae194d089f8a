"""Synthetic cryo-ET with ground truth: molecules, affinity matrices, tilt series and tomograms."""
