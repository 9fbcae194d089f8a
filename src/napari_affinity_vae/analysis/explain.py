"""Sparse explanations in the latent space, after Soelistyo & Lowe (2024): the few latent
dimensions that separate a selection from the other particles (a logistic model of standardised
latents, their squares and products, with its equation and its cross-validated balanced accuracy
against a model of every dimension), and a short polynomial of the
latents fitted to any numeric column of the particle table (a picker's score, the reconstruction
error) with its cross-validated R^2. Cross-validation repeats the choice of dimensions or terms
in every fold, so that a choice fitted to noise is not scored on the particles it was made on.

In every equation ``z3`` is latent dimension 3 standardised over the particles fitted:
``z3 = (latent 3 - mean) / SD``, the mean and SD given beside the equation."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from napari_affinity_vae.errors import AnalysisError

FOLDS = 5  # cross-validation folds (fewer when a class has fewer particles)
CLASS_SAMPLE = 2_000  # above this many particles of a class, a seeded sample of it is fitted
FIT_SAMPLE = 10_000  # above this many particles, a seeded sample of them is fitted to a column
MIN_ROWS = 10  # a column is fitted to at least this many particles
MAX_TERMS = 3  # terms of a column's polynomial, the constant aside
MIN_GAIN = 0.01  # what a further term must add: to a fit's R^2, to an explanation's accuracy
ALPHA = 0.05  # a dimension joins an explanation if its likelihood-ratio test passes this level
SWAPS = 10  # at most this many swaps of an explanation's dimensions for better ones
MIN_SIDE = 4  # particles on each side for an explanation's accuracy to be cross-validated
DIGITS = 2  # significant digits of an equation's coefficients (its constant: one more)
MINUS, TIMES, SQUARED = "\N{MINUS SIGN}", "\N{MIDDLE DOT}", "\N{SUPERSCRIPT TWO}"
SIGMA, APPROX = "\N{GREEK SMALL LETTER SIGMA}", "\N{ALMOST EQUAL TO}"


@dataclass(frozen=True)
class Term:
    """A coefficient times a product of standardised latent dimensions: ``(3,)`` is ``z3``,
    ``(3, 3)`` is ``z3²`` and ``(1, 4)`` is ``z1·z4``."""

    dimensions: tuple[int, ...]
    coefficient: float

    @property
    def name(self) -> str:
        first, *rest = self.dimensions
        if rest == [first]:
            return f"z{first}{SQUARED}"
        return TIMES.join(f"z{d}" for d in self.dimensions)


@dataclass(frozen=True)
class Scale:
    """How latent dimension ``dimension`` was standardised: ``z = (latent - mean) / sd``."""

    dimension: int
    mean: float
    sd: float

    def __str__(self) -> str:
        d, sign = self.dimension, MINUS if self.mean >= 0 else "+"
        return f"z{d} = (latent {d} {sign} {number(abs(self.mean))}) / {number(self.sd)}"


@dataclass(frozen=True)
class Formula:
    """A constant plus a few terms in standardised latent dimensions, and those dimensions'
    standardisation."""

    intercept: float
    terms: tuple[Term, ...]
    scales: tuple[Scale, ...]

    def __str__(self) -> str:
        text = number(self.intercept, DIGITS + 1).replace("-", MINUS)
        for term in self.terms:
            sign = MINUS if term.coefficient < 0 else "+"
            text += f" {sign} {number(abs(term.coefficient))}{TIMES}{term.name}"
        return text

    @property
    def where(self) -> str:
        """The standardisation of each dimension in the formula, in one line."""
        return ", ".join(str(s) for s in self.scales)


@dataclass(frozen=True)
class Dimension:
    """One latent dimension of an explanation: its index, the standardised weight of its
    straight term (positive: the selection sits higher on it; 0 for one only squared or in a
    product), and the selection's mean on it against the others'."""

    dimension: int
    weight: float
    selected_mean: float
    others_mean: float


@dataclass(frozen=True)
class Accuracy:
    """Cross-validated balanced accuracy of the sparse model (its dimensions only) and of the
    full model (every latent dimension), and how many folds and particles it was measured on."""

    sparse: float
    full: float
    folds: int
    particles: int

    @property
    def share(self) -> float:
        """The sparse model's accuracy as a share of the full model's (NaN if that is 0)."""
        return self.sparse / self.full if self.full > 0 else float("nan")

    def __str__(self) -> str:
        return (
            f"sparse model: {self.share:.0%} of the full model's balanced accuracy "
            f"({self.sparse:.2f} vs {self.full:.2f}, {self.folds}-fold)"
        )


@dataclass(frozen=True)
class Explanation:
    """The latent dimensions separating a selection, the most telling first, and their logistic
    formula; ``accuracy`` is None when a side has too few particles to cross-validate."""

    dimensions: tuple[Dimension, ...]
    formula: Formula
    accuracy: Accuracy | None

    @property
    def equation(self) -> str:
        return f"P(selected) = {SIGMA}({self.formula})"


@dataclass(frozen=True)
class ColumnFit:
    """A short polynomial of the latents fitted to a column, its cross-validated R^2 over the
    ``particles`` fitted, and the folds it was measured with."""

    column: str
    formula: Formula
    r2: float
    folds: int
    particles: int

    @property
    def equation(self) -> str:
        return f"{self.column} {APPROX} {self.formula}"


def number(value: float, digits: int = DIGITS) -> str:
    """``value`` to ``digits`` significant digits, never in exponent notation: 1200, 0.012."""
    return np.format_float_positional(value, precision=digits, fractional=False, trim="-")


def explain_selection(
    latent: np.ndarray, rows: np.ndarray, max_dimensions: int = 3, seed: int = 0
) -> Explanation:
    """At most ``max_dimensions`` latent dimensions separating ``rows`` from the other particles,
    the most telling first: the dimensions chosen by logistic models on standardised latents
    of each with its square and products, then the terms of those dimensions
    (:func:`sparse_terms`); none where no dimension or term passes its test, as for a
    selection made at random. The equation is the logistic model of those terms, both sides
    weighted equally (so that P(selected) = 0.5 where their errors balance); its balanced
    accuracy is cross-validated (stratified, ``FOLDS`` folds or as many as the smaller side has
    particles), the terms chosen anew in every fold, against that of the full model
    (:func:`_accuracy`).

    Above ``CLASS_SAMPLE`` particles on a side, a sample of that many of them (drawn with
    ``seed``) is fitted and cross-validated; the means are over all particles.

    A selection of all particles or of none explains nothing, and neither does one particle
    against one other (standardised, they differ equally on every dimension): an
    :class:`AnalysisError` says so."""
    latent = np.asarray(latent, dtype=np.float64)
    selected = np.zeros(len(latent), dtype=bool)
    selected[np.asarray(rows, dtype=np.int64)] = True
    embedded = np.isfinite(latent).all(axis=1)  # particles of a tomogram not embedded: left out
    if selected.any() and not (selected & embedded).any():
        raise AnalysisError(
            f"None of the {int(selected.sum())} selected particles is embedded (added or moved "
            "by hand since the embedding, or of a tomogram not embedded): embed again"
        )
    latent, selected = latent[embedded], selected[embedded]
    _check_sides(selected)
    scaled, means, sds = standardise(latent)
    sample = _balanced_sample(selected, np.random.default_rng(seed))
    scaled, fitted = scaled[sample], selected[sample]
    terms = sparse_terms(scaled, fitted, max_dimensions)
    if not terms:
        return Explanation((), Formula(0.0, (), ()), None)
    fit = _logistic().fit(_design(scaled, terms), fitted)
    weights = dict(zip(terms, (float(w) for w in fit.coef_[0]), strict=True))
    chosen = list(dict.fromkeys(d for term in terms for d in term))  # the most telling first
    dimensions = tuple(
        Dimension(
            d,
            weights.get((d,), 0.0),
            float(latent[selected, d].mean()),
            float(latent[~selected, d].mean()),
        )
        for d in chosen
    )
    formula = Formula(
        float(fit.intercept_[0]),
        tuple(Term(t, w) for t, w in weights.items()),
        tuple(Scale(d, float(means[d]), float(sds[d])) for d in chosen),
    )
    return Explanation(dimensions, formula, _accuracy(scaled, fitted, max_dimensions, seed))


def _check_sides(selected: np.ndarray) -> None:
    """Refuse a selection of all particles or none, and fewer than 3 particles."""
    n = len(selected)
    if selected.all() or not selected.any():
        which = "none" if n == 0 else f"all {n}" if selected.all() else f"none of the {n}"
        verb = "is" if n == 1 and selected.all() else "are"
        raise AnalysisError(
            f"Explain needs some particles selected and some not: {which} {verb} selected"
        )
    if n < 3:
        raise AnalysisError(
            "Explain needs at least 3 particles: standardised, 2 particles differ equally on "
            "every latent dimension on which they differ at all"
        )


def standardise(latent: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Latents less their mean over their standard deviation (1 where that is 0), the means and
    the standard deviations."""
    means, sds = latent.mean(axis=0), latent.std(axis=0)
    sds = np.where(sds > 0, sds, 1.0)
    return (latent - means) / sds, means, sds


