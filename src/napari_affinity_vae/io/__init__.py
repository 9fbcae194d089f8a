"""File formats at the program's boundary: tomograms and particle coordinate tables."""
