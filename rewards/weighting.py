"""Epoch reward maths: quality, stake weighting and the exact budget split.

Pure functions over NumPy arrays with no Django import, so settlement can be
tested with hypothesis and benchmarked at 100k experts. The formulas are the
ones in DESIGN.md, "Rewards (stake-weighted, agreement-gated)"; each function
says why it has the shape it has.

Floats are used only for *weights* (relative shares). Money never passes
through a float: `split_budget` turns the float weights into exact integers
and divides the integer budget with integer arithmetic, so the payouts and
the dust add up to the budget exactly, whatever its size.
"""

from __future__ import annotations

import datetime as dt
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Hashable, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "WILSON_Z_95",
    "EpochMath",
    "chance_corrected_agreement",
    "data_value_multiplier",
    "raw_quality",
    "reward_weights",
    "settle_epoch_math",
    "shrunk_quality",
    "split_budget",
    "stake_multiplier",
    "time_weighted_stake",
    "time_weighted_stakes",
    "wilson_lower_bound",
]

#: Two-sided 95% normal quantile, the z of the Wilson bounds used for gold.
WILSON_Z_95 = 1.959963984540054

K = TypeVar("K", bound=Hashable)


def _as_float_array(name: str, values: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def _check_range(name: str, arr: np.ndarray, lo: float, hi: float | None = None) -> None:
    if np.any(arr < lo) or (hi is not None and np.any(arr > hi)):
        bounds = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be {bounds}")


# --------------------------------------------------------------------------
# Quality
# --------------------------------------------------------------------------


def chance_corrected_agreement(
    matches: npt.ArrayLike,
    n_compared: npt.ArrayLike,
    f_rater: npt.ArrayLike,
    f_consensus: npt.ArrayLike,
) -> np.ndarray:
    """a_i = clip(0.5 + B_i - P_i, 0, 1), the herding-proof agreement score.

    Plain agreement with the consensus pays for herding: a rater who always
    answers "A" agrees whenever the consensus is "A". Following
    Dasgupta-Ghosh / correlated agreement, we subtract what the rater's and
    the consensus's answer frequencies alone would produce:

    - B_i = matches / n_compared, the share of i's pair directions that match
      the leave-one-out consensus on the same tasks;
    - P_i = f_i f_c + (1 - f_i)(1 - f_c), the agreement expected by chance,
      with f_i and f_c the frequencies of one direction (say "first response
      better") for the rater and for the consensus on *other* tasks.

    A constant or random rater then scores about 0.5, an informative rater
    above it, an adversarial one below. Raters with n_compared == 0 carry no
    evidence and get the neutral 0.5. Inputs broadcast; output is float64.
    """
    matches_a = _as_float_array("matches", matches)
    n_a = _as_float_array("n_compared", n_compared)
    f_i = _as_float_array("f_rater", f_rater)
    f_c = _as_float_array("f_consensus", f_consensus)
    _check_range("n_compared", n_a, 0.0)
    _check_range("f_rater", f_i, 0.0, 1.0)
    _check_range("f_consensus", f_c, 0.0, 1.0)
    if np.any(matches_a < 0) or np.any(matches_a > n_a):
        raise ValueError("matches must lie in [0, n_compared]")
    matches_a, n_a, f_i, f_c = np.broadcast_arrays(matches_a, n_a, f_i, f_c)
    observed = np.divide(matches_a, n_a, out=np.zeros(n_a.shape), where=n_a > 0)
    expected = f_i * f_c + (1.0 - f_i) * (1.0 - f_c)
    score = np.clip(0.5 + observed - expected, 0.0, 1.0)
    return np.where(n_a > 0, score, 0.5)


def wilson_lower_bound(
    successes: npt.ArrayLike, n: npt.ArrayLike, z: float = WILSON_Z_95
) -> np.ndarray:
    """Wilson score lower bound of a binomial proportion (0 where n == 0).

    Used for gold accuracy because 5/5 correct is weaker evidence than
    95/100: the raw ratio would rank the lucky newcomer first, the Wilson
    bound does not, and unlike the normal approximation it stays in [0, 1].
    """
    k = _as_float_array("successes", successes)
    n_a = _as_float_array("n", n)
    _check_range("n", n_a, 0.0)
    if np.any(k < 0) or np.any(k > n_a):
        raise ValueError("successes must lie in [0, n]")
    k, n_a = np.broadcast_arrays(k, n_a)
    safe_n = np.where(n_a > 0, n_a, 1.0)
    p = k / safe_n
    z2 = z * z
    centre = p + z2 / (2.0 * safe_n)
    margin = z * np.sqrt(p * (1.0 - p) / safe_n + z2 / (4.0 * safe_n * safe_n))
    lower = (centre - margin) / (1.0 + z2 / safe_n)
    return np.where(n_a > 0, np.clip(lower, 0.0, 1.0), 0.0)


def raw_quality(
    a: npt.ArrayLike,
    gold_correct: npt.ArrayLike,
    gold_n: npt.ArrayLike,
    min_gold: int = 5,
) -> np.ndarray:
    """raw = 0.5 a + 0.5 g with at least `min_gold` gold answers, else a.

    Gold answers are ground truth that herding cannot game, so they get half
    the say once there are enough of them; g is the Wilson 95% lower bound,
    so a handful of lucky gold answers cannot lift a rater much. Below
    `min_gold` the bound is too loose to be fair and agreement alone counts.
    """
    a_arr = _as_float_array("a", a)
    _check_range("a", a_arr, 0.0, 1.0)
    gold_n_arr = _as_float_array("gold_n", gold_n)
    g = wilson_lower_bound(gold_correct, gold_n_arr)
    a_arr, g, gold_n_arr = np.broadcast_arrays(a_arr, g, gold_n_arr)
    return np.where(gold_n_arr >= min_gold, 0.5 * a_arr + 0.5 * g, a_arr)


def shrunk_quality(
    raw: npt.ArrayLike, n: npt.ArrayLike, q0: float = 0.5, m: float = 10.0
) -> np.ndarray:
    """q = (raw n + q0 m) / (n + m): shrink small samples toward the prior q0.

    An expert with three judgments that happened to agree should not out-earn
    a steady expert with three hundred; the prior counts as `m` pseudo
    judgments of quality `q0` (0.5 = no better than chance, which the q_min
    gate pays nothing for). With n + m == 0 there is no evidence and q0 is
    returned.
    """
    raw_arr = _as_float_array("raw", raw)
    n_arr = _as_float_array("n", n)
    _check_range("raw", raw_arr, 0.0, 1.0)
    _check_range("n", n_arr, 0.0)
    if not (0.0 <= q0 <= 1.0) or m < 0:
        raise ValueError("q0 must be in [0, 1] and m >= 0")
    raw_arr, n_arr = np.broadcast_arrays(raw_arr, n_arr)
    denom = n_arr + m
    safe = np.where(denom > 0, denom, 1.0)
    return np.where(denom > 0, (raw_arr * n_arr + q0 * m) / safe, q0)


# --------------------------------------------------------------------------
# Stake
# --------------------------------------------------------------------------


def _span(start: Any, end: Any) -> int | float:
    """Length of [start, end): exact microseconds for datetimes, else end - start."""
    delta = end - start
    if isinstance(delta, dt.timedelta):
        return delta // dt.timedelta(microseconds=1)
    return delta


def time_weighted_stake(events: Iterable[tuple[Any, int]], start: Any, end: Any) -> float:
    """Time-weighted average bonded stake of one expert over [start, end).

    `events` are (timestamp, new bonded amount) pairs: each sets the bonded
    amount from its timestamp on. Events at or before `start` only set the
    opening amount (0 if there are none), events at or after `end` are
    ignored, and events sharing a timestamp apply in the order given.
    Timestamps may be numbers (e.g. Unix seconds) or datetimes; amounts are
    integer base units.

    Averaging over time, rather than reading the stake at settlement, stops
    an expert from bonding just before the epoch closes to collect the stake
    bonus and unbonding right after. The stake-seconds integral is summed in
    Python integers (exact microseconds for datetimes), so only the final
    division rounds; a float is fine there because the result is a weight.
    """
    total = _span(start, end)
    if not total > 0:
        raise ValueError("epoch must satisfy start < end")
    ordered = sorted(events, key=lambda event: event[0])
    amount = 0
    cursor = start
    integral: int | float = 0
    for timestamp, new_amount in ordered:
        if isinstance(new_amount, bool) or not isinstance(new_amount, numbers.Integral):
            raise ValueError(f"stake amounts must be integer base units, got {new_amount!r}")
        if new_amount < 0:
            raise ValueError("stake amounts must be >= 0")
        if timestamp <= start:
            amount = int(new_amount)
            continue
        if timestamp >= end:
            break
        integral += amount * _span(cursor, timestamp)
        cursor = timestamp
        amount = int(new_amount)
    integral += amount * _span(cursor, end)
    return integral / total


def time_weighted_stakes(
    events_by_expert: Mapping[K, Iterable[tuple[Any, int]]], start: Any, end: Any
) -> dict[K, float]:
    """`time_weighted_stake` for many experts, keyed as the input is."""
    return {
        key: time_weighted_stake(events, start, end)
        for key, events in events_by_expert.items()
    }


def stake_multiplier(s: npt.ArrayLike, *, s_half: float, beta: float = 1.0) -> np.ndarray:
    """g(s) = 1 + beta s / (s + s_half): a bonus that saturates at (1 + beta)x.

    Stake is skin in the game (it can be slashed), so it earns a bonus, but a
    bounded one: a whale gets at most (1 + beta) times an unstaked expert's
    reward for the same work, and the bonus is half-way at s = s_half (the
    campaign's minimum stake by default). Because g is concave and
    increasing, splitting one stake over several accounts never raises the
    total multiplier-weighted work.

    s_half <= 0 means the campaign has no stake reference (e.g. a minimum
    stake of 0). The formula's limit there would give the full bonus for any
    dust stake, which rewards nothing, so stake weighting is switched off
    instead: g == 1 for everyone.
    """
    s_arr = _as_float_array("s", s)
    _check_range("s", s_arr, 0.0)
    if not np.isfinite(beta) or beta < 0:
        raise ValueError("beta must be finite and >= 0")
    if not np.isfinite(s_half):
        raise ValueError("s_half must be finite")
    if s_half <= 0:
        return np.ones_like(s_arr)
    return 1.0 + beta * (s_arr / (s_arr + s_half))


def reward_weights(
    n: npt.ArrayLike,
    q: npt.ArrayLike,
    s: npt.ArrayLike,
    *,
    s_half: float,
    q_min: float = 0.5,
    beta: float = 1.0,
) -> np.ndarray:
    """w = n * max(0, q - q_min) / (1 - q_min) * g(s).

    Linear in accepted work n, so splitting an account splits its weight;
    zero at or below q_min (0.5 = chance), so herding and noise earn nothing
    and a mediocre rater earns less than in proportion to volume; scaled by
    the saturating stake bonus g.
    """
    n_arr = _as_float_array("n", n)
    q_arr = _as_float_array("q", q)
    _check_range("n", n_arr, 0.0)
    _check_range("q", q_arr, 0.0, 1.0)
    if not (0.0 <= q_min < 1.0):
        raise ValueError("q_min must be in [0, 1)")
    g = stake_multiplier(s, s_half=s_half, beta=beta)
    excess = np.maximum(q_arr - q_min, 0.0) / (1.0 - q_min)
    return n_arr * excess * g


# --------------------------------------------------------------------------
# Data value
# --------------------------------------------------------------------------


def data_value_multiplier(values: npt.ArrayLike, *, cap: float = 2.0) -> np.ndarray:
    """m_i = clip(v_i / mean(v > 0), 0, cap); NaN (not valued yet) -> 1; no positive value at all -> all 1.

    ``v_i`` is a rater's data value *per pair judgment* (the KNN-Shapley
    value of their pairs, averaged), not their total: the reward weight is
    already linear in the work n_i, and a total would pay volume twice.
    Dividing by the mean of the positive values makes the multiplier
    scale-free (KNN-Shapley values shrink as a campaign grows) and gives the
    average useful rater 1, so switching it on moves money between raters
    rather than shrinking everyone's weight. Negative values (judgments that
    hurt the probe's validation accuracy) and zero earn nothing; the cap
    bounds what one rater can gain from an outlying value. A rater the job
    has not valued yet is neutral (1): the multiplier should reward value
    found, not punish a computation that has not run. If no rater has a
    positive value, the values carry no signal and everyone gets 1.
    """
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(cap) or cap < 1.0:
        raise ValueError("cap must be finite and >= 1")
    if np.any(np.isinf(v)):
        raise ValueError("values must be finite or NaN")
    valued = ~np.isnan(v)
    positive = v[valued & (v > 0)]
    if positive.size == 0:
        return np.ones_like(v)
    scaled = np.clip(np.where(valued, v, 0.0) / positive.mean(), 0.0, cap)
    return np.where(valued, scaled, 1.0)


# --------------------------------------------------------------------------
# Budget split
# --------------------------------------------------------------------------


def _exact_integer_weights(weights: np.ndarray) -> list[int]:
    """Scale float weights to integers with *exactly* the same ratios.

    Every finite double is m * 2**e with an integer 53-bit mantissa m, so
    shifting each mantissa left by (e - smallest e) gives integers that are
    the weights times one common power of two: no rounding at all, unlike a
    fixed decimal denominator, which would round tiny weights to zero and
    break ties differently from the weights themselves.
    """
    mantissa, exponent = np.frexp(weights)
    ints = (mantissa * float(2**53)).astype(np.int64)  # exact: |m| < 1
    exps = exponent.astype(np.int64) - 53
    positive = ints > 0
    if not positive.any():
        return [0] * len(weights)
    base = int(exps[positive].min())
    return [
        (int(i) << (int(e) - base)) if i > 0 else 0
        for i, e in zip(ints.tolist(), exps.tolist())
    ]


def split_budget(budget: int, weights: npt.ArrayLike) -> tuple[list[int], int]:
    """Split an integer budget by weight: payout_i = floor(B w_i / sum w).

    Returns (payouts, dust) with sum(payouts) + dust == budget exactly. The
    dust, which is less than the number of experts with a positive weight,
    goes to the treasury so that the epoch's ledger entries sum to B.

    Budgets are integer base units and may exceed 2**53 (1e18 and beyond),
    where float arithmetic would lose units, so the float weights are first
    converted to integers with exactly the same ratios
    (`_exact_integer_weights`) and each share is one Python-integer floor
    division. Payouts are Python ints (a list) for the same reason: int64
    would overflow above ~9.2e18 base units.

    If every weight is zero nobody earned anything: all payouts are 0 and
    the whole budget is returned as dust (the caller decides whether that
    goes to the treasury or stays in escrow for the next epoch).
    """
    if isinstance(budget, bool) or not isinstance(budget, numbers.Integral):
        raise ValueError(f"budget must be an integer number of base units, got {budget!r}")
    budget = int(budget)
    if budget < 0:
        raise ValueError("budget must be >= 0")
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1:
        raise ValueError("weights must be one-dimensional")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and >= 0")
    scaled = _exact_integer_weights(w)
    total = sum(scaled)
    if total == 0:
        return [0] * len(scaled), budget
    payouts = [budget * x // total for x in scaled]
    return payouts, budget - sum(payouts)


# --------------------------------------------------------------------------
# Whole epoch
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class EpochMath:
    """Per-expert intermediate figures and the result of one epoch's maths.

    Kept whole (not just payouts) so settlement can store and show each
    expert why they earned what they did.
    """

    agreement: np.ndarray
    raw_quality: np.ndarray
    quality: np.ndarray
    stake_multiplier: np.ndarray
    weight: np.ndarray
    payouts: list[int]
    dust: int
    value_factor: np.ndarray | None = None


def settle_epoch_math(
    *,
    budget: int,
    n: npt.ArrayLike,
    matches: npt.ArrayLike,
    n_compared: npt.ArrayLike,
    f_rater: npt.ArrayLike,
    f_consensus: npt.ArrayLike,
    gold_correct: npt.ArrayLike,
    gold_n: npt.ArrayLike,
    stake: npt.ArrayLike,
    s_half: float,
    q_min: float = 0.5,
    beta: float = 1.0,
    q0: float = 0.5,
    m: float = 10.0,
    min_gold: int = 5,
    value_factor: npt.ArrayLike | None = None,
) -> EpochMath:
    """Chain agreement -> raw -> shrunk quality -> weight -> exact split.

    All per-expert arrays are aligned (one entry per expert). `n` is the
    count of accepted judgments; `stake` the time-weighted bonded stake
    (see `time_weighted_stake`). Parameters default to DESIGN.md's values;
    `s_half` is the campaign's minimum stake unless configured otherwise.
    `value_factor`, when given, multiplies each weight (the data-value
    multiplier, see `data_value_multiplier`); None leaves the weights as
    DESIGN.md defines them.
    """
    agreement = chance_corrected_agreement(matches, n_compared, f_rater, f_consensus)
    raw = raw_quality(agreement, gold_correct, gold_n, min_gold=min_gold)
    quality = shrunk_quality(raw, n, q0=q0, m=m)
    multiplier = stake_multiplier(stake, s_half=s_half, beta=beta)
    weight = reward_weights(n, quality, stake, s_half=s_half, q_min=q_min, beta=beta)
    factor = None
    if value_factor is not None:
        factor = _as_float_array("value_factor", value_factor)
        _check_range("value_factor", factor, 0.0)
        weight = weight * factor
    payouts, dust = split_budget(budget, np.atleast_1d(weight))
    return EpochMath(
        agreement=agreement,
        raw_quality=raw,
        quality=quality,
        stake_multiplier=multiplier,
        weight=weight,
        payouts=payouts,
        dust=dust,
        value_factor=factor,
    )
