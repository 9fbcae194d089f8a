"""Particle picking and subtomogram extraction (numpy, scipy)."""
