"""The particle table's columns: their names, defined once, and the rules about which are derived.

A particle set is a pandas DataFrame, one row per particle, with coordinates in voxels of its
tomogram (z, y, x). Everything else is optional and named here; file formats map their own
names (RELION's ``rlnCoordinateX``, Dynamo's columns, ...) onto these in ``io/``.

This module is neutral: it imports nothing of the package, so every layer may use it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

AXES = ("z", "y", "x")  # coordinates, voxels of the tomogram, napari's order

# where a particle comes from and what it is
TOMO_NAME = "tomo_name"  # the tomogram a particle belongs to
TOMOGRAM_MISSING = "tomogram_missing"  # True where a project's tomogram cannot be opened
CLASS_NAME = "class_name"  # a known class label (ground truth, or a picker's class)
LABEL = "label"  # a class the user named in the explorer (empty: not labelled)
TEXT_COLUMNS = (TOMO_NAME, CLASS_NAME, LABEL)  # read as text: "01" stays "01", "1" is no 1.0
TEMPLATE = "template"  # the template a template matcher found it with
SCORE = "score"  # a picker's confidence

# orientation: RELION's ZYZ Euler angles, degrees
ROT, TILT, PSI = "rot", "tilt", "psi"
ANGLES = (ROT, TILT, PSI)
MODEL_ROT, MODEL_TILT, MODEL_PSI = "model_rot", "model_tilt", "model_psi"
MODEL_ANGLES = (MODEL_ROT, MODEL_TILT, MODEL_PSI)  # the model's estimate of the pose
# a training box's particle offset from the box's centre voxel (voxels; simulated sets)
SHIFTS = ("shift_z", "shift_y", "shift_x")

# a copick pick's object, and who picked it in which session
COPICK_OBJECT, COPICK_USER, COPICK_SESSION = "copick_object", "copick_user", "copick_session"
SELECTED = "selected"  # True for the particles of an exported selection

# what a particle is or was found as, never passed on to another (a point added by hand)
RELION_CLASS = "rlnClassNumber"  # the class a RELION classification put it in
OWN_COLUMNS = (
    *(LABEL, CLASS_NAME, RELION_CLASS, TEMPLATE, SCORE, SELECTED),
    *(COPICK_OBJECT, COPICK_USER, COPICK_SESSION),
    *(*ANGLES, *MODEL_ANGLES, *SHIFTS),
)
# where a particle was imaged, passed on to a point added by hand beside even one other
OPTICS_GROUP = "rlnOpticsGroup"  # RELION's, for the pixel size and CTF of its data_optics row
MICROGRAPH_COLUMN = "rlnMicrographName"  # Warp's and pytom's name of a particle's tomogram file
SETTING_COLUMNS = (TOMO_NAME, OPTICS_GROUP, MICROGRAPH_COLUMN)

# what embedding computes: numbered columns latent_0, latent_1, ... and pose_0, ...
LATENT_PREFIX = "latent_"
POSE_PREFIX = "pose_"
RECONSTRUCTION_ERROR = "reconstruction_error"
CROSSES_EDGE = "crosses_edge"  # the particle's box reached outside the tomogram

# what analysis computes
EMBEDDING_X, EMBEDDING_Y = "embedding_x", "embedding_y"
EMBEDDING = (EMBEDDING_X, EMBEDDING_Y)  # the 2D projection of the latents
CLUSTER = "cluster"
CLUSTER_CENTRE = "cluster_centre"  # True for the particle a cluster's centre snapped to

# A particle table's attrs (and its layer's metadata): a STAR file's blocks other than the
# particles' (optics, general), as plain data, written again before the particles it read.
STAR_BLOCKS = "star_blocks"
# ... and how many times finer than the tomogram's voxels the source file's pixel coordinates
# were (the binning a user gave on reading them), to write them back in those pixels
COORDINATE_BINNING = "coordinate_binning"
# ... and, for coordinates the file gave in Angstrom (RELION 5, or RELION 4 pixels of a size its
# optics give), the voxel (z, y, x) they count from: placed by the tomogram's voxel size, they
# move with it when it is corrected
ANGSTROM_ORIGIN = "angstrom_origin"


def numbered_columns(table: pd.DataFrame, prefix: str) -> list[str]:
    """``prefix0, prefix1, ...`` columns of ``table`` (``latent_``, ``pose_``) in numeric order."""
    found = [c for c in table if str(c).startswith(prefix) and str(c)[len(prefix) :].isdigit()]
    return sorted(found, key=lambda c: int(str(c)[len(prefix) :]))


def latent_columns(table: pd.DataFrame) -> list[str]:
    """The ``latent_*`` columns of an embedded particle table, in order."""
    return numbered_columns(table, LATENT_PREFIX)


def derived_columns(table: pd.DataFrame) -> list[str]:
    """Columns computed from the boxes (latents, pose, errors, embedding, clusters): those that
    are stale once the particles or the model change."""
    prefixes = (LATENT_PREFIX, POSE_PREFIX)
    names = {RECONSTRUCTION_ERROR, CROSSES_EDGE, CLUSTER, CLUSTER_CENTRE, *EMBEDDING, *MODEL_ANGLES}
    return [c for c in table if c in names or str(c).startswith(prefixes)]


def tomogram_codes(names: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each particle's tomogram as a code into the list of tomogram names, in order of first
    appearance: counting and grouping by codes is fast at a million particles."""
    codes, unique = pd.factorize(names.astype(str))
    return codes, [str(n) for n in unique]


def rows_by_tomogram(names: pd.Series) -> dict[str, np.ndarray]:
    """The rows of each tomogram's particles, by tomogram name."""
    codes, unique = tomogram_codes(names)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(unique) + 1))
    return {name: order[bounds[i] : bounds[i + 1]] for i, name in enumerate(unique)}
