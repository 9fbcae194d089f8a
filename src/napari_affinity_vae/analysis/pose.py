"""How far a model's pose is from the true orientations: geodesic angles up to a class's
symmetry, after one best-fitting rotation per class and with the handedness chosen explicitly.

A model turns its own copy of a molecule, in a frame of its choosing, by the predicted rotation
P; the simulator turns the reference by the true rotation T. If the model's copy is the reference
turned by B, then P B = T g for some g of the molecule's symmetry group, so the error of a
particle is min over g of the angle of (P B)^-1 T g. B is fitted per class. A model that learned
the mirror image of the molecule predicts M P M (M a reflection) instead: both hands are fitted
and the better one is reported with ``mirrored``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

MIRROR = np.diag([1.0, 1.0, -1.0])
CANDIDATES = 64  # particles whose own alignment is tried as the class's B
REFINEMENTS = 3


@dataclass
class PoseErrors:
    """Each particle's angle in degrees (to the true orientation, up to symmetry) and the
    hand and alignment that gave them."""

    degrees: np.ndarray
    mirrored: bool
    alignment: Rotation


def pose_errors(
    predicted: np.ndarray, true: np.ndarray, group: Rotation, seed: int = 0
) -> PoseErrors:
    """Angles between predicted and true rotations (n, 3, 3) of one class's particles, each turning
    the molecule into the particle on (x, y, z), up to the rotations ``group`` of its symmetry,
    after the best-fitting alignment of the model's frame, in the better hand."""
    hands = [False, True]
    fits = [_fit(_hand(predicted, mirrored), true, group, seed) for mirrored in hands]
    best = int(np.argmin([np.median(degrees) for degrees, _ in fits]))
    return PoseErrors(fits[best][0], hands[best], fits[best][1])


def chance_errors(true: np.ndarray, group: Rotation, seed: int = 0) -> PoseErrors:
    """The errors of predictions that know nothing: the true rotations of other particles of
    the class, shuffled, fitted as :func:`pose_errors` fits a model's."""
    order = np.random.default_rng(seed).permutation(len(true))
    return pose_errors(true[order], true, group, seed)


def _hand(predicted: np.ndarray, mirrored: bool) -> np.ndarray:
    return MIRROR @ predicted @ MIRROR if mirrored else predicted


def _fit(
    predicted: np.ndarray, true: np.ndarray, group: Rotation, seed: int
) -> tuple[np.ndarray, Rotation]:
    """The errors after the alignment B that minimises their median, and B: the best of some
    particles' own alignments, refined by the mean of every particle's nearest equivalent."""
    # D = P^-1 T is B g for a perfect model: what is left once the prediction is undone
    residual = Rotation.from_matrix(predicted).inv() * Rotation.from_matrix(true)
    rng = np.random.default_rng(seed)
    tried = rng.choice(len(residual), min(CANDIDATES, len(residual)), replace=False)
    errors = [_errors(residual, residual[i], group)[0] for i in tried]
    alignment = residual[tried[int(np.argmin([np.median(e) for e in errors]))]]
    for _ in range(REFINEMENTS):
        degrees, nearest = _errors(residual, alignment, group)
        close = degrees <= np.median(degrees)  # the better half: outliers would drag the mean
        alignment = (residual[close] * group[nearest[close]].inv()).mean()
    return _errors(residual, alignment, group)[0], alignment


def _errors(
    residual: Rotation, alignment: Rotation, group: Rotation
) -> tuple[np.ndarray, np.ndarray]:
    """Each particle's smallest angle (degrees) of (B g)^-1 D over the group, and that g."""
    angles = np.stack([((alignment * g).inv() * residual).magnitude() for g in group])
    nearest = np.argmin(angles, axis=0)
    return np.degrees(angles[nearest, np.arange(len(residual))]), nearest


def pose_angle_scores(
    predicted: np.ndarray, true: np.ndarray, names: np.ndarray, groups: dict[str, Rotation]
) -> dict:
    """``pose_angle``: the median over particles of :func:`pose_errors`, each class fitted on
    its own with its symmetry ``groups`` (C1 where not given); ``pose_angle_chance``, the same
    of :func:`chance_errors`; and per class both medians and whether the mirror fitted better."""
    everything, chance, by_class = [], [], {}
    for name in np.unique(names):
        rows = names == name
        group = groups.get(str(name), Rotation.identity(1))
        errors = pose_errors(predicted[rows], true[rows], group)
        everything.append(errors.degrees)
        chance.append(chance_errors(true[rows], group).degrees)
        by_class[str(name)] = {
            "median": float(np.median(errors.degrees)),
            "chance": float(np.median(chance[-1])),
            "mirrored": errors.mirrored,
            "symmetry_order": len(group),
        }
    return {
        "pose_angle": float(np.median(np.concatenate(everything))),
        "pose_angle_chance": float(np.median(np.concatenate(chance))),
        "pose_angle_by_class": by_class,
    }
