"""``avae evaluate``: a model's latent space against ground truth, beside two baselines."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from napari_affinity_vae.analysis.disentanglement import factor_correlations, mutual_information_gap
from napari_affinity_vae.analysis.metrics import (
    NEIGHBOURS,
    classification_scores,
    nearest_training_class,
    pose_score,
)
from napari_affinity_vae.analysis.pose import pose_angle_scores
from napari_affinity_vae.errors import AnalysisError
from napari_affinity_vae.io.orientation import angles_to_matrices
from napari_affinity_vae.model.checkpoint import ModelCard, check_fits
from napari_affinity_vae.model.inference import encode
from napari_affinity_vae.model.losses import Schedule
from napari_affinity_vae.model.network import AffinityVAE
from napari_affinity_vae.model.splats import pose_angles, turns_pose
from napari_affinity_vae.model.train import TrainingConfig, TrainingData, train
from napari_affinity_vae.progress import Progress


def evaluate(
    model: AffinityVAE,
    card: ModelCard,
    train_set: TrainingData,
    test_set: TrainingData,
    baselines: bool = True,
    baseline_epochs: int | None = None,
    progress: Progress | None = None,
    factors: pd.DataFrame | None = None,
    symmetries: Mapping[str, Rotation] | None = None,
) -> dict[str, dict]:
    """Scores of the model (and of PCA on raw voxels and of a beta-VAE trained with the same
    budget) on ``test_set``, fit on ``train_set``; unseen classes get their nearest class.
    With ``factors``, the generative factors of the test boxes (a row each), also how each
    latent dimension follows them (:func:`disentanglement_scores`). Pose angles are taken up
    to each class's ``symmetries`` (rotations by class name; C1 where not given).
    Boxes of another size or voxel size than the model's are refused before any work."""
    for data in (train_set, test_set):
        box, ndim = data.boxes.shape[-1], data.boxes.ndim - 1
        check_fits(card, box, data.voxel_size, card.path or "the model", ndim=ndim)
    _check_classes(train_set, test_set)
    _warn_shared(train_set, test_set)
    if factors is not None and len(factors) != len(test_set.boxes):
        raise ValueError(f"{len(factors)} rows of factors for {len(test_set.boxes)} test boxes")
    score = functools.partial(
        _latent_scores,
        train_set=train_set,
        test_set=test_set,
        factors=factors,
        symmetries=symmetries or {},
    )
    results = {"affinity-vae": score(model)}
    if baselines:
        dims = model.architecture.latent_dims
        pca = PCA(n_components=dims, random_state=0).fit(
            train_set.boxes.reshape(len(train_set.boxes), -1)
        )
        flat = lambda d: pca.transform(d.boxes.reshape(len(d.boxes), -1))  # noqa: E731
        seen = np.isin(test_set.labels, _known(test_set, train_set))
        results["pca"] = classification_scores(
            flat(train_set),
            train_set.labels,
            flat(test_set)[seen],
            _relabel(test_set, train_set)[seen],
        ) | disentanglement_scores(flat(test_set), factors)
        config = TrainingConfig.from_dict(card.training.get("config", {}))
        config = dataclasses.replace(
            config,
            epochs=baseline_epochs or config.epochs,
            gamma=Schedule("flat", high=0.0),
            tc=Schedule("flat", high=0.0),  # a plain beta-VAE, whatever the model was trained with
            pose=Schedule("flat", high=0.0),
        )
        architecture = dataclasses.replace(model.architecture, pose_dims=0, decoder="conv")
        beta_vae, _, _ = train(train_set, architecture, config, progress=progress)
        results["beta-vae"] = score(beta_vae)
    return results


def disentanglement_scores(latent: np.ndarray, factors: pd.DataFrame | None) -> dict:
    """``mig``, the mutual information gap; ``mig_by_factor``, each factor's gap; and
    ``factor_correlations``, for each latent dimension its correlation with each factor. Empty
    where the factors are not known."""
    if factors is None:
        return {}
    mig, gaps = mutual_information_gap(latent, factors)
    table = factor_correlations(latent, factors)
    return {
        "mig": mig,
        "mig_by_factor": gaps,
        "factor_correlations": table.round(4).to_dict(orient="index"),
    }


