"""Agreement between raters: Krippendorff's alpha and raw agreement (kappa, Kendall's W and each
rater's agreement with the others: :mod:`annotations.rater_agreement`).

Pure maths over NumPy arrays, no Django: the quality jobs load judgments into
flat arrays (one row per rating) and call these functions, and the tests and
``bench/quality_math_bench.py`` call them directly.

Two input shapes are accepted where it matters:

* a *reliability matrix* (raters x units, ``np.nan`` where a rater did not
  rate a unit), the shape the ``krippendorff`` reference package takes;
* *long format*: parallel arrays ``unit_idx, value`` (and ``rater_idx``), one
  entry per rating, which is what a campaign with 2,000 raters and 100,000
  tasks can afford (the dense matrix would be 200M cells, 99.5% empty).

Alpha does not depend on which row a rating sits in, only on which unit it
belongs to, so a campaign can also pass a "slot" matrix (overlap x units).

Undefined statistics are ``nan``, never an exception: a campaign with no
pairable unit yet, or where every pairable rating has the same value (zero
expected disagreement), has no alpha. The reference raises ``ValueError`` in
the first case and when only one value occurs at all, and returns ``nan``
(0/0) in the second; everywhere it returns a number we return the same number.
"""
from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import sparse

Level = Literal["nominal", "ordinal", "interval"]
LEVELS: tuple[Level, ...] = ("nominal", "ordinal", "interval")

# Bootstrap weight matrices are built in chunks of about this many cells so
# that 1,000 draws over 100k units stay within a few tens of megabytes.
_BOOTSTRAP_CHUNK_CELLS = 4_000_000


# --- Grouping helpers (shared by alpha, kappa and the signals module) ------