def _balanced_sample(selected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted rows: every particle of a side with at most ``CLASS_SAMPLE``, else a sample of
    that many. With classes weighted equally, the sides' proportions do not change the fit."""
    sides = [np.flatnonzero(selected), np.flatnonzero(~selected)]
    return np.sort(np.concatenate([_at_most(rows, CLASS_SAMPLE, rng) for rows in sides]))


def _at_most(rows: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    return rows if len(rows) <= size else rng.choice(rows, size, replace=False)


def _logistic(class_weight: str | None = "balanced", iterations: int = 100):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(class_weight=class_weight, max_iter=iterations)


def sparse_terms(scaled: np.ndarray, selected: np.ndarray, most: int) -> list[tuple[int, ...]]:
    """The terms of an explanation: at most ``most`` dimensions (:func:`_dimensions`), then
    the terms of degree 2 or less in them, each added by :func:`_forward`: first dimensions
    ``(i,)``, then squares ``(i, i)`` (a cluster in the middle of others differs from them in
    its spread along a dimension, not its mean), products ``(i, j)`` and the dimensions left
    out. These are added only where they also raise the balanced accuracy by ``MIN_GAIN``: a
    square that only sharpens the edge of a half-space fits the likelihood better but tells the
    sides apart no better."""
    dimensions = _dimensions(scaled, selected, most)
    features, terms = _polynomial(scaled, dimensions)
    linear = _forward(features[:, : len(dimensions)], selected, 0.0)  # the first columns
    order = linear + [k for k in range(len(terms)) if k not in linear]
    added = _forward(features[:, order], selected, MIN_GAIN, len(linear))
    return [terms[order[k]] for k in [*range(len(linear)), *added]]


def _polynomial(
    scaled: np.ndarray, dimensions: list[int]
) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """The centred columns of every term of degree 2 or less in ``dimensions``: each dimension,
    then their squares, then their products; and the terms."""
    terms = [(i,) for i in dimensions] + [(i, i) for i in dimensions]
    terms += [(i, j) for k, i in enumerate(dimensions) for j in dimensions[k + 1 :]]
    if not terms:
        return np.empty((len(scaled), 0)), terms
    features = _design(scaled, terms)
    return features - features.mean(axis=0), terms


def _dimensions(scaled: np.ndarray, selected: np.ndarray, most: int) -> list[int]:
    """At most ``most`` dimensions, each with its square and its products with the others:
    added one at a time, each the one with the largest score statistic
    (:func:`_best_dimension`), up to ``most``; then each swapped for the best other while that
    fits better, up to ``SWAPS`` times (a dimension chosen first for what it says alone may say
    little beside the others: a cluster in the middle of others is set apart by two dimensions
    together); then the one that adds least to the others dropped while it fails
    :func:`_test`."""
    fits = _Fits(scaled, selected)
    chosen: list[int] = []
    while len(chosen) < min(most, scaled.shape[1]):
        chosen.append(_best_dimension(scaled, selected, chosen, fits(chosen)[1]))
    loss = fits(chosen)[0]
    for _ in range(SWAPS):
        swapped = _swap(fits, chosen, loss)
        if swapped is None:
            break
        chosen, loss = swapped
    while chosen:
        losses = [fits([k for k in chosen if k != i])[0] for i in chosen]
        least = int(np.argmin(losses))
        rest = chosen[:least] + chosen[least + 1 :]
        if _test(fits, rest, chosen[least], losses[least]):
            break
        chosen = rest
    return chosen


class _Fits:
    """The log-loss and P(selected) of the logistic model of each set of dimensions with their
    squares and products, each set fitted once: the swaps and the tests ask for the same ones."""

    def __init__(self, scaled: np.ndarray, selected: np.ndarray) -> None:
        self.scaled, self.selected = scaled, selected
        self._done: dict[frozenset[int], tuple[float, np.ndarray]] = {}

    def __call__(self, dimensions: list[int]) -> tuple[float, np.ndarray]:
        key = frozenset(dimensions)
        if key not in self._done:
            features = _polynomial(self.scaled, dimensions)[0]
            self._done[key] = _logistic_loss(features, self.selected)
        return self._done[key]


def _test(fits: _Fits, chosen: list[int], dimension: int, loss: float) -> bool:
    """Whether ``dimension`` adds to the model of ``chosen`` (its log-loss ``loss``): if the
    likelihood-ratio test of it alone, or of it with its square and its products with
    ``chosen``, passes at ``ALPHA``, corrected for the dimensions it was chosen from
    (Bonferroni). The test of it alone is the stronger where the selection lies to one side, as
    one particle does; either passes for 6 to 8 % of selections made at random (the choice
    searches more than the correction counts)."""
    from scipy.stats import chi2

    scaled, selected = fits.scaled, fits.selected
    level = ALPHA / scaled.shape[1]
    fitted = _polynomial(scaled, chosen)[0]
    alone, _ = _logistic_loss(np.column_stack([fitted, scaled[:, dimension]]), selected)
    refit, _ = fits([*chosen, dimension])
    added = 2 + len(chosen)  # the dimension, its square, its products with those chosen
    return 2 * (loss - alone) > chi2.isf(level, 1) or 2 * (loss - refit) > chi2.isf(level, added)


def _swap(fits: _Fits, chosen: list[int], loss: float) -> tuple[list[int], float] | None:
    """The first of ``chosen`` whose swap for the best other dimension fits better, swapped, and
    the new log-loss; None if no swap fits better."""
    for i in chosen:
        rest = [k for k in chosen if k != i]
        other = _best_dimension(fits.scaled, fits.selected, rest, fits(rest)[1], i)
        if other is None:
            continue
        swapped_loss, _ = fits([*rest, other])
        if swapped_loss < loss - 1e-6:
            return [*rest, other], swapped_loss
    return None


def _best_dimension(
    scaled: np.ndarray,
    selected: np.ndarray,
    chosen: list[int],
    probability: np.ndarray,
    excluded: int | None = None,
) -> int | None:
    """The dimension, of those not ``chosen`` nor ``excluded``, with the largest score statistic
    at the model of ``chosen`` (its P(selected) ``probability``) for adding it, its square and
    its products with ``chosen``: the log-loss's slope along what of them ``chosen`` do not
    span (the efficient score: the fit is penalised, so its slope along ``chosen`` is not 0),
    weighed by the inverse of their information left once ``chosen`` are fitted. A dimension
    that ``chosen`` span (a copy of one) scores 0. None if there is none."""
    weight, residual = probability * (1 - probability), selected - probability
    fitted = np.column_stack([np.ones(len(selected)), _polynomial(scaled, chosen)[0]])
    information = fitted.T @ (weight[:, None] * fitted)
    best, largest = None, -np.inf
    for i in range(scaled.shape[1]):
        if i in chosen or i == excluded:
            continue
        group = np.column_stack([scaled[:, i], scaled[:, [i, *chosen]] * scaled[:, [i]]])
        group -= group.mean(axis=0)
        across = group.T @ (weight[:, None] * fitted)
        solved = np.linalg.lstsq(
            information, np.column_stack([across.T, fitted.T @ residual]), rcond=None
        )[0]
        left = group.T @ (weight[:, None] * group) - across @ solved[:, :-1]
        slope = group.T @ residual - across @ solved[:, -1]
        score = float(slope @ np.linalg.lstsq(left, slope, rcond=1e-10)[0])
        if score > largest:
            best, largest = i, score
    return best


def _design(scaled: np.ndarray, terms: list[tuple[int, ...]]) -> np.ndarray:
    """The columns of ``terms``: the product of each one's dimensions."""
    return np.column_stack([np.prod(scaled[:, list(t)], axis=1) for t in terms])


def _forward(features: np.ndarray, selected: np.ndarray, gain: float, start: int = 0) -> list[int]:
    """Columns of ``features`` added, one at a time, to the first ``start`` (in the model from
    the outset): each the one with the largest score statistic at the model so far (the
    log-loss's slope along it, squared, over its curvature), kept while its likelihood-ratio
    test passes at ``ALPHA``, corrected for the columns it was the best of (Bonferroni); one
    that does not raise the balanced accuracy on the particles by ``gain`` is passed over for
    the next. The columns added, in order. The tests use the particles unweighted: weighting a
    small side up would inflate its statistics."""
    from scipy.stats import chi2

    n = features.shape[1]
    chosen, passed_over = list(range(start)), []  # passed over: too little gain
    loss, probability = _logistic_loss(features[:, chosen], selected)
    while len(chosen) + len(passed_over) < n:
        slope = (selected - probability) @ features
        curvature = (probability * (1 - probability)) @ features**2
        score = slope**2 / np.maximum(curvature, 1e-12)
        score[chosen + passed_over] = -np.inf
        best = int(np.argmax(score))
        refit_loss, refit_probability = _logistic_loss(features[:, [*chosen, best]], selected)
        if 2 * (loss - refit_loss) <= chi2.isf(ALPHA / (n - len(chosen)), 1):
            break
        if _balanced(refit_probability, selected) < _balanced(probability, selected) + gain:
            passed_over.append(best)
            continue
        chosen, loss, probability = [*chosen, best], refit_loss, refit_probability
    return chosen[start:]


def _balanced(probability: np.ndarray, selected: np.ndarray) -> float:
    """The balanced accuracy of calling selected those more likely to be than the average one
    (what a fit weighting both sides equally calls selected)."""
    called = probability > selected.mean()
    return float((called[selected].mean() + (~called[~selected]).mean()) / 2)


def _logistic_loss(features: np.ndarray, selected: np.ndarray) -> tuple[float, np.ndarray]:
    """The log-loss of an unweighted logistic fit of ``features``, and its P(selected)."""
    if features.shape[1] == 0:
        rate = float(np.mean(selected))
        margin = np.full(len(selected), np.log(rate / (1 - rate)))
    else:
        fit = _logistic(class_weight=None).fit(features, selected)
        margin = features @ fit.coef_[0] + fit.intercept_[0]
    loss = float(np.sum(np.logaddexp(0.0, np.where(selected, -margin, margin))))
    return loss, expit(margin)


def _accuracy(scaled: np.ndarray, selected: np.ndarray, most: int, seed: int) -> Accuracy | None:
    """Cross-validated balanced accuracy of the sparse model (its terms chosen on each fold's
    training particles; a fold that chooses none guesses, 0.5) and of the full model, the
    better of a logistic model of every dimension and one of every dimension, its square and
    its products (which over-fits few particles), on the same stratified folds; None when a side
    has fewer than ``MIN_SIDE`` particles (a fold's training particles could then hold only one
    of it, too few for a choice to pass its test)."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold

    smaller = min(int(selected.sum()), int((~selected).sum()))
    if smaller < MIN_SIDE:
        return None
    folds = min(FOLDS, smaller)
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    every, _ = _quadratic(scaled)
    sparse, full = [], []
    for train, test in split.split(scaled, selected):
        x, y, y_test = scaled[train], selected[train], selected[test]
        terms = sparse_terms(x, y, most)
        if terms:
            fit = _logistic().fit(_design(x, terms), y)
            predicted = fit.predict(_design(scaled[test], terms))
            sparse.append(balanced_accuracy_score(y_test, predicted))
        else:
            sparse.append(0.5)
        full.append(
            [
                balanced_accuracy_score(
                    y_test, _logistic(iterations=1000).fit(x, y).predict(x_test)
                )
                for x, x_test in ((scaled[train], scaled[test]), (every[train], every[test]))
            ]
        )
    return Accuracy(
        float(np.mean(sparse)), float(np.max(np.mean(full, axis=0))), folds, len(selected)
    )


def fit_column(
    latent: np.ndarray,
    values: np.ndarray,
    column: str,
    particles: str = "particles",
    seed: int = 0,
) -> ColumnFit:
    """Fit ``values`` (one per latent vector) as a constant plus at most ``MAX_TERMS`` terms of
    degree 2 or less in the standardised latents (z_i, z_i², z_i·z_j), chosen greedily
    (orthogonal matching pursuit): a further term is kept only if it raises the cross-validated
    R^2 (``FOLDS`` folds, the terms chosen anew in each, out-of-fold predictions pooled) by
    ``MIN_GAIN``, the mean alone counting as 0, so that a column the latents do not predict
    gets its mean alone. Rows without a value
    or a latent are left out; above ``FIT_SAMPLE`` of them, a sample of that many (drawn with
    ``seed``) is fitted. ``particles`` names them in messages ("selected particles").

    A non-numeric or constant column, or fewer than ``MIN_ROWS`` rows, raise
    :class:`AnalysisError`."""
    latent, values = _rows_to_fit(latent, values, column, particles, seed)
    scaled, means, sds = standardise(latent)
    features, products = _quadratic(scaled)
    split = _folds(len(values), seed)
    centre, spread = values.mean(), np.ptp(values)  # fitted in these units: any scale fits
    standard = (values - centre) / spread
    path = _omp_path(features, standard)
    if not path:
        raise AnalysisError(
            f"The latents of the {len(values)} {particles} are all the same: nothing to fit "
            f"{column} to"
        )
    supports = _significant(path, features, standard)
    steps, r2 = _sparsest(len(supports), features, standard, split)
    support = supports[steps - 1] if steps else []
    intercept, coefficients = _least_squares(features[:, support], standard)
    intercept, coefficients = centre + spread * intercept, spread * coefficients
    chosen = [products[i] for i in support]
    terms = tuple(Term(p, float(c)) for p, c in zip(chosen, coefficients, strict=True))
    used = sorted({d for p in chosen for d in p})
    scales = tuple(Scale(d, float(means[d]), float(sds[d])) for d in used)
    return ColumnFit(column, Formula(intercept, terms, scales), r2, split.n_splits, len(values))


def _rows_to_fit(
    latent: np.ndarray, values: np.ndarray, column: str, particles: str, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The latents and values of the rows with both (a sample above ``FIT_SAMPLE``); refuse a
    non-numeric or constant column and fewer than ``MIN_ROWS`` rows."""
    values = np.asarray(values)
    if values.dtype.kind not in "iuf":
        raise AnalysisError(f"{column} is not a numeric column: a formula cannot be fitted to it")
    latent, values = np.asarray(latent, dtype=np.float64), values.astype(np.float64)
    kept = np.flatnonzero(np.isfinite(latent).all(axis=1) & np.isfinite(values))
    kept = np.sort(_at_most(kept, FIT_SAMPLE, np.random.default_rng(seed)))
    latent, values = latent[kept], values[kept]
    if len(values) < MIN_ROWS:
        raise AnalysisError(
            f"Fitting {column} needs at least {MIN_ROWS} {particles} with both a value of "
            f"{column} and a latent; {len(values)} {'has' if len(values) == 1 else 'have'}"
        )
    if np.ptp(values) == 0:
        raise AnalysisError(
            f"{column} is {number(values[0])} for all {len(values)} {particles}: nothing to fit"
        )
    return latent, values


def _quadratic(scaled: np.ndarray) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Every product of one or two standardised dimensions, as columns, and which they are."""
    d = scaled.shape[1]
    products = [(i,) for i in range(d)] + [(i, j) for i in range(d) for j in range(i, d)]
    features = np.stack([np.prod(scaled[:, list(p)], axis=1) for p in products], axis=1)
    return features, products


def _folds(n: int, seed: int):
    from sklearn.model_selection import KFold

    return KFold(min(FOLDS, n // 2), shuffle=True, random_state=seed)


def _sparsest(most: int, features: np.ndarray, values: np.ndarray, split) -> tuple[int, float]:
    """The fewest steps of :func:`_greedy_path` (at most ``most``; 0: the mean alone) whose
    cross-validated R^2 is within ``MIN_GAIN`` of the best, and that R^2. The path is chosen
    anew on each fold's training rows and every step's out-of-fold predictions are pooled; the
    mean alone scores 0, so a term must raise R^2 above ``MIN_GAIN`` to be kept."""
    predicted = np.empty((most + 1, len(values)))
    for train, test in split.split(features):
        x, y, x_test = features[train], values[train], features[test]
        predicted[0, test] = y.mean()
        path = _greedy_path(x, y)
        for step in range(1, most + 1):
            support = path[min(step, len(path)) - 1] if path else []
            intercept, coefficients = _least_squares(x[:, support], y)
            predicted[step, test] = intercept + x_test[:, support] @ coefficients
    total = np.sum((values - values.mean()) ** 2)
    scores = 1 - np.sum((values - predicted) ** 2, axis=1) / total
    scores[0] = 0.0
    best = scores.max()
    steps = next(k for k, r2 in enumerate(scores) if r2 >= best - MIN_GAIN)
    return steps, float(scores[steps])


def _least_squares(features: np.ndarray, values: np.ndarray) -> tuple[float, np.ndarray]:
    """The constant and coefficients of the least-squares fit (the mean alone without
    features)."""
    design = np.column_stack([np.ones(len(values)), features])
    solution = np.linalg.lstsq(design, values, rcond=None)[0]
    return float(solution[0]), solution[1:]


def _greedy_path(features: np.ndarray, values: np.ndarray) -> list[list[int]]:
    """The features chosen after each of up to ``MAX_TERMS`` steps of orthogonal matching
    pursuit on the centred, unit-norm features (constant ones never chosen), up to the last
    step whose term passes its F-test at ``ALPHA``, corrected for the features it was the best
    of (Bonferroni): a column of noise has no terms."""
    return _significant(_omp_path(features, values), features, values)


def _significant(
    path: list[list[int]], features: np.ndarray, values: np.ndarray
) -> list[list[int]]:
    """The steps of ``path`` before the first whose new term fails its F-test."""
    from scipy.stats import f

    n, candidates = len(values), features.shape[1]
    residual = float(np.sum((values - values.mean()) ** 2))
    for step, support in enumerate(path):
        intercept, coefficients = _least_squares(features[:, support], values)
        left = float(np.sum((values - intercept - features[:, support] @ coefficients) ** 2))
        freedom = n - len(support) - 1
        if freedom < 1 or left <= 0:
            return path[: step + 1]  # an exact fit: nothing left to test against
        ratio = (residual - left) / (left / freedom)
        if f.sf(ratio, 1, freedom) >= ALPHA / (candidates - step):
            return path[:step]
        residual = left
    return path


def _omp_path(features: np.ndarray, values: np.ndarray) -> list[list[int]]:
    """The features chosen after each of up to ``MAX_TERMS`` steps of orthogonal matching
    pursuit on the centred, unit-norm features (constant ones never chosen)."""
    from sklearn.linear_model import orthogonal_mp

    centred = features - features.mean(axis=0)
    norms = np.linalg.norm(centred, axis=0)
    usable = np.flatnonzero(norms > 1e-9 * max(norms.max(), 1.0))
    atoms = centred[:, usable] / norms[usable]
    steps = min(MAX_TERMS, len(usable))
    if not steps:
        return []
    with warnings.catch_warnings():  # an exact fit ends the path early, which is no matter
        warnings.simplefilter("ignore", RuntimeWarning)
        path = orthogonal_mp(atoms, values - values.mean(), n_nonzero_coefs=steps, return_path=True)
    path = path.reshape(len(usable), -1)
    return [usable[np.flatnonzero(path[:, k])].tolist() for k in range(path.shape[1])]
