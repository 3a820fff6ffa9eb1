"""Consensus over raters: pairs from rankings, Dawid-Skene, Bradley-Terry, Borda.

Pure maths over NumPy arrays, no Django. The quality job turns every
judgment into pair directions (``ranking_to_pairs``), estimates each rater's
reliability and each pair's consensus with Dawid-Skene EM (seeded and
clamped by gold), and for K > 2 orders a task's responses with weighted
Bradley-Terry or Borda using those reliabilities as weights.
"""
from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

# Worker parameters are kept inside (eps, 1 - eps) so log-likelihood ratios
# stay finite even for a rater who never erred on the items seen so far.
_PARAM_EPS = 1e-6


# --- Pairs from a ranking --------------------------------------------------


class RankingPairs(NamedTuple):
    i: np.ndarray  # first response of each unordered pair (i < j)
    j: np.ndarray
    direction: np.ndarray  # +1: i better, -1: j better, 0: tie
    strength: np.ndarray  # non-negative: rank gap, or |explicit strength| for K = 2


def ranking_to_pairs(ranks: npt.ArrayLike, strength: npt.ArrayLike | None = None) -> RankingPairs:
    """The K(K-1)/2 pair directions and strengths implied by ranks (1 = best, ties share a rank).

    ``ranks`` is ``(K,)`` for one judgment or ``(N, K)`` for N judgments;
    the outputs are then ``(P,)`` or ``(N, P)`` with pairs in
    ``np.triu_indices(K, 1)`` order. The strength is the rank gap. For K = 2
    the form collects an explicit signed strength on -3..+3 (-3 = A much
    better, +3 = B much better); pass it as ``strength`` and it replaces both
    the ranks' direction and the gap.
    """
    r = np.asarray(ranks)
    single = r.ndim == 1
    r2 = np.atleast_2d(r).astype(np.int64)
    k = r2.shape[1]
    if k < 2:
        raise ValueError("a ranking needs at least two responses")
    i, j = np.triu_indices(k, 1)
    if strength is not None:
        if k != 2:
            raise ValueError("an explicit strength is only defined for K = 2")
        s = np.atleast_1d(np.asarray(strength)).astype(np.int64).reshape(-1, 1)
        if s.shape[0] != r2.shape[0]:
            raise ValueError("one strength per judgment")
        if np.any(np.abs(s) > 3):
            raise ValueError("strength must lie in -3..+3")
        direction, gap = -np.sign(s), np.abs(s)
    else:
        diff = r2[:, j] - r2[:, i]  # positive when i has the better (smaller) rank
        direction, gap = np.sign(diff), np.abs(diff)
    if single:
        direction, gap = direction[0], gap[0]
    return RankingPairs(i, j, direction, gap)


# --- Weights with a cap (no whale dictates consensus) ----------------------