def group_pairs(groups_sorted: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(left, right)``, ``left < right``, of every pair within a group.

    ``groups_sorted`` must be sorted (equal ids adjacent). The output has
    ``sum(m * (m - 1) / 2)`` pairs over groups of size ``m`` and is built with
    ``repeat``/``cumsum`` only, so its cost is the number of pairs, not the
    number of groups times a Python loop.
    """
    g = np.asarray(groups_sorted)
    n = g.shape[0]
    if n < 2:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy()
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    sizes = np.diff(np.r_[starts, n])
    group_of_pos = np.repeat(np.arange(starts.shape[0]), sizes)
    rank_in_group = np.arange(n) - starts[group_of_pos]
    partners = sizes[group_of_pos] - 1 - rank_in_group
    left = np.repeat(np.arange(n, dtype=np.int64), partners)
    run_start = np.cumsum(partners) - partners
    right = left + (np.arange(left.shape[0]) - np.repeat(run_start, partners) + 1)
    return left, right


def ratings_from_matrix(reliability_data: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Turn a raters x units matrix (``nan`` = missing) into ``(unit_idx, value)``."""
    data = np.asarray(reliability_data, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError("reliability_data must be a 2-D raters x units array")
    rater, unit = np.nonzero(~np.isnan(data))
    return unit.astype(np.int64), data[rater, unit]


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")


def _pairable(unit_idx: npt.ArrayLike, value: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Keep ratings of units rated at least twice; renumber units 0..U-1.

    A unit with a single rating has no pair, so Krippendorff's alpha ignores
    it (its coincidences are all zero in the reference too).
    """
    unit = np.asarray(unit_idx).astype(np.int64, copy=False).ravel()
    val = np.asarray(value, dtype=np.float64).ravel()
    if unit.shape != val.shape:
        raise ValueError("unit_idx and value must have the same length")
    keep = ~np.isnan(val)
    if not np.all(np.isfinite(val[keep])):
        raise ValueError("values must be finite (use nan for missing)")
    unit, val = unit[keep], val[keep]
    _, unit, count = np.unique(unit, return_inverse=True, return_counts=True)
    keep = count[unit] >= 2
    _, unit = np.unique(unit[keep], return_inverse=True)
    return unit.astype(np.int64), val[keep]


# --- Krippendorff's alpha --------------------------------------------------


class _UnitContributions(NamedTuple):
    """Per-unit sufficient statistics, linear in the unit's bootstrap weight.

    Alpha is ``1 - D_o / D_e`` where ``D_o`` sums the coincidence matrix times
    the distance matrix, and every term of ``D_o`` and of the value totals
    ``n_c`` is a sum over units. Storing those per-unit terms as the rows of
    ``features`` turns a bootstrap draw into a weighted column sum.
    """

    level: Level
    features: sparse.csr_matrix | np.ndarray  # (n_units, n_features)
    n_values: int
    pair_c: np.ndarray  # ordinal: value codes c < k of off-diagonal coincidences
    pair_k: np.ndarray


def _unit_contributions(unit_idx: npt.ArrayLike, value: npt.ArrayLike, level: Level) -> _UnitContributions:
    _check_level(level)
    unit, val = _pairable(unit_idx, value)
    n_units = int(unit.max()) + 1 if unit.size else 0
    empty = np.empty(0, dtype=np.int64)
    if level == "interval":
        # Distances are (x - y)^2, so D_o per unit is 2 m sum (x - mean)^2 / (m - 1)
        # and D_e needs only the moments of the pooled values; centring first
        # keeps the moments free of cancellation.
        centred = val - (val.mean() if val.size else 0.0)
        m = np.bincount(unit, minlength=n_units).astype(np.float64)
        s1 = np.bincount(unit, weights=centred, minlength=n_units)
        dev = centred - (s1 / np.maximum(m, 1))[unit]
        do = 2.0 * m * np.bincount(unit, weights=dev * dev, minlength=n_units) / np.maximum(m - 1, 1)
        s2 = np.bincount(unit, weights=centred * centred, minlength=n_units)
        return _UnitContributions(level, np.column_stack([do, m, s1, s2]), 0, empty, empty)

    _, code = np.unique(val, return_inverse=True)
    n_values = int(code.max()) + 1 if code.size else 0
    # Sparse (unit, value) -> count table: one record per distinct value in a unit.
    key, n_uc = np.unique(unit * max(n_values, 1) + code, return_counts=True)
    rec_unit, rec_code = key // max(n_values, 1), key % max(n_values, 1)
    n_uc = n_uc.astype(np.float64)
    m = np.bincount(rec_unit, weights=n_uc, minlength=n_units)
    counts = sparse.csr_matrix((n_uc, (rec_unit, rec_code)), shape=(n_units, n_values))
    if level == "nominal":
        # Ordered pairs within a unit that disagree: m^2 - sum_c n_uc^2.
        do = (m * m - np.bincount(rec_unit, weights=n_uc * n_uc, minlength=n_units)) / np.maximum(m - 1, 1)
        features = sparse.hstack([sparse.csr_matrix(do[:, None]), counts], format="csr")
        return _UnitContributions(level, features, n_values, empty, empty)

    # Ordinal: the distance between values c < k depends on the pooled counts
    # n_c (which a bootstrap draw changes), so keep the off-diagonal
    # coincidences o_ck per unit, over the (c, k) pairs that actually occur.
    left, right = group_pairs(rec_unit)  # records are sorted by unit, then code
    pair_key = rec_code[left] * n_values + rec_code[right]
    support, pair_col = np.unique(pair_key, return_inverse=True)
    o_u = 2.0 * n_uc[left] * n_uc[right] / (m[rec_unit[left]] - 1)
    coinc = sparse.csr_matrix((o_u, (rec_unit[left], pair_col)), shape=(n_units, support.shape[0]))
    features = sparse.hstack([counts, coinc], format="csr")
    return _UnitContributions(level, features, n_values, support // n_values, support % n_values)


def _alpha_from_totals(contrib: _UnitContributions, totals: np.ndarray) -> np.ndarray:
    """Alpha for each row of ``totals`` (weighted column sums of the features)."""
    totals = np.atleast_2d(np.asarray(totals, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        if contrib.level == "interval":
            do, n, s1, s2 = totals.T
            spread = s2 - s1 * s1 / n  # sum_c n_c (x_c - mean)^2
            de = 2.0 * n * spread / (n - 1)
            # A draw holding a single distinct value has zero spread up to rounding.
            undefined = ~(spread > 1e-12 * s2)
        elif contrib.level == "nominal":
            do, n_c = totals[:, 0], totals[:, 1:]
            n = n_c.sum(axis=1)
            de = (n * n - (n_c * n_c).sum(axis=1)) / (n - 1)
            undefined = ~(de > 0)
        else:
            v = contrib.n_values
            n_c, o = totals[:, :v], totals[:, v:]
            n = n_c.sum(axis=1)
            # Ordinal distance (sum_{g=c..k} n_g - (n_c + n_k)/2)^2 equals
            # (t_k - t_c)^2 with t_c = cumsum(n)_c - n_c / 2: an interval
            # distance on mid-cumulative counts.
            t = np.cumsum(n_c, axis=1) - n_c / 2.0
            t = t - ((n_c * t).sum(axis=1) / n)[:, None]
            do = (o * (t[:, contrib.pair_c] - t[:, contrib.pair_k]) ** 2).sum(axis=1)
            de = 2.0 * n * (n_c * t * t).sum(axis=1) / (n - 1)
            undefined = ~(de > 0)
        alpha = 1.0 - do / de
    alpha[undefined | ~(n >= 2)] = np.nan
    return alpha


def _column_totals(features: sparse.csr_matrix | np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    if weights is None:
        return np.asarray(features.sum(axis=0)).reshape(1, -1)
    if sparse.issparse(features):
        return np.asarray((features.T @ weights.T).T)
    return weights @ features


def alpha_from_ratings(unit_idx: npt.ArrayLike, value: npt.ArrayLike, level: Level = "nominal") -> float:
    """Krippendorff's alpha from long-format ratings (one entry per rating).

    ``level`` picks the distance: ``nominal`` (pair direction), ``ordinal``
    (the -3..+3 strength scale; only the order of values matters) or
    ``interval``. Runs in O(ratings log ratings): per-unit coincidences are
    sums over the unit's distinct values, built with ``np.unique``/``bincount``.
    """
    contrib = _unit_contributions(unit_idx, value, level)
    if contrib.features.shape[0] == 0:
        return float("nan")
    return float(_alpha_from_totals(contrib, _column_totals(contrib.features))[0])


def krippendorff_alpha(reliability_data: npt.ArrayLike, level: Level = "nominal") -> float:
    """Krippendorff's alpha of a raters x units matrix with ``nan`` for missing.

    Matches ``krippendorff.alpha(reliability_data=..., level_of_measurement=...)``
    wherever that returns a number; ``nan`` where it raises or divides by zero.
    """
    unit, value = ratings_from_matrix(reliability_data)
    return alpha_from_ratings(unit, value, level)


def _bootstrap_weights(rng: np.random.Generator, n_draws: int, n_units: int) -> np.ndarray:
    """Multinomial unit counts of ``n_draws`` resamples with replacement."""
    picks = rng.integers(0, n_units, size=(n_draws, n_units))
    picks += (np.arange(n_draws) * n_units)[:, None]
    return np.bincount(picks.ravel(), minlength=n_draws * n_units).reshape(n_draws, n_units).astype(np.float64)


def alpha_bootstrap_ci_from_ratings(
    unit_idx: npt.ArrayLike,
    value: npt.ArrayLike,
    level: Level = "nominal",
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> tuple[float, float, float]:
    """Alpha and its percentile bootstrap interval, resampling pairable units.

    Why over units: ratings within a task are not independent, and with few
    tasks alpha's interval is wide, so the interval must come from resampling
    whole tasks. Units rated once are left out of the population (they carry
    no pairs). Each draw is a vector of multinomial unit counts, and alpha's
    sufficient statistics are linear in it, so a chunk of draws is one sparse
    matrix product. Draws where alpha is undefined (one value only) are
    dropped from the quantiles; the interval is ``nan`` if all are.
    """
    if not 0 < ci < 1:
        raise ValueError("ci must be in (0, 1)")
    if n_boot < 1:
        raise ValueError("n_boot must be positive")
    contrib = _unit_contributions(unit_idx, value, level)
    n_units = contrib.features.shape[0]
    if n_units == 0:
        return float("nan"), float("nan"), float("nan")
    point = float(_alpha_from_totals(contrib, _column_totals(contrib.features))[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CHUNK_CELLS // n_units)
    draws = []
    for start in range(0, n_boot, chunk):
        weights = _bootstrap_weights(rng, min(chunk, n_boot - start), n_units)
        draws.append(_alpha_from_totals(contrib, _column_totals(contrib.features, weights)))
    boot = np.concatenate(draws)
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return point, float("nan"), float("nan")
    low, high = np.quantile(boot, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return point, float(low), float(high)


def alpha_bootstrap_ci(
    reliability_data: npt.ArrayLike,
    level: Level = "nominal",
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> tuple[float, float, float]:
    """``(alpha, low, high)`` for a raters x units matrix; see the long-format twin."""
    unit, value = ratings_from_matrix(reliability_data)
    return alpha_bootstrap_ci_from_ratings(unit, value, level, n_boot=n_boot, seed=seed, ci=ci)


def raw_agreement_from_ratings(unit_idx: npt.ArrayLike, value: npt.ArrayLike) -> float:
    """Share of (ordered) rating pairs within a unit that carry the same value.

    Shown beside alpha because alpha drops with skewed prevalence while plain
    agreement does not. When every unit has the same number of ratings this
    equals Krippendorff's observed agreement ``sum_c o_cc / n``.
    """
    unit, val = _pairable(unit_idx, value)
    if unit.size == 0:
        return float("nan")
    _, code = np.unique(val, return_inverse=True)
    n_values = int(code.max()) + 1
    _, n_uc = np.unique(unit * n_values + code, return_counts=True)
    m = np.bincount(unit).astype(np.float64)
    agreeing = float((n_uc.astype(np.float64) * (n_uc - 1)).sum())
    return agreeing / float((m * (m - 1)).sum())


def raw_agreement(reliability_data: npt.ArrayLike) -> float:
    """Raw pairwise agreement of a raters x units matrix (``nan`` = missing)."""
    unit, value = ratings_from_matrix(reliability_data)
    return raw_agreement_from_ratings(unit, value)