def _latent_scores(
    model: AffinityVAE,
    train_set: TrainingData,
    test_set: TrainingData,
    factors: pd.DataFrame | None,
    symmetries: Mapping[str, Rotation],
) -> dict:
    a, b = encode(model, train_set.boxes), encode(model, test_set.boxes)
    for data, encoded in ((train_set, a), (test_set, b)):
        bad = ~np.isfinite(encoded["mu"]).all(axis=1)
        if bad.any():
            raise AnalysisError(
                f"the model gives NaN or infinite latents for {int(bad.sum())} of {len(bad)} "
                f"boxes of {data.description or 'the data'}: its weights (or the boxes) hold "
                "NaN; train it again on finite boxes"
            )
    seen = np.isin(test_set.labels, _known(test_set, train_set))
    labels = _relabel(test_set, train_set)
    scores: dict = classification_scores(a["mu"], train_set.labels, b["mu"][seen], labels[seen])
    if train_set.angles is not None and test_set.angles is not None and a["pose"].shape[1]:
        scores["pose_r2"] = pose_score(
            a["pose"], train_set.angles, b["pose"][seen], test_set.angles[seen]
        )
        predicted = _predicted_rotations(model, a["pose"], train_set, b["pose"], test_set)
        names = np.asarray(test_set.classes)[test_set.labels]
        true = angles_to_matrices(test_set.angles)
        scores |= pose_angle_scores(predicted[seen], true[seen], names[seen], symmetries)
    unseen = {}
    known = _known(test_set, train_set)
    for i, name in enumerate(test_set.classes):
        if name not in train_set.classes:
            by_affinity = test_set.classes[int(known[np.argmax(test_set.affinity[i, known])])]
            unseen[name] = {
                "nearest_in_latent": nearest_training_class(
                    a["mu"], train_set.labels, train_set.classes, b["mu"][test_set.labels == i]
                ),
                "most_similar_by_affinity": by_affinity,
            }
    if unseen:
        scores["unseen_nearest"] = unseen
    scores["reconstruction_error"] = float(b["error"].mean())
    return scores | disentanglement_scores(b["mu"], factors)


def _predicted_rotations(
    model: AffinityVAE,
    train_pose: np.ndarray,
    train_set: TrainingData,
    test_pose: np.ndarray,
    test_set: TrainingData,
) -> np.ndarray:
    """The rotations (n, 3, 3) a model's pose says the test particles have: a splat model's
    own; for pose values that are not a rotation, the true rotation of the training particle
    of the same class nearest in pose."""
    if turns_pose(model.architecture):
        return angles_to_matrices(pose_angles(test_pose))
    true = angles_to_matrices(train_set.angles)
    train_names = np.asarray(train_set.classes)[train_set.labels]
    test_names = np.asarray(test_set.classes)[test_set.labels]
    predicted = np.tile(np.eye(3), (len(test_pose), 1, 1))
    for name in np.unique(test_names):
        rows, pool = test_names == name, np.flatnonzero(train_names == name)
        if len(pool):
            nearest = NearestNeighbors(n_neighbors=1).fit(train_pose[pool])
            found = nearest.kneighbors(test_pose[rows], return_distance=False)[:, 0]
            predicted[rows] = true[pool[found]]
    return predicted


def _warn_shared(train_set: TrainingData, test_set: TrainingData) -> None:
    """Warn where test boxes are training boxes too (the same voxels): their scores are not of
    unseen particles. A test set simulated with the training set's seed repeats its boxes."""
    seen = {_digest(box) for box in train_set.boxes}
    shared = sum(_digest(box) in seen for box in test_set.boxes)
    if shared:
        warnings.warn(
            f"{shared} of {len(test_set.boxes)} test boxes are training boxes too (the same "
            "voxels): their scores are not of unseen particles; simulate the test set with "
            "another --seed",
            stacklevel=3,
        )


def _digest(box: np.ndarray) -> bytes:
    """A box's fingerprint: a hash of every 61st voxel (about 4,000 of 64^3; all of them took
    1.4 ms a box)."""
    sampled = np.ascontiguousarray(box.ravel()[::61])
    return hashlib.blake2b(sampled.tobytes(), digest_size=16).digest()


def _check_classes(train_set: TrainingData, test_set: TrainingData) -> None:
    """Refuse sets the scores cannot be made of: a training set of fewer than two classes (the
    classifiers tell classes apart) or than ``NEIGHBOURS`` boxes (the kNN scores' neighbours),
    or a test set none of whose classes are in it."""
    named = lambda d: ", ".join(d.classes) or "none"  # noqa: E731
    if len(set(train_set.labels.tolist())) < 2:
        raise AnalysisError(
            f"the training set {train_set.description} has boxes of one class ({named(train_set)}"
            "): the classifiers scored need two or more"
        )
    if not len(_known(test_set, train_set)):
        raise AnalysisError(
            f"the test set's classes ({named(test_set)}) share none with the training set's "
            f"({named(train_set)}): there is nothing to classify; give a test set of some of them"
        )
    if len(train_set.boxes) < NEIGHBOURS:
        raise AnalysisError(
            f"the training set {train_set.description} is too small: the kNN scores take "
            f"each test box's {NEIGHBOURS} nearest; give at least {NEIGHBOURS} boxes"
        )


def _known(test_set: TrainingData, train_set: TrainingData) -> np.ndarray:
    return np.array([i for i, c in enumerate(test_set.classes) if c in train_set.classes])


def _relabel(test_set: TrainingData, train_set: TrainingData) -> np.ndarray:
    """Test labels in the training set's class numbering (-1 for classes it lacks)."""
    mapping = np.array(
        [train_set.classes.index(c) if c in train_set.classes else -1 for c in test_set.classes]
    )
    return mapping[test_set.labels]
