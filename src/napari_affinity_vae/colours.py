"""Colours for particles, shared by the viewer's Points layers and the latent scatter so that a
cluster has the same colour in both."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
import pandas as pd
from vispy.color import Color, get_colormap

CATEGORY_COLOURS = (  # matplotlib's tab10, distinct on a grey tomogram
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#ffd21f", "#bcbd22", "#17becf",
)  # fmt: skip
LIGHTER_COLOURS = (  # tab20's lighter shades, its grey left out (the tomogram's, the noise's)
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
)  # fmt: skip
GOLDEN = 0.618033988749895  # hue steps of the golden ratio stay apart however many are taken
NOISE_COLOUR = "#808080"  # HDBSCAN's unclustered particles (label -1)
NOISE_LABEL = "unclustered"
DEFAULT_COLOUR = "#ffd21f"
CONTINUOUS_COLORMAP = "viridis"


def is_categorical(values: pd.Series) -> bool:
    """Labels (text, booleans, or integers with few distinct values) rather than measurements."""
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return True
    return pd.api.types.is_integer_dtype(values) and values.nunique() <= len(CATEGORY_COLOURS) * 4


def categories(values: pd.Series) -> list:
    """The distinct values in a stable (sorted) order; their colours follow this order, after
    any known ones (:func:`colours_for`)."""
    return sorted(pd.unique(values.dropna()), key=lambda v: (isinstance(v, str), v))


def _is_noise(value: object) -> bool:
    return isinstance(value, int | np.integer) and value < 0


def is_missing(values: pd.Series) -> np.ndarray:
    """Where a category column has no category: missing values, and noise (a negative integer,
    as HDBSCAN's -1, also as a category); a text "-1" is a label like any other."""
    noise = [v for v in pd.unique(values.dropna()) if _is_noise(v)]
    return values.isna().to_numpy() | values.isin(noise).to_numpy()


def has_missing_entry(legend: list[tuple[str, str]]) -> bool:
    """Whether a category legend of :func:`colours_for` ends with the entry of the particles
    without a category (the only one in ``NOISE_COLOUR``, which the palette never uses)."""
    return bool(legend) and legend[-1][1] == NOISE_COLOUR


def category_colours(n: int) -> list[str]:
    """``n`` distinct colours: tab10's, tab20's lighter shades, then hues a golden ratio apart
    in two brightnesses, so that no two categories share one."""
    named = [*CATEGORY_COLOURS, *LIGHTER_COLOURS][:n]
    more = range(n - len(named))
    hues = [colorsys.hsv_to_rgb((i * GOLDEN) % 1, 0.7, 0.95 - 0.25 * (i % 2)) for i in more]
    return named + [str(Color(rgb).hex) for rgb in hues]


def colours_for(
    values: pd.Series, missing: str = NOISE_LABEL, known: Sequence = ()
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """(n, 4) RGBA colours for a column, and its legend as (label, hex colour) pairs: one per
    category (``missing`` for noise and missing values), or the low and high ends of the colour
    map for a measurement (and ``missing`` for particles without a value). Categories in
    ``known`` (the classes in the order the user named them) keep their colours, and their
    place in the legend, whichever others come and go; the others follow, in sorted order."""
    if is_categorical(values):
        found = categories(values)
        order = [v for v in found if not _is_noise(v)]  # noise takes no colour of the palette
        ranks = {v: i for i, v in enumerate(dict.fromkeys([*known, *order]))}  # colour slots
        order.sort(key=ranks.__getitem__)
        every = category_colours(len(ranks))
        palette = [every[ranks[v]] for v in order]
        legend = [(str(v), c) for v, c in zip(order, palette, strict=True)]
        if len(order) < len(found) or values.isna().any():
            legend.append((missing, NOISE_COLOUR))
        table = np.array([Color(c).rgba for c in [*palette, NOISE_COLOUR]], dtype=np.float32)
        codes = pd.Categorical(values, categories=order).codes  # -1: noise or missing
        return table[codes], legend
    numbers = values.to_numpy(dtype=float)
    finite = numbers[np.isfinite(numbers)]
    low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    scaled = np.clip((numbers - low) / ((high - low) or 1.0), 0, 1)
    colormap = get_colormap(CONTINUOUS_COLORMAP)
    rgba = colormap.map(np.nan_to_num(scaled)).astype(np.float32)
    ends = colormap.map(np.array([0.0, 1.0]))
    legend = [(f"{low:.3g}", str(Color(ends[0]).hex)), (f"{high:.3g}", str(Color(ends[1]).hex))]
    unknown = ~np.isfinite(numbers)  # no value: not the lowest's colour
    if unknown.any():
        rgba[unknown] = Color(NOISE_COLOUR).rgba
        legend.append((missing, NOISE_COLOUR))
    return rgba, legend
