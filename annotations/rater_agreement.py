"""Agreement of raters with each other: Cohen's kappa (per pair), Kendall's W, and each rater's agreement
with the leave-one-out majority.

Pure maths over NumPy arrays, no Django, in the long format of
:mod:`annotations.agreement` (parallel arrays, one entry per rating).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from annotations.agreement import group_pairs


# --- Cohen's kappa ---------------------------------------------------------


def cohen_kappa(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Cohen's kappa of two raters' labels on the same items.

    Matches ``sklearn.metrics.cohen_kappa_score``: ``nan`` when chance
    agreement is 1 (both raters used one and the same label throughout).
    Written as ``1 - n (n - agree) / (n^2 - sum_c row_c col_c)`` on integer
    counts, so the undefined case is detected exactly.
    """
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.shape != b.shape:
        raise ValueError("a and b must have the same length")
    if a.size == 0:
        return float("nan")
    _, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
    ca, cb = codes[: a.size], codes[a.size :]
    v = int(codes.max()) + 1
    rows, cols = np.bincount(ca, minlength=v), np.bincount(cb, minlength=v)
    n = a.size
    chance = n * n - int((rows * cols).sum())
    if chance == 0:
        return float("nan")
    return float(1.0 - n * (n - int((ca == cb).sum())) / chance)


class PairwiseKappa(NamedTuple):
    """One entry per pair of raters (``rater_a < rater_b``) sharing enough units."""

    rater_a: np.ndarray
    rater_b: np.ndarray
    n_shared: np.ndarray
    kappa: np.ndarray


