"""Sparse explanations of a selection: the few latent dimensions that separate it from the rest,
found by L1-regularised logistic regression on standardised latents."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_affinity_vae.errors import AnalysisError

MIN_SHARE = 0.05  # weights under this share of the strongest one are dropped as noise


@dataclass(frozen=True)
class Explanation:
    """One latent dimension: its index, its standardised weight (positive: the selection sits
    higher on it), and the selection's mean on it against the other particles'."""

    dimension: int
    weight: float
    selected_mean: float
    others_mean: float


def explain_selection(
    latent: np.ndarray, rows: np.ndarray, max_dimensions: int = 3
) -> list[Explanation]:
    """At most ``max_dimensions`` latent dimensions separating ``rows`` from the other particles,
    strongest first: the sparsest L1 logistic fit on the regularisation path that keeps that
    many dimensions or fewer, without weights under ``MIN_SHARE`` of the strongest.

    A selection of all particles or of none explains nothing, and neither does one particle
    against one other (standardised, they differ equally on every dimension): an
    :class:`AnalysisError` says so."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import l1_min_c

    latent = np.asarray(latent, dtype=np.float64)
    selected = np.zeros(len(latent), dtype=bool)
    selected[np.asarray(rows, dtype=np.int64)] = True
    embedded = np.isfinite(latent).all(axis=1)  # particles of a tomogram not embedded: left out
    latent, selected = latent[embedded], selected[embedded]
    if selected.all() or not selected.any():
        n = len(latent)
        which = "none" if n == 0 else f"all {n}" if selected.all() else f"none of the {n}"
        verb = "is" if n == 1 and selected.all() else "are"
        raise AnalysisError(
            f"Explain needs some particles selected and some not: {which} {verb} selected"
        )
    if len(latent) < 3:
        raise AnalysisError(
            "Explain needs at least 3 particles: standardised, 2 particles differ equally on "
            "every latent dimension on which they differ at all"
        )
    std = latent.std(axis=0)
    scaled = (latent - latent.mean(axis=0)) / np.where(std > 0, std, 1)
    c_min = l1_min_c(scaled, selected, loss="log")
    best = np.zeros(latent.shape[1])
    for c in c_min * np.logspace(0.05, 3, 16):
        fit = LogisticRegression(l1_ratio=1.0, solver="liblinear", C=c, class_weight="balanced")
        coef = fit.fit(scaled, selected).coef_[0]
        if np.count_nonzero(coef) > max_dimensions:
            break
        best = coef
    strong = np.abs(best) >= MIN_SHARE * np.abs(best).max(initial=0.0)
    order = [int(d) for d in np.argsort(-np.abs(best)) if best[d] != 0 and strong[d]]
    return [
        Explanation(
            d, float(best[d]), float(latent[selected, d].mean()), float(latent[~selected, d].mean())
        )
        for d in order
    ]
