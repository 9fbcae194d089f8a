"""How far each latent dimension holds one generative factor alone: the mutual information gap
(MIG, Chen et al. 2018) and each dimension's correlation with each factor.

Factors are the columns of a table with one row per particle: numeric columns are continuous,
others categorical (a class). Mutual information (nats) is that of binned values: each latent
dimension and each continuous factor in ``BINS`` equal-frequency bins (tied values share a bin,
so a constant dimension is one bin and shares nothing), categories as they are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import entropy, rankdata
from sklearn.metrics import mutual_info_score

from napari_affinity_vae.schema import LATENT_PREFIX

BINS = 20


def normalised_mutual_information(
    latent: np.ndarray, factors: pd.DataFrame, bins: int = BINS
) -> pd.DataFrame:
    """Mutual information of each latent dimension (rows) with each factor (columns), divided by
    the factor's entropy: 1 where the dimension determines the factor. A factor with a single
    value (no entropy) gets NaN."""
    latent_codes = [_codes(column, bins) for column in np.asarray(latent, dtype=float).T]
    table = {}
    for name in factors:
        factor = _factor_codes(factors[name], bins)
        h = entropy(np.bincount(factor))
        table[name] = [mutual_info_score(factor, z) / h if h > 0 else np.nan for z in latent_codes]
    return pd.DataFrame(table, index=_dimension_names(len(latent_codes)))


def mutual_information_gap(
    latent: np.ndarray, factors: pd.DataFrame, bins: int = BINS
) -> tuple[float, dict[str, float]]:
    """MIG: the mean over factors of the gap between the two latent dimensions that share most
    with the factor (normalised mutual information, the second 0 for a one-dimensional latent);
    and each factor's gap. Near 1 when each factor lives in a dimension of its own, near 0 when
    factors are spread over dimensions or absent. Factors with a single value are left out."""
    shared = normalised_mutual_information(latent, factors, bins).dropna(axis=1, how="all")
    ordered = np.sort(shared.to_numpy(), axis=0)[::-1]
    second = ordered[1] if len(ordered) > 1 else np.zeros(ordered.shape[1])
    gaps = dict(zip(shared.columns, (ordered[0] - second).tolist(), strict=True))
    return (float(np.mean(list(gaps.values()))) if gaps else float("nan")), gaps


def factor_correlations(latent: np.ndarray, factors: pd.DataFrame) -> pd.DataFrame:
    """Each latent dimension (rows) against each factor (columns): |Spearman correlation| with a
    continuous factor, the correlation ratio (eta, the fraction of the dimension's spread that the
    categories explain, square-rooted) with a categorical one. A constant dimension scores 0."""
    latent = np.asarray(latent, dtype=float)
    ranked = _standardise(rankdata(latent, axis=0))
    table = {}
    for name in factors:
        values = factors[name]
        if _is_continuous(values):
            factor = _standardise(rankdata(values.to_numpy(dtype=float))[:, None])
            table[name] = np.abs(ranked.T @ factor[:, 0]) / len(latent)
        else:
            table[name] = _correlation_ratio(latent, pd.factorize(values)[0])
    return pd.DataFrame(table, index=_dimension_names(latent.shape[1]))


def _correlation_ratio(latent: np.ndarray, groups: np.ndarray) -> np.ndarray:
    centred = latent - latent.mean(axis=0)
    total = np.sum(centred**2, axis=0)
    counts = np.bincount(groups)
    means = np.stack([np.bincount(groups, weights=c) for c in centred.T], axis=1) / counts[:, None]
    between = counts @ means**2
    return np.sqrt(np.divide(between, total, out=np.zeros_like(total), where=total > 0))


def _standardise(columns: np.ndarray) -> np.ndarray:
    """Columns shifted to mean 0 and scaled to standard deviation 1; constant columns all 0."""
    centred = columns - columns.mean(axis=0)
    spread = centred.std(axis=0)
    return np.divide(centred, spread, out=np.zeros_like(centred), where=spread > 0)


def _factor_codes(values: pd.Series, bins: int) -> np.ndarray:
    if _is_continuous(values):
        return _codes(values.to_numpy(dtype=float), bins)
    return pd.factorize(values)[0]


def _codes(values: np.ndarray, bins: int) -> np.ndarray:
    """Equal-frequency bin of each value."""
    edges = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, values, side="right")


def _is_continuous(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _dimension_names(n: int) -> list[str]:
    return [f"{LATENT_PREFIX}{i}" for i in range(n)]
