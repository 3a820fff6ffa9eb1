"""Exact integer splits of an epoch's budget: what each expert is paid, to the base unit.

Pure functions with no Django import, beneath ``rewards.weighting`` (which
turns agreement, gold and stake into weights and calls these to pay them).
Money never passes through a float: `split_budget` turns the float weights
into integers with exactly the same ratios and divides the integer budget
with integer arithmetic, so the payouts and the dust add up to the budget
exactly, whatever its size. `earned_budget` is what the lab pays for an
epoch, and `split_with_holds` sets apart the payouts a moderator must review.
"""

from __future__ import annotations

import numbers

import numpy as np
import numpy.typing as npt

__all__ = [
    "earned_budget",
    "split_budget",
    "split_with_holds",
]


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


def earned_budget(reward_per_judgment: int, n: npt.ArrayLike, weight: npt.ArrayLike, available: int) -> int:
    """What the lab pays for an epoch: the reward for every judgment whose rater earns, at most ``available``.

    Judgments of raters who earn nothing (below the quality bar, slashed)
    are not paid for: their share stays in escrow for the lab instead of
    topping up the other raters' pay, so spam neither costs the lab nor
    dilutes honest pay per judgment.
    """
    for name, value in (("reward_per_judgment", reward_per_judgment), ("available", available)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    n_arr = np.asarray(n, dtype=np.int64)
    earning = np.asarray(weight, dtype=np.float64) > 0
    wanted = int(reward_per_judgment) * int(n_arr[earning].sum())
    return min(wanted, int(available))


def split_with_holds(
    reward_per_judgment: int, n: npt.ArrayLike, weight: npt.ArrayLike, held: npt.ArrayLike, available: int,
) -> tuple[list[int], int, int]:
    """(payouts, dust, budget) of an earned budget where some payouts are held.

    The experts not held share the budget their judgments earn
    (`earned_budget`, `split_budget`) exactly as if the held ones were not
    there. Each held expert's payout is what the same rate per unit of
    weight gives them, so a release later pays them what the others got for
    the same quality. Held payouts come out of what is left of `available`
    (scaled down together if it is short). The budget is what the epoch
    takes from escrow: the two parts, so paid + held + dust == budget.
    """
    w = np.asarray(weight, dtype=np.float64)
    on_hold = np.asarray(held, dtype=bool) & (w > 0)
    clean = np.where(on_hold, 0.0, w)
    clean_budget = earned_budget(reward_per_judgment, n, clean, available)
    payouts, dust = split_budget(clean_budget, clean) if clean.sum() > 0 else ([0] * w.size, clean_budget)
    if not on_hold.any():
        return payouts, dust, clean_budget
    left = int(available) - clean_budget
    if clean.sum() > 0:
        integer = _exact_integer_weights(np.where(on_hold | (clean > 0), w, 0.0))
        clean_total = sum(integer[k] for k in range(w.size) if clean[k] > 0)
        wanted = [clean_budget * integer[k] // clean_total if on_hold[k] else 0 for k in range(w.size)]
        if sum(wanted) > left:
            wanted, _short_dust = split_budget(left, np.where(on_hold, w, 0.0))
            dust += _short_dust
    else:  # everyone who earns is held: what their judgments earn, set apart
        held_budget = earned_budget(reward_per_judgment, n, np.where(on_hold, w, 0.0), left)
        wanted, held_dust = split_budget(held_budget, np.where(on_hold, w, 0.0))
        dust += held_dust
    payouts = [p + h for p, h in zip(payouts, wanted)]
    return payouts, dust, sum(payouts) + dust
