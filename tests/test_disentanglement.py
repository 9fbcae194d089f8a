"""The disentanglement measures on latents whose relation to the factors is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_affinity_vae.analysis.disentanglement import (
    factor_correlations,
    mutual_information_gap,
    normalised_mutual_information,
)

N = 2000


@pytest.fixture
def factors() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "class": rng.choice(["ribosome", "proteasome", "globular"], N),
            "R_zz": rng.uniform(-1, 1, N),
            "shift_y": rng.normal(0, 2, N),
            "shift_x": rng.normal(0, 2, N),
        }
    )


def _numeric(factors: pd.DataFrame) -> np.ndarray:
    """The factors as standardised numbers, the class as its index."""
    values = factors.assign(**{"class": pd.factorize(factors["class"])[0]}).to_numpy(float)
    return (values - values.mean(axis=0)) / values.std(axis=0)


def test_a_latent_holding_each_factor_in_its_own_dimension_scores_near_1(factors):
    rng = np.random.default_rng(1)
    numeric = _numeric(factors)
    # each factor in a dimension of its own, bent by a monotone function, plus a little noise
    latent = np.exp(numeric) + rng.normal(0, 0.01, numeric.shape)
    mig, gaps = mutual_information_gap(latent, factors)
    assert mig > 0.85
    assert set(gaps) == set(factors.columns) and min(gaps.values()) > 0.8
    table = factor_correlations(latent, factors)
    assert list(table.index) == ["latent_0", "latent_1", "latent_2", "latent_3"]
    assert list(table.idxmax(axis=1)) == list(factors.columns)  # each dimension its factor
    assert np.diag(table.to_numpy()).min() > 0.95  # eta for the class, |Spearman| for the rest
    off = table.to_numpy()[~np.eye(4, dtype=bool)]
    assert off.max() < 0.1


def test_a_latent_mixing_the_factors_scores_near_0(factors):
    numeric = _numeric(factors)
    hadamard = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2
    latent = numeric @ hadamard  # every factor in every dimension with the same weight
    mig, _ = mutual_information_gap(latent, factors)
    assert mig < 0.1
    separated, _ = mutual_information_gap(numeric, factors)
    assert separated > 0.8  # the same information, unmixed


def test_random_latents_score_near_0(factors):
    latent = np.random.default_rng(2).normal(size=(N, 8))
    mig, gaps = mutual_information_gap(latent, factors)
    assert mig < 0.05 and max(gaps.values()) < 0.05
    assert factor_correlations(latent, factors).to_numpy().max() < 0.1


def test_a_constant_dimension_or_factor_does_not_break_the_measures(factors):
    latent = np.column_stack([_numeric(factors), np.full(N, 3.0)])
    table = factor_correlations(latent, factors)
    assert np.all(table.loc["latent_4"] == 0)
    shared = normalised_mutual_information(latent, factors)
    assert np.all(shared.loc["latent_4"] == 0)
    mig, gaps = mutual_information_gap(latent, factors.assign(tomogram=7))
    assert mig > 0.8 and "tomogram" not in gaps  # a factor that never varies is left out
    one_dimension, _ = mutual_information_gap(latent[:, :1], factors[["class"]])
    assert one_dimension > 0.9  # a lone dimension's gap is to nothing
    assert np.isnan(mutual_information_gap(np.full((N, 2), 1.0), factors[[]])[0])