def weighted_median(values: npt.ArrayLike, weights: npt.ArrayLike | None = None) -> float:
    """Lower weighted median: the smallest value holding at least half the total weight."""
    v = np.asarray(values, dtype=np.float64).ravel()
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if v.shape != w.shape:
        raise ValueError("values and weights must have the same length")
    keep = w > 0
    v, w = v[keep], w[keep]
    if v.size == 0:
        return float("nan")
    order = np.argsort(v, kind="stable")
    cumulative = np.cumsum(w[order])
    return float(v[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def clip_weights(weights: npt.ArrayLike, factor: float, sample_weight: npt.ArrayLike | None = None) -> np.ndarray:
    """Cap every weight at ``factor`` times the weighted median of the positive weights.

    After Bittensor's Yuma consensus: one large staker may count for more than
    a typical rater, but never for more than ``factor`` typical raters. The
    median is taken over raters (optionally weighted by ``sample_weight``,
    e.g. judgments), deliberately not by the weights themselves: a whale
    holding most of the stake would otherwise *be* the stake-weighted median
    and clip nothing.
    """
    w = np.asarray(weights, dtype=np.float64)
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite and non-negative")
    if factor <= 0:
        raise ValueError("factor must be positive")
    positive = w > 0
    if not positive.any():
        return w.copy()
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)[positive]
    cap = factor * weighted_median(w[positive], sw)
    return np.minimum(w, cap)


# --- Dawid-Skene for binary labels (pair directions) -----------------------


class DawidSkeneResult(NamedTuple):
    posterior: np.ndarray  # (n_items,) P(true label = 1); the prior for items nobody labelled
    worker_accuracy: np.ndarray  # (n_workers,) expected agreement with the posterior; nan if no labels
    sensitivity: np.ndarray  # (n_workers,) P(says 1 | truth 1) (= accuracy for one_coin)
    specificity: np.ndarray  # (n_workers,) P(says 0 | truth 0)
    prior: float  # P(true label = 1)
    n_iter: int
    converged: bool


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def dawid_skene_binary(
    item_idx: npt.ArrayLike,
    worker_idx: npt.ArrayLike,
    label: npt.ArrayLike,
    n_items: int,
    n_workers: int,
    gold_item_idx: npt.ArrayLike | None = None,
    gold_label: npt.ArrayLike | None = None,
    max_iter: int = 50,
    tol: float = 1e-6,
    worker_weight: npt.ArrayLike | None = None,
    worker_weight_cap: float | None = None,
    model: Literal["two_coin", "one_coin"] = "two_coin",
    smoothing: float = 1.0,
) -> DawidSkeneResult:
    """Dawid-Skene EM over binary labels (pair directions; callers drop ties).

    ``two_coin`` gives each worker a sensitivity and a specificity, so a rater
    who always answers "1" is recognised as uninformative rather than as
    right whenever the truth is 1; ``one_coin`` gives each a single accuracy.

    Gold: items in ``gold_item_idx`` have their posterior clamped to
    ``gold_label`` throughout, and workers who answered gold start from their
    (smoothed) gold confusion rather than from agreement with the majority.

    ``worker_weight`` (e.g. stake) scales each worker's log-likelihood ratio
    in the E-step. It is capped by :func:`clip_weights` at
    ``worker_weight_cap`` times the median weight of the workers who labelled
    (no cap when ``None``) and then divided by that median, so equal weights
    give plain Dawid-Skene.

    ``smoothing`` is a Beta(s, s) pseudo-count on every worker parameter, so a
    worker with ten perfect answers is not treated as infallible. Everything
    is vectorised with ``bincount``: one iteration costs O(labels).
    """
    item = np.asarray(item_idx).astype(np.int64, copy=False).ravel()
    worker = np.asarray(worker_idx).astype(np.int64, copy=False).ravel()
    y = np.asarray(label).ravel().astype(np.float64)
    if not (item.shape == worker.shape == y.shape):
        raise ValueError("item_idx, worker_idx and label must have the same length")
    if np.any((y != 0) & (y != 1)):
        raise ValueError("labels must be 0 or 1 (drop ties before calling)")
    if item.size and (item.min() < 0 or item.max() >= n_items or worker.min() < 0 or worker.max() >= n_workers):
        raise ValueError("item_idx or worker_idx out of range")
    if model not in ("two_coin", "one_coin"):
        raise ValueError("model must be 'two_coin' or 'one_coin'")

    labelled = np.bincount(worker, minlength=n_workers) > 0
    if worker_weight is None:
        w_worker = np.ones(n_workers)
    else:
        w_worker = np.asarray(worker_weight, dtype=np.float64).ravel()
        if w_worker.shape != (n_workers,):
            raise ValueError("worker_weight must have one entry per worker")
        if worker_weight_cap is not None:
            w_worker = clip_weights(w_worker, worker_weight_cap, sample_weight=labelled)
        median = weighted_median(w_worker, labelled & (w_worker > 0))
        w_worker = w_worker / median if median > 0 else w_worker
    w = w_worker[worker]

    gold_items = np.empty(0, dtype=np.int64) if gold_item_idx is None else np.asarray(gold_item_idx, np.int64).ravel()
    gold_y = np.empty(0) if gold_label is None else np.asarray(gold_label, dtype=np.float64).ravel()
    if gold_items.shape != gold_y.shape:
        raise ValueError("gold_item_idx and gold_label must have the same length")

    def clamp(t: np.ndarray) -> np.ndarray:
        t[gold_items] = gold_y
        return t

    n_per_item = np.bincount(item, weights=w, minlength=n_items)
    votes_for_1 = np.bincount(item, weights=w * y, minlength=n_items)
    with np.errstate(invalid="ignore", divide="ignore"):
        posterior = clamp(np.where(n_per_item > 0, votes_for_1 / n_per_item, 0.5))

    s = smoothing

    def m_step(t: np.ndarray, sample: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        ti = t[item]
        keep = np.ones_like(ti) if sample is None else sample
        if model == "one_coin":
            right = np.bincount(worker, weights=keep * (y * ti + (1 - y) * (1 - ti)), minlength=n_workers)
            seen = np.bincount(worker, weights=keep, minlength=n_workers)
            acc = (right + s) / (seen + 2 * s)
            return acc, acc
        true_pos = np.bincount(worker, weights=keep * y * ti, minlength=n_workers)
        pos = np.bincount(worker, weights=keep * ti, minlength=n_workers)
        true_neg = np.bincount(worker, weights=keep * (1 - y) * (1 - ti), minlength=n_workers)
        neg = np.bincount(worker, weights=keep * (1 - ti), minlength=n_workers)
        return (true_pos + s) / (pos + 2 * s), (true_neg + s) / (neg + 2 * s)

    sens, spec = m_step(posterior)
    if gold_items.size:
        is_gold = np.zeros(n_items, dtype=bool)
        is_gold[gold_items] = True
        gold_answers = np.bincount(worker, weights=is_gold[item], minlength=n_workers)
        g_sens, g_spec = m_step(posterior, sample=is_gold[item].astype(np.float64))
        seeded = gold_answers > 0
        sens[seeded], spec[seeded] = g_sens[seeded], g_spec[seeded]
    has_labels = n_per_item > 0
    prior = float(np.clip(posterior[has_labels].mean() if has_labels.any() else 0.5, 0.01, 0.99))

    converged, n_iter = False, 0
    for n_iter in range(1, max_iter + 1):
        sens = np.clip(sens, _PARAM_EPS, 1 - _PARAM_EPS)
        spec = np.clip(spec, _PARAM_EPS, 1 - _PARAM_EPS)
        llr_1 = np.log(sens / (1 - spec))  # evidence for truth 1 when the worker says 1
        llr_0 = np.log((1 - sens) / spec)  # ... when the worker says 0
        evidence = np.where(y == 1, llr_1[worker], llr_0[worker]) * w
        logit = np.log(prior / (1 - prior)) + np.bincount(item, weights=evidence, minlength=n_items)
        new_posterior = clamp(_sigmoid(logit))
        delta = float(np.max(np.abs(new_posterior - posterior))) if n_items else 0.0
        posterior = new_posterior
        sens, spec = m_step(posterior)
        prior = float(np.clip(posterior[has_labels].mean() if has_labels.any() else 0.5, 0.01, 0.99))
        if delta < tol:
            converged = True
            break

    ti = posterior[item]
    seen = np.bincount(worker, minlength=n_workers).astype(np.float64)
    right = np.bincount(worker, weights=y * ti + (1 - y) * (1 - ti), minlength=n_workers)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(seen > 0, right / seen, np.nan)
    sens = np.where(labelled, sens, np.nan)
    spec = np.where(labelled, spec, np.nan)
    return DawidSkeneResult(posterior, accuracy, sens, spec, prior, n_iter, converged)


def majority_vote_binary(
    item_idx: npt.ArrayLike, label: npt.ArrayLike, n_items: int, weights: npt.ArrayLike | None = None
) -> np.ndarray:
    """Share of (weighted) votes for 1 per item; 0.5 for an item with no votes. The baseline DS must beat."""
    item = np.asarray(item_idx).astype(np.int64, copy=False).ravel()
    y = np.asarray(label, dtype=np.float64).ravel()
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    total = np.bincount(item, weights=w, minlength=n_items)
    ones = np.bincount(item, weights=w * y, minlength=n_items)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, ones / total, 0.5)


# --- Orders within one task (K > 2) ----------------------------------------


def weighted_bradley_terry(
    n_items: int,
    winners: npt.ArrayLike,
    losers: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    iters: int = 200,
    tol: float = 1e-10,
    prior: float = 0.1,
) -> np.ndarray:
    """Log-strengths ``theta`` of a weighted Bradley-Terry model, by Hunter's MM algorithm.

    ``P(a beats b) = sigmoid(theta_a - theta_b)``. Each comparison counts
    with its weight (the rater's reliability); a tie is best passed as half a
    win each way. ``prior`` adds that many virtual wins and losses of every
    item against a fixed anchor of strength 1 (theta = 0), so an item that
    won (or lost) every comparison still gets a finite strength, and an item
    nobody compared sits near 0. Each iteration is an MM step followed by the
    exact best common shift, so the penalised likelihood never decreases.
    """
    win = np.asarray(winners).astype(np.int64, copy=False).ravel()
    lose = np.asarray(losers).astype(np.int64, copy=False).ravel()
    w = np.ones(win.shape) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if not (win.shape == lose.shape == w.shape):
        raise ValueError("winners, losers and weights must have the same length")
    if np.any(w < 0):
        raise ValueError("weights must be non-negative")
    if prior <= 0:
        raise ValueError("prior must be positive so strengths stay finite")
    wins = np.bincount(win, weights=w, minlength=n_items) + prior
    games = np.zeros((n_items, n_items))
    np.add.at(games, (win, lose), w)
    games = games + games.T
    theta = np.zeros(n_items)
    for _ in range(iters):
        p = np.exp(theta)
        denominator = (games / (p[:, None] + p[None, :])).sum(axis=1) + 2.0 * prior / (p + 1.0)
        new_theta = np.log(wins / denominator)
        # MM crawls along the common shift, which only the weak anchor pins
        # down; the comparisons don't depend on it, so maximise over the
        # shift exactly: sum_i sigmoid(theta_i + c) = n_items / 2.
        shift = 0.0
        for _ in range(20):
            q = _sigmoid(new_theta + shift)
            step = (q.sum() - 0.5 * n_items) / max(float((q * (1 - q)).sum()), 1e-300)
            shift -= step
            if abs(step) < 1e-15:
                break
        new_theta += shift
        done = np.max(np.abs(new_theta - theta)) < tol
        theta = new_theta
        if done:
            break
    return theta


# --- Proportions with small samples ----------------------------------------


def wilson_lower_bound(successes: npt.ArrayLike, n: npt.ArrayLike, z: float = 1.96) -> np.ndarray:
    """Lower bound of the Wilson score interval for a proportion; 0 where n = 0.

    Used for gold accuracy: ten right out of ten is not the same evidence as
    a thousand out of a thousand, and the bound says so.
    """
    k = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    if np.any(k < 0) or np.any(k > m):
        raise ValueError("need 0 <= successes <= n")
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / m
        z2 = z * z
        centre = p + z2 / (2 * m)
        margin = z * np.sqrt(p * (1 - p) / m + z2 / (4 * m * m))
        bound = (centre - margin) / (1 + z2 / m)
    return np.where(m > 0, np.clip(bound, 0.0, 1.0), 0.0)