def corated_pairs(rater_idx: npt.ArrayLike, unit_idx: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Rating positions ``(i, j)`` of every two ratings on the same unit by different raters.

    Orientation: ``rater_idx[i] < rater_idx[j]``. The work is proportional to
    the co-rated pairs (``sum m(m-1)/2`` over units), never to raters squared.
    """
    rater = np.asarray(rater_idx).astype(np.int64, copy=False).ravel()
    unit = np.asarray(unit_idx).astype(np.int64, copy=False).ravel()
    if rater.shape != unit.shape:
        raise ValueError("rater_idx and unit_idx must have the same length")
    order = np.lexsort((rater, unit))
    left, right = group_pairs(unit[order])
    i, j = order[left], order[right]
    keep = rater[i] != rater[j]  # a rater's duplicate rating is no pair
    i, j = i[keep], j[keep]
    swap = rater[i] > rater[j]
    i[swap], j[swap] = j[swap], i[swap].copy()
    return i, j


def pairwise_kappa(
    rater_idx: npt.ArrayLike,
    unit_idx: npt.ArrayLike,
    label: npt.ArrayLike,
    min_shared: int = 10,
) -> PairwiseKappa:
    """Cohen's kappa for every pair of raters who labelled at least ``min_shared`` common units.

    One confusion table per co-rated pair is built with a single ``bincount``
    over ``(pair, label_a, label_b)``; kappa per pair is the same closed form
    as :func:`cohen_kappa` (``nan`` where chance agreement is 1).
    """
    rater = np.asarray(rater_idx).astype(np.int64, copy=False).ravel()
    lab = np.asarray(label).ravel()
    if lab.shape != rater.shape:
        raise ValueError("label must have one entry per rating")
    i, j = corated_pairs(rater, unit_idx)
    if i.size == 0:
        e = np.empty(0, dtype=np.int64)
        return PairwiseKappa(e, e.copy(), e.copy(), np.empty(0))
    _, code = np.unique(lab, return_inverse=True)
    v = int(code.max()) + 1
    n_raters = int(rater.max()) + 1
    pair_keys, pair = np.unique(rater[i] * n_raters + rater[j], return_inverse=True)
    n_pairs = pair_keys.shape[0]
    n = np.bincount(pair, minlength=n_pairs)
    kept = n >= min_shared
    # Only pairs that pass min_shared need a confusion table.
    sel = kept[pair]
    new_id = np.cumsum(kept) - 1
    p, ca, cb = new_id[pair[sel]], code[i[sel]], code[j[sel]]
    n_kept = int(kept.sum())
    agree = np.bincount(p, weights=(ca == cb), minlength=n_kept)
    rows = np.bincount(p * v + ca, minlength=n_kept * v).reshape(n_kept, v)
    cols = np.bincount(p * v + cb, minlength=n_kept * v).reshape(n_kept, v)
    nk = n[kept].astype(np.float64)
    chance = nk * nk - (rows * cols).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(chance > 0, 1.0 - nk * (nk - agree) / chance, np.nan)
    keys = pair_keys[kept]
    return PairwiseKappa(keys // n_raters, keys % n_raters, n[kept], kappa)


# --- Kendall's W -----------------------------------------------------------


def kendalls_w(rankings: npt.ArrayLike) -> float:
    """Kendall's coefficient of concordance W, tie-corrected, for m raters x n items.

    Each row is one rater's ranking (any numbers where smaller = better; ties
    allowed) and is converted to mid-ranks first, which the tie correction
    assumes: ``W = 12 S / (m^2 (n^3 - n) - m sum_j T_j)`` with
    ``T_j = sum (t^3 - t)`` over rater j's tie groups. ``nan`` when undefined
    (fewer than two items, or every rater tied everything).
    """
    r = np.asarray(rankings, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError("rankings must be a 2-D raters x items array")
    if np.isnan(r).any():
        raise ValueError("Kendall's W needs complete rankings (no nan)")
    m, n = r.shape
    if m == 0 or n < 2:
        return float("nan")
    ranks = rankdata(r, axis=1)
    column_sums = ranks.sum(axis=0)
    s = float(((column_sums - m * (n + 1) / 2.0) ** 2).sum())
    ordered = np.sort(ranks, axis=1)
    new_group = np.ones_like(ordered, dtype=bool)
    new_group[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    tie_sizes = np.bincount(np.cumsum(new_group.ravel()) - 1).astype(np.float64)
    ties = float((tie_sizes**3 - tie_sizes).sum())
    denominator = m * m * (n**3 - n) - m * ties
    if denominator <= 0:
        return float("nan")
    return 12.0 * s / denominator


# --- Per-rater agreement with the leave-one-out majority -------------------


class LeaveOneOutAgreement(NamedTuple):
    rater: np.ndarray  # rater ids that have at least one rating
    n_compared: np.ndarray  # ratings where the other raters had a strict majority
    agreement: np.ndarray  # share of those matching it (nan when n_compared = 0)


def leave_one_out_votes(unit_idx: npt.ArrayLike, label: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """For each rating: was there a strict majority among the other ratings on its unit, and does it match?

    Returns boolean arrays ``(compared, matches)``. A rating is compared when
    the other raters' most frequent label is unique (a tie, or no other
    rating, is no verdict). Needs only, per unit, the top count, how many
    labels reach it, and the runner-up count.
    """
    unit = np.asarray(unit_idx).astype(np.int64, copy=False).ravel()
    lab = np.asarray(label).ravel()
    if lab.shape != unit.shape:
        raise ValueError("label must have one entry per rating")
    if unit.size == 0:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    _, code = np.unique(lab, return_inverse=True)
    v = int(code.max()) + 1
    key, rec_inverse, count = np.unique(unit * v + code, return_inverse=True, return_counts=True)
    rec_unit = key // v
    _, rec_unit = np.unique(rec_unit, return_inverse=True)
    n_units = int(rec_unit.max()) + 1
    top = np.zeros(n_units, dtype=np.int64)
    np.maximum.at(top, rec_unit, count)
    at_top = count == top[rec_unit]
    n_top = np.bincount(rec_unit, weights=at_top, minlength=n_units).astype(np.int64)
    second = np.zeros(n_units, dtype=np.int64)
    np.maximum.at(second, rec_unit[~at_top], count[~at_top])

    own = count[rec_inverse]  # ratings on this unit with the same label, self included
    u = rec_unit[rec_inverse]
    own_is_top = own == top[u]
    # Own label alone on top: others' majority is it iff top-1 still beats the runner-up.
    alone = own_is_top & (n_top[u] == 1)
    match = alone & (top[u] - 1 > second[u])
    # Own label shares the top with exactly one other label: that one wins once we leave.
    # Own label below the top with a unique top: the top label is the others' majority.
    other_wins = (own_is_top & (n_top[u] == 2)) | (~own_is_top & (n_top[u] == 1))
    return match | other_wins, match


def leave_one_out_agreement(
    rater_idx: npt.ArrayLike, unit_idx: npt.ArrayLike, label: npt.ArrayLike
) -> LeaveOneOutAgreement:
    """Per rater, share of their labels that match the strict majority of the *other* raters.

    Leaving the rater out matters: with overlap 3 a rater is a third of the
    majority they are compared with. Ties among the others don't count.
    """
    rater = np.asarray(rater_idx).astype(np.int64, copy=False).ravel()
    compared, match = leave_one_out_votes(unit_idx, label)
    raters, inverse = np.unique(rater, return_inverse=True)
    n = np.bincount(inverse, weights=compared, minlength=raters.size).astype(np.int64)
    agree = np.bincount(inverse, weights=match, minlength=raters.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(n > 0, agree / n, np.nan)
    return LeaveOneOutAgreement(raters, n, share)
