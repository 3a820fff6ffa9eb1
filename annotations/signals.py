"""Signals that put an expert (or a pair of experts) in front of a moderator.

Each signal is a statistic with a threshold, computed for every rater (or
co-rating pair) at once from flat per-judgment arrays, and returned as
arrays plus a boolean ``flagged``. A flag is a reason to look, not a verdict:
moderators see the statistic beside it. Pure NumPy/SciPy, no Django.

Thresholds default to the campaign defaults in the design; they are
parameters so a campaign can tune them.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import numpy.typing as npt
from scipy import stats

from annotations.consensus import wilson_lower_bound
from annotations.rater_agreement import corated_pairs

# 1.4826 * MAD estimates the standard deviation of normal data.
_MAD_TO_SD = 1.4826

# An empty MinHash bin (no shingle fell in it).
_EMPTY_BIN = np.uint32(0xFFFFFFFF)

# Characters hashed per vectorised step when sketching rationales.
_MINHASH_CHUNK_CHARS = 4_000_000


def _raters(rater_idx: npt.ArrayLike, *columns: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    rater = np.asarray(rater_idx).astype(np.int64, copy=False).ravel()
    cols = [np.asarray(c).ravel() for c in columns]
    if any(c.shape != rater.shape for c in cols):
        raise ValueError("every input needs one entry per judgment")
    raters, inverse = np.unique(rater, return_inverse=True)
    return raters, inverse, cols


def _grouped_median(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of ``values`` per group id (nan for an empty group), by one sort."""
    order = np.lexsort((values, group))
    v = values[order]
    counts = np.bincount(group, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    lo = np.minimum(starts + (counts - 1) // 2, max(v.size - 1, 0))
    hi = np.minimum(starts + counts // 2, max(v.size - 1, 0))
    if v.size == 0:
        return np.full(n_groups, np.nan)
    return np.where(counts > 0, (v[lo] + v[hi]) / 2.0, np.nan)


# --- Position bias ---------------------------------------------------------


class PositionBias(NamedTuple):
    rater: np.ndarray
    n: np.ndarray  # judgments with a preference (ties left out by the caller)
    p_first: np.ndarray  # share preferring the response shown first
    z: np.ndarray  # (p_first - 0.5) / sqrt(0.25 / n)
    p_value: np.ndarray  # two-sided exact binomial test of p = 0.5
    flagged: np.ndarray


def position_bias(rater_idx: npt.ArrayLike, chose_first: npt.ArrayLike, z_threshold: float = 4.0) -> PositionBias:
    """Flag raters who prefer whatever is displayed first: ``|z| > z_threshold``.

    Display order is randomised per expert, so an honest rater's ``p_first``
    sits near 0.5 whatever the responses' quality. The p-value equals
    ``scipy.stats.binomtest(k, n, 0.5).pvalue``: for p = 0.5 the two-sided
    test is twice the smaller tail, capped at 1.
    """
    raters, inverse, (first,) = _raters(rater_idx, chose_first)
    n = np.bincount(inverse, minlength=raters.size)
    k = np.bincount(inverse, weights=first.astype(bool), minlength=raters.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_first = np.where(n > 0, k / n, np.nan)
        z = np.where(n > 0, (p_first - 0.5) / np.sqrt(0.25 / n), np.nan)
    p_value = np.minimum(1.0, 2.0 * stats.binom.cdf(np.minimum(k, n - k), n, 0.5))
    return PositionBias(raters, n, p_first, z, p_value, np.abs(np.nan_to_num(z)) > z_threshold)


# --- Speed -----------------------------------------------------------------


class Speed(NamedTuple):
    rater: np.ndarray
    n: np.ndarray  # judgments with a usable time and token count
    median_z: np.ndarray  # the rater's median robust z of log seconds per token
    flagged: np.ndarray


def speed(
    rater_idx: npt.ArrayLike,
    seconds: npt.ArrayLike,
    tokens: npt.ArrayLike,
    z_threshold: float = -3.0,
    min_n: int = 5,
) -> Speed:
    """Flag raters too fast to have read the responses: median robust z below ``z_threshold``.

    Per judgment: ``z = (log(seconds / tokens) - median) / (1.4826 MAD)``
    against the whole campaign (the input), which is robust to the very
    outliers it hunts. Per rater the median z, so one quick judgment on an
    easy task does not flag anyone; ``min_n`` judgments are needed to flag.
    Judgments without a positive time or token count are left out. If the
    campaign's MAD is 0 (half the judgments took the same time per token)
    the mean absolute deviation stands in (times 1.2533, its own factor to
    a standard deviation); if that is 0 too, every z is 0.
    """
    raters, inverse, (secs, toks) = _raters(rater_idx, seconds, tokens)
    secs, toks = secs.astype(np.float64), toks.astype(np.float64)
    usable = (secs > 0) & (toks > 0) & np.isfinite(secs) & np.isfinite(toks)
    log_rate = np.log(secs[usable] / toks[usable])
    if log_rate.size:
        centre = np.median(log_rate)
        scale = _MAD_TO_SD * np.median(np.abs(log_rate - centre))
        if scale == 0:
            scale = 1.2533 * np.mean(np.abs(log_rate - centre))
        z = (log_rate - centre) / scale if scale > 0 else np.zeros_like(log_rate)
    else:
        z = log_rate
    group = inverse[usable]
    n = np.bincount(group, minlength=raters.size)
    median_z = _grouped_median(group, z, raters.size)
    return Speed(raters, n, median_z, (n >= min_n) & (np.nan_to_num(median_z) < z_threshold))


# --- Collusion -------------------------------------------------------------


class Collusion(NamedTuple):
    rater_a: np.ndarray  # rater_a < rater_b
    rater_b: np.ndarray
    n_shared: np.ndarray  # units both rated
    co_errors: np.ndarray  # shared units where both disagree with the consensus
    expected: np.ndarray  # n_shared * e_a * e_b under independence
    z: np.ndarray
    p_value: np.ndarray  # exact one-sided binomial P(X >= co_errors)
    flagged: np.ndarray


def _error_rates(rater_idx: npt.ArrayLike, is_error: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """(rater, is_error, number of raters, each rater's share of errors) from flat per-judgment arrays."""
    rater = np.asarray(rater_idx).astype(np.int64, copy=False).ravel()
    err = np.asarray(is_error).astype(bool).ravel()
    if err.shape != rater.shape:
        raise ValueError("is_error needs one entry per judgment")
    n_raters = int(rater.max()) + 1 if rater.size else 0
    seen = np.bincount(rater, minlength=n_raters)
    with np.errstate(invalid="ignore", divide="ignore"):
        error_rate = np.bincount(rater, weights=err, minlength=n_raters) / seen
    return rater, err, n_raters, error_rate


def collusion(
    rater_idx: npt.ArrayLike,
    unit_idx: npt.ArrayLike,
    is_error: npt.ArrayLike,
    min_shared: int = 10,
    z_threshold: float = 4.0,
    max_p_value: float = 1e-3,
) -> Collusion:
    """Flag pairs of raters who err together far more often than independence predicts.

    ``is_error`` says per judgment (or per pair direction, with ``unit_idx``
    the task's pair) whether it disagrees with the consensus. With each
    rater's overall error rate ``e``, two independent raters sharing ``n``
    units err together about ``n e_a e_b`` times;
    ``z = (co - n e_a e_b) / sqrt(n e_a e_b (1 - e_a e_b))``, flagged above
    ``z_threshold`` with at least ``min_shared`` shared units. Honest experts
    agreeing on the right answer cost nothing here: only shared *errors*
    count. Work is proportional to co-rated pairs. Only pairs with
    ``n_shared >= min_shared`` are returned.

    With few shared units the expected count ``n e_a e_b`` is far below 1
    and the normal approximation behind z is poor: three shared errors in
    ten tasks at 15% error give z = 5.9 though independence produces that
    about once per 800 pairs. So a flag also needs the exact binomial tail
    ``P(X >= co)`` below ``max_p_value``. On 1M synthetic judgments (44k
    pairs sharing >= 10 tasks, errors independent) z alone flagged 183
    pairs, z and p < 1e-3 flagged 12; where 10 planted pairs shared ~75
    tasks and their answers, p < 1e-3 kept 7 of them, the stricter
    3.2e-5 (the normal tail at z = 4) only 1.
    """
    rater, err, n_raters, error_rate = _error_rates(rater_idx, is_error)
    i, j = corated_pairs(rater, unit_idx)
    keys, pair = np.unique(rater[i] * n_raters + rater[j], return_inverse=True)
    n = np.bincount(pair, minlength=keys.size)
    co = np.bincount(pair, weights=err[i] & err[j], minlength=keys.size).astype(np.int64)
    kept = n >= min_shared
    keys, n, co = keys[kept], n[kept], co[kept]
    a, b = keys // max(n_raters, 1), keys % max(n_raters, 1)
    p = error_rate[a] * error_rate[b]
    expected = n * p
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (co - expected) / np.sqrt(expected * (1 - p))
    z = np.where((p > 0) & (p < 1), z, np.nan)
    p_value = stats.binom.sf(co - 1, n, p)
    flagged = (np.nan_to_num(z) > z_threshold) & (p_value < max_p_value)
    return Collusion(a, b, n, co, expected, z, p_value, flagged)


class RingErrors(NamedTuple):
    rater: np.ndarray
    n_corated: np.ndarray  # co-ratings with any other rater
    co_errors: np.ndarray  # of those, co-ratings where both disagree with the consensus
    expected: np.ndarray  # co_errors expected were the rater's errors spread at random over its units
    z: np.ndarray
    p_value: np.ndarray  # normal tail of z
    flagged: np.ndarray


def ring_errors(
    rater_idx: npt.ArrayLike,
    unit_idx: npt.ArrayLike,
    is_error: npt.ArrayLike,
    min_corated: int = 20,
    z_threshold: float = 4.0,
    min_shared_errors: int = 5,
) -> RingErrors:
    """Flag raters whose errors fall on the units where *other raters in general* err.

    Meant for errors against the truth (gold answers) or a consensus; see the quality job.

    :func:`collusion` tests one pair at a time, and a pair of accounts in a
    ring of many shares few units (each has a handful of raters), so no
    single pair carries enough evidence, least of all when the ring is large
    enough to make the consensus itself. Summed over all of a rater's units
    the evidence adds up. Per unit ``u`` of the rater, ``m_u`` is the number
    of *other* raters erring on it; the rater's co-errors are
    ``S = sum_u e_u m_u``. The test is conditional on the others: were the
    rater's ``k`` errors spread at random over its ``n`` co-rated units (its
    errors independent of theirs), ``S`` would have mean ``k mean(m)`` and
    variance ``k (n - k) / (n - 1) var(m)`` (draws without replacement), and
    ``z`` compares ``S`` with that. Conditioning matters: the accounts of a
    ring err together on the same units, so an honest rater who misses one
    such unit shares an error with all of them at once; a test that treats
    those co-errors as independent pairs (``sum e_i e_j`` expected) reads
    that as collusion by the honest rater. Here it counts once, as one unit
    with a large ``m_u``, and honest raters score about zero while a ring's
    members, who err exactly where their fellows do, score high.
    A flag needs ``z`` above ``z_threshold``, ``min_corated`` co-ratings and
    at least ``min_shared_errors`` errors on units where someone else erred
    too (one unlucky miss on a ring's unit is not a pattern).
    """
    rater = np.asarray(rater_idx).astype(np.int64, copy=False).ravel()
    unit = np.asarray(unit_idx).astype(np.int64, copy=False).ravel()
    err = np.asarray(is_error).astype(bool).ravel()
    if not (rater.shape == unit.shape == err.shape):
        raise ValueError("rater_idx, unit_idx and is_error need one entry per judgment")
    n_raters = int(rater.max()) + 1 if rater.size else 0
    n_units = int(unit.max()) + 1 if unit.size else 0
    raters_on = np.bincount(unit, minlength=n_units)[unit]
    others_err = (np.bincount(unit, weights=err, minlength=n_units)[unit] - err).astype(np.float64)
    shared = raters_on > 1  # units with someone to err together with
    r, e, m = rater[shared], err[shared].astype(np.float64), others_err[shared]
    n_corated = np.bincount(rater, weights=raters_on - 1, minlength=n_raters).astype(np.int64)
    n = np.bincount(r, minlength=n_raters).astype(np.float64)
    k = np.bincount(r, weights=e, minlength=n_raters)
    co = np.bincount(r, weights=e * m, minlength=n_raters).round().astype(np.int64)
    shared_errors = np.bincount(r, weights=e * (m > 0), minlength=n_raters)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_m = np.bincount(r, weights=m, minlength=n_raters) / n
        var_m = np.maximum(np.bincount(r, weights=m * m, minlength=n_raters) / n - mean_m**2, 0.0)
        expected = k * mean_m
        variance = k * (n - k) / (n - 1) * var_m
        z = (co - expected) / np.sqrt(variance)
    z = np.where(variance > 0, z, np.nan)
    p_value = stats.norm.sf(np.nan_to_num(z, nan=-np.inf))
    kept = n_corated >= min_corated
    flagged = kept & (np.nan_to_num(z) > z_threshold) & (shared_errors >= min_shared_errors)
    raters = np.flatnonzero(kept)
    return RingErrors(raters, n_corated[kept], co[kept], np.nan_to_num(expected)[kept], z[kept], p_value[kept],
                      flagged[kept])


# --- Copied rationales -----------------------------------------------------


class CopiedRationales(NamedTuple):
    """Candidate pairs of rationales on the same task by different raters."""

    task: np.ndarray
    judgment_a: np.ndarray  # positions in the input arrays
    judgment_b: np.ndarray
    rater_a: np.ndarray
    rater_b: np.ndarray
    similarity: np.ndarray  # exact Jaccard of character shingle sets
    flagged: np.ndarray


def normalise_rationale(text: str) -> str:
    """Casefold and collapse whitespace: re-spacing or re-casing a copy must not hide it."""
    return " ".join(str(text).casefold().split())


def shingles(text: str, size: int = 5) -> set[str]:
    """Character ``size``-grams of the normalised text (the whole text if shorter; none if empty)."""
    t = normalise_rationale(text)
    if not t:
        return set()
    if len(t) <= size:
        return {t}
    return {t[p : p + size] for p in range(len(t) - size + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return float("nan")
    return len(a & b) / len(a | b)


def _mix64(x: np.ndarray) -> np.ndarray:
    """Scramble polynomial hashes (in place) so their top bits pick a bin uniformly."""
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(33)
        x *= np.uint64(0xFF51AFD7ED558CCD)
        x ^= x >> np.uint64(29)
    return x


def _minhash_signatures(texts: Sequence[str], size: int, bins_log2: int, seed: int) -> np.ndarray:
    """One-permutation MinHash: per text, the minimum shingle hash in each of 2^bins_log2 bins.

    Vectorised over the characters of a chunk of texts at once (a polynomial
    hash of ``size`` consecutive code points from shifted slices, then a
    mixer), so a million rationales never go through a per-shingle Python
    loop; chunks keep the temporaries to a few tens of megabytes. Empty bins
    hold ``_EMPTY_BIN``.
    """
    # Inlined normalise_rationale: a function call per text costs a third of this line.
    padded = [" ".join(str(t).casefold().split()) for t in texts]
    lengths_all = np.fromiter(map(len, padded), dtype=np.int64, count=len(padded))
    for k in np.flatnonzero((lengths_all > 0) & (lengths_all < size)).tolist():
        padded[k] += "\x00" * (size - len(padded[k]))  # a short text is one shingle
    lengths_all = np.maximum(lengths_all, np.where(lengths_all > 0, size, 0))
    n_bins = 1 << bins_log2
    shift = np.uint64(64 - bins_log2)
    sig = np.full((len(padded), n_bins), _EMPTY_BIN, dtype=np.uint32)
    ends_all = np.cumsum(lengths_all)
    first = 0
    while first < len(padded):
        # Chunks of about _MINHASH_CHUNK_CHARS characters (at least one text).
        done = int(ends_all[first - 1]) if first else 0
        last = int(np.searchsorted(ends_all, done + _MINHASH_CHUNK_CHARS, side="right"))
        last = min(max(last, first + 1), len(padded))
        lengths = lengths_all[first:last]
        codes = np.frombuffer("".join(padded[first:last]).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        windows = codes.size - size + 1
        if windows > 0:
            h = codes[:windows] + np.uint64(seed)
            with np.errstate(over="ignore"):
                for offset in range(1, size):
                    h *= np.uint64(1_000_003)
                    h += codes[offset : offset + windows]
            h = _mix64(h)
            # A window is a shingle when it starts in a text and ends in the same one.
            text_of = np.repeat(np.arange(last - first), lengths)[:windows]
            ends = np.cumsum(lengths)
            valid = np.arange(windows) + size <= ends[text_of]
            text_of, h = text_of[valid], h[valid]
            block = sig[first:last].reshape(-1)  # a view: rows are contiguous
            # The low 32 bits rank shingles within a bin; the top bits chose it.
            np.minimum.at(block, text_of * n_bins + (h >> shift).astype(np.int64), h.astype(np.uint32))
        first = last
    return sig


def copied_rationales(
    rater_idx: npt.ArrayLike,
    task_idx: npt.ArrayLike,
    rationale: Sequence[str],
    threshold: float = 0.8,
    shingle_size: int = 5,
    bins_log2: int = 6,
    candidate_margin: float = 0.2,
    seed: int = 0,
    chunk_pairs: int = 100_000,
) -> CopiedRationales:
    """Flag rationales on the same task by different raters with shingle Jaccard >= ``threshold``.

    MinHash estimates every same-task pair's Jaccard cheaply; pairs whose
    estimate reaches ``threshold - candidate_margin`` (the estimate's
    standard error with 64 bins is at most about 0.06) get the exact Jaccard
    of their shingle sets, which is what is reported and thresholded. Only
    those candidates are returned. Empty rationales are never compared.
    """
    rater = np.asarray(rater_idx).astype(np.int64, copy=False).ravel()
    task = np.asarray(task_idx).astype(np.int64, copy=False).ravel()
    if len(rationale) != rater.size or task.shape != rater.shape:
        raise ValueError("rater_idx, task_idx and rationale must have the same length")
    i, j = corated_pairs(rater, task)
    sig = _minhash_signatures(rationale, shingle_size, bins_log2, seed)
    empty = _EMPTY_BIN
    keep_i, keep_j = [], []
    for start in range(0, i.size, chunk_pairs):
        a, b = sig[i[start : start + chunk_pairs]], sig[j[start : start + chunk_pairs]]
        filled = (a != empty) | (b != empty)
        same = ((a == b) & (a != empty)).sum(axis=1)
        n_filled = filled.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            estimate = np.where(n_filled > 0, same / n_filled, 0.0)
        hit = estimate >= threshold - candidate_margin
        keep_i.append(i[start : start + chunk_pairs][hit])
        keep_j.append(j[start : start + chunk_pairs][hit])
    ci = np.concatenate(keep_i) if keep_i else np.empty(0, dtype=np.int64)
    cj = np.concatenate(keep_j) if keep_j else np.empty(0, dtype=np.int64)
    cache: dict[int, set[str]] = {}

    def shingle_set(k: int) -> set[str]:
        if k not in cache:
            cache[k] = shingles(rationale[k], shingle_size)
        return cache[k]

    sim = np.fromiter((jaccard(shingle_set(a), shingle_set(b)) for a, b in zip(ci.tolist(), cj.tolist())),
                      dtype=np.float64, count=ci.size)
    return CopiedRationales(task[ci], ci, cj, rater[ci], rater[cj], sim, np.nan_to_num(sim) >= threshold)


# --- Outside expertise and gold --------------------------------------------


class OutsideExpertise(NamedTuple):
    rater: np.ndarray
    n: np.ndarray
    share: np.ndarray  # share of judgments marked "outside my expertise"
    flagged: np.ndarray


def outside_expertise(
    rater_idx: npt.ArrayLike, outside: npt.ArrayLike, max_share: float = 0.3, min_n: int = 10
) -> OutsideExpertise:
    """Flag raters who mark more than ``max_share`` of at least ``min_n`` judgments as outside their expertise.

    They may be in the wrong campaign (a vetting question), and their
    judgments carry less weight in the export.
    """
    raters, inverse, (flag,) = _raters(rater_idx, outside)
    n = np.bincount(inverse, minlength=raters.size)
    k = np.bincount(inverse, weights=flag.astype(bool), minlength=raters.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(n > 0, k / n, np.nan)
    return OutsideExpertise(raters, n, share, (n >= min_n) & (np.nan_to_num(share) > max_share))


class GoldAccuracy(NamedTuple):
    rater: np.ndarray
    n: np.ndarray  # gold answers
    accuracy: np.ndarray
    lower_bound: np.ndarray  # Wilson lower bound of the accuracy
    flagged: np.ndarray
    upper_bound: np.ndarray  # Wilson upper bound: flagged when it is below the bar


def gold_accuracy(
    rater_idx: npt.ArrayLike, correct: npt.ArrayLike, bar: float, min_n: int = 20, z: float = 1.96
) -> GoldAccuracy:
    """Flag raters whose gold accuracy is clearly below ``bar``: its Wilson upper bound under it, 20+ answers.

    The same rule decides slashing (over the person's rolling gold record),
    so it must never catch an honest expert: an honest 65% on 20 gold has a
    lower bound of 0.43 but an upper bound of 0.82, and is not flagged.
    ``min_n`` keeps a handful of unlucky answers from deciding it.
    """
    raters, inverse, (ok,) = _raters(rater_idx, correct)
    n = np.bincount(inverse, minlength=raters.size)
    k = np.bincount(inverse, weights=ok.astype(bool), minlength=raters.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(n > 0, k / n, np.nan)
    bound = wilson_lower_bound(k, n, z=z)
    upper = np.where(n > 0, 1.0 - wilson_lower_bound(n - k, n, z=z), 1.0)
    return GoldAccuracy(raters, n, accuracy, bound, (n >= min_n) & (upper < bar), upper)
