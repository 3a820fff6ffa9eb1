"""Epoch reward maths: quality, stake and data-value weighting, and the whole epoch's chain.

Pure functions over NumPy arrays with no Django import, so settlement can be
tested with hypothesis and benchmarked at 100k experts. The formulas are the
ones in DESIGN.md, "Rewards (stake-weighted, agreement-gated)"; each function
says why it has the shape it has. `settle_epoch_math` chains them into one
epoch's payouts.

Floats are used only for *weights* (relative shares). Money never passes
through a float: the exact integer split of the budget lives in
``rewards.splitting`` (`split_budget`, `earned_budget`, `split_with_holds`),
re-exported here so callers find all of the pay maths in one place.
"""

from __future__ import annotations

import datetime as dt
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Hashable, TypeVar

import numpy as np
import numpy.typing as npt

from rewards.splitting import earned_budget, split_budget, split_with_holds

__all__ = [
    "WILSON_Z_95",
    "EpochMath",
    "chance_corrected_agreement",
    "data_value_multiplier",
    "earned_budget",
    "blended_quality",
    "paid_quality",
    "reward_weights",
    "settle_epoch_math",
    "smoothed_accuracy",
    "split_budget",
    "stake_multiplier",
    "time_weighted_stake",
    "time_weighted_stakes",
    "wilson_lower_bound",
    "wilson_upper_bound",
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


def wilson_upper_bound(
    successes: npt.ArrayLike, n: npt.ArrayLike, z: float = WILSON_Z_95
) -> np.ndarray:
    """Wilson score upper bound of a binomial proportion (1 where n == 0).

    Slashing takes stake, so it needs gold accuracy *clearly* below the bar:
    the whole interval under it, not just its lower end (an honest 70% rater
    with 20 gold answers has a lower bound of 0.48 and must not be slashed).
    """
    k = _as_float_array("successes", successes)
    n_a = _as_float_array("n", n)
    _check_range("n", n_a, 0.0)
    if np.any(k < 0) or np.any(k > n_a):
        raise ValueError("successes must lie in [0, n]")
    k, n_a = np.broadcast_arrays(k, n_a)
    # The upper bound of p is one minus the lower bound of the failure rate.
    return np.where(n_a > 0, 1.0 - wilson_lower_bound(n_a - k, n_a, z=z), 1.0)


def smoothed_accuracy(correct: npt.ArrayLike, n: npt.ArrayLike) -> np.ndarray:
    """(c + 1) / (n + 2): Laplace's rule of succession, 0.5 with no answers.

    Gold accuracy used as a *value* (not a test): a point estimate that
    neither rewards nor punishes answering gold. The Wilson lower bound is a
    test statistic; used as an accuracy it made 5/5 gold worth less than no
    gold at all.
    """
    c = _as_float_array("correct", correct)
    n_a = _as_float_array("n", n)
    _check_range("n", n_a, 0.0)
    if np.any(c < 0) or np.any(c > n_a):
        raise ValueError("correct must lie in [0, n]")
    return (c + 1.0) / (n_a + 2.0)


def blended_quality(
    agreement: npt.ArrayLike,
    n_compared: npt.ArrayLike,
    gold_correct: npt.ArrayLike,
    gold_n: npt.ArrayLike,
    *,
    gold_weight: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(q, n_eff): agreement and gold pooled by their evidence.

    q = (n_a a + G n_g g) / (n_a + G n_g), with a the chance-corrected
    agreement over n_a compared pair directions and g the smoothed gold
    accuracy over n_g gold answers. Gold's weight grows with the number of
    gold answers, and each gold answer counts G times (default 2) because it
    measures accuracy against the truth, while agreement measures it against
    a consensus that is itself sometimes wrong, and that a ring can sway.
    n_eff = n_a + G n_g is the evidence behind q. No evidence: q = 0.5.
    """
    a = _as_float_array("agreement", agreement)
    n_a = _as_float_array("n_compared", n_compared)
    _check_range("agreement", a, 0.0, 1.0)
    _check_range("n_compared", n_a, 0.0)
    if not np.isfinite(gold_weight) or gold_weight < 0:
        raise ValueError("gold_weight must be finite and >= 0")
    g = smoothed_accuracy(gold_correct, gold_n)
    n_g = _as_float_array("gold_n", gold_n) * gold_weight
    a, n_a, g, n_g = np.broadcast_arrays(a, n_a, g, n_g)
    n_eff = n_a + n_g
    some = n_eff >= 1e-6  # as in paid_quality: less than a millionth of an answer is no evidence
    safe = np.where(some, n_eff, 1.0)
    q = np.where(some, (n_a * a + n_g * g) / safe, 0.5)
    return np.clip(q, 0.0, 1.0), n_eff


#: The skeptical prior of ``paid_quality``: every account starts as if it had this many answers at q_min.
PRIOR_EVIDENCE = 10.0


def paid_quality(q: npt.ArrayLike, n_eff: npt.ArrayLike, *, q_min: float = 0.5, z: float = 1.0,
                 prior: float = PRIOR_EVIDENCE) -> np.ndarray:
    """The quality pay is judged on: q_min + the advantage over q_min that the evidence supports.

    Two steps. First a skeptical prior: ``prior`` answers at q_min join the
    evidence, ``q' = (n_eff q + prior q_min) / (n_eff + prior)``, so an
    account is no better than chance until it shows otherwise, and the
    first few dozen answers earn less than a long record (an account split
    in five carries the prior five times). Then the noise comes out:
    ``(q' - q_min)^2 - z^2 q' (1 - q') / (n_eff + prior)`` is, at z = 1, the
    unbiased estimate of the squared advantage (the square of a noisy
    estimate overstates it by the estimate's variance). Its square root,
    where positive, is the advantage kept: a random clicker's 0.5 plus noise
    keeps nothing unless the noise exceeds z standard errors, and then only
    the excess; an honest 70% rater with a few dozen judgments keeps most of
    its advantage, and more evidence keeps more.
    At or below q_min, or with no evidence, the lesser of q and q_min (it earns nothing).
    """
    q_arr = _as_float_array("q", q)
    n_arr = _as_float_array("n_eff", n_eff)
    _check_range("q", q_arr, 0.0, 1.0)
    _check_range("n_eff", n_arr, 0.0)
    if not np.isfinite(z) or z < 0:
        raise ValueError("z must be finite and >= 0")
    if not (0.0 <= q_min < 1.0):
        raise ValueError("q_min must be in [0, 1)")
    if not np.isfinite(prior) or prior < 0:
        raise ValueError("prior must be finite and >= 0")
    q_arr, n_arr = np.broadcast_arrays(q_arr, n_arr)
    some = n_arr >= 1e-6  # less than a millionth of an answer is no evidence
    total = np.where(some, n_arr + prior, 1.0)
    shrunk = (n_arr * q_arr + prior * q_min) / total
    advantage = shrunk - q_min
    kept = np.sqrt(np.maximum(advantage * advantage - z * z * shrunk * (1.0 - shrunk) / total, 0.0))
    paid = np.where(q_arr > q_min, q_min + kept, q_arr)
    return np.where(some, np.clip(paid, 0.0, 1.0), np.minimum(q_arr, q_min))


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
    """w = n * (max(0, q - q_min) / (1 - q_min))^2 * g(s), q being the paid quality (``paid_quality``).

    Linear in accepted work n, so splitting an account splits its weight;
    zero at or below q_min (0.5 = chance), so herding and noise earn nothing.
    Square in the advantage over chance, as a label's worth is: a rater right
    a fraction q of the time carries information growing with (2q - 1)^2, so
    two 70% labels are worth about a quarter of two 90% ones, and a mediocre
    rater earns less than in proportion to volume. With ``paid_quality``'s
    noise removal, ``n (q - q_min)^2 - z^2 q (1 - q) n / n_eff``: the noise is
    charged once per account, so one person's work split over accounts pays
    it once per account. Scaled by the saturating stake bonus g.
    """
    n_arr = _as_float_array("n", n)
    q_arr = _as_float_array("q", q)
    _check_range("n", n_arr, 0.0)
    _check_range("q", q_arr, 0.0, 1.0)
    if not (0.0 <= q_min < 1.0):
        raise ValueError("q_min must be in [0, 1)")
    g = stake_multiplier(s, s_half=s_half, beta=beta)
    excess = np.maximum(q_arr - q_min, 0.0) / (1.0 - q_min)
    return n_arr * excess * excess * g


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
# Whole epoch
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class EpochMath:
    """Per-expert intermediate figures and the result of one epoch's maths.

    Kept whole (not just payouts) so settlement can store and show each
    expert why they earned what they did.
    """

    agreement: np.ndarray
    quality: np.ndarray  # q: agreement and gold pooled
    evidence: np.ndarray  # n_eff behind q
    quality_low: np.ndarray  # the paid quality (``paid_quality``) pay is judged on
    stake_multiplier: np.ndarray
    weight: np.ndarray
    payouts: list[int]
    dust: int
    budget: int = 0
    value_factor: np.ndarray | None = None


def settle_epoch_math(
    *,
    budget: int | None = None,
    reward_per_judgment: int | None = None,
    available: int | None = None,
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
    gold_weight: float = 2.0,
    z: float = 1.0,
    excluded: npt.ArrayLike | None = None,
    value_factor: npt.ArrayLike | None = None,
    held: npt.ArrayLike | None = None,
) -> EpochMath:
    """Chain agreement -> pooled quality -> paid quality -> weight -> exact split.

    All per-expert arrays are aligned (one entry per expert). `n` is the
    count of accepted judgments of the epoch (what is paid for); `matches`,
    `n_compared`, `f_*` describe agreement with the consensus and the gold
    counts describe the expert's gold record (both may reach back before the
    epoch: see settlement). `stake` is the time-weighted bonded stake (see
    `time_weighted_stake`); `s_half` the stake at which the bonus is half
    way. `excluded` (bool) zeroes the weight of experts who may not earn this
    epoch (slashed). `value_factor`, when given, multiplies each weight (the
    data-value multiplier, see `data_value_multiplier`).

    The budget is either given (`budget`) or earned: `reward_per_judgment`
    for each judgment of an expert with a positive weight, at most
    `available` (see `earned_budget`). With an earned budget, `held` (bool)
    marks experts whose payout a flag holds for a moderator: they are set
    apart (see `split_with_holds`), so a suspected cheater's share never
    lowers the pay of the others.
    """
    agreement = chance_corrected_agreement(matches, n_compared, f_rater, f_consensus)
    quality, evidence = blended_quality(agreement, n_compared, gold_correct, gold_n, gold_weight=gold_weight)
    low = paid_quality(quality, evidence, q_min=q_min, z=z)
    multiplier = stake_multiplier(stake, s_half=s_half, beta=beta)
    weight = reward_weights(n, low, stake, s_half=s_half, q_min=q_min, beta=beta)
    if excluded is not None:
        weight = np.where(np.asarray(excluded, dtype=bool), 0.0, weight)
    factor = None
    if value_factor is not None:
        factor = _as_float_array("value_factor", value_factor)
        _check_range("value_factor", factor, 0.0)
        weight = weight * factor
    if budget is None:
        if reward_per_judgment is None or available is None:
            raise ValueError("give a budget, or reward_per_judgment and available")
        held_mask = np.zeros(np.atleast_1d(weight).shape, dtype=bool) if held is None else np.asarray(held, dtype=bool)
        payouts, dust, budget = split_with_holds(reward_per_judgment, n, np.atleast_1d(weight), held_mask, available)
    else:
        payouts, dust = split_budget(budget, np.atleast_1d(weight))
    return EpochMath(
        agreement=agreement,
        quality=quality,
        evidence=evidence,
        quality_low=low,
        stake_multiplier=multiplier,
        weight=weight,
        payouts=payouts,
        dust=dust,
        budget=int(budget),
        value_factor=factor,
    )
