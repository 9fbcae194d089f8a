"""How well a latent space separates classes and captures pose, measured on held-out particles."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, r2_score, silhouette_score
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

NEIGHBOURS = 5


def classification_scores(
    train_latent: np.ndarray,
    train_labels: np.ndarray,
    test_latent: np.ndarray,
    test_labels: np.ndarray,
) -> dict[str, float]:
    """Macro-F1 of a kNN and of a logistic-regression classifier fit on the training latents and
    scored on the held-out ones, and the silhouette of the held-out classes."""
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    logistic.fit(train_latent, train_labels)
    predicted = knn_predictions(train_latent, train_labels, test_latent)
    scores = {
        "knn_macro_f1": f1_score(test_labels, predicted, average="macro"),
        "logistic_macro_f1": f1_score(test_labels, logistic.predict(test_latent), average="macro"),
    }
    if 1 < len(np.unique(test_labels)) < len(test_labels):  # silhouette's own bounds
        scores["silhouette"] = silhouette_score(test_latent, test_labels)
    return {k: float(v) for k, v in scores.items()}


def knn_predictions(
    train_latent: np.ndarray, train_labels: np.ndarray, test_latent: np.ndarray
) -> np.ndarray:
    """The labels a 5-nearest-neighbour classifier (on standardised latents) fit on the training
    latents gives the test latents."""
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(NEIGHBOURS))
    return knn.fit(train_latent, train_labels).predict(test_latent)


def pose_score(
    train_pose: np.ndarray, train_angles: np.ndarray, test_pose: np.ndarray, test_angles: np.ndarray
) -> float:
    """R^2 of the held-out particles' rotation matrices predicted (kNN) from the pose values: 1
    when pose determines orientation, 0 or less when it says nothing about it."""
    if train_pose.shape[1] == 0:
        return 0.0
    to_matrix = lambda a: Rotation.from_euler("ZYZ", a, degrees=True).as_matrix().reshape(len(a), 9)  # noqa: E731
    model = KNeighborsRegressor(NEIGHBOURS).fit(train_pose, to_matrix(train_angles))
    return float(r2_score(to_matrix(test_angles), model.predict(test_pose)))


def nearest_training_class(
    latent: np.ndarray, labels: np.ndarray, classes: list[str], unseen: np.ndarray
) -> str:
    """The training class whose mean direction is closest (cosine) to that of ``unseen``."""
    unit = lambda v: v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)  # noqa: E731
    centres = np.stack([unit(latent[labels == i]).mean(axis=0) for i in range(len(classes))])
    return classes[int(np.argmax(unit(centres) @ unit(unit(unseen).mean(axis=0))))]
