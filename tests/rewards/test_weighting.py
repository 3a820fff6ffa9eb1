"""Properties of the epoch reward maths (DESIGN.md, Rewards section)."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from rewards.weighting import (
    split_with_holds,
    blended_quality,
    chance_corrected_agreement,
    data_value_multiplier,
    earned_budget,
    paid_quality,
    reward_weights,
    settle_epoch_math,
    smoothed_accuracy,
    split_budget,
    stake_multiplier,
    time_weighted_stake,
    time_weighted_stakes,
    wilson_lower_bound,
    wilson_upper_bound,
)

S_HALF = 1_000_000_000  # a campaign minimum stake of 1,000 tokens at 6 decimals

budgets = st.integers(min_value=0, max_value=10**30)
weights_lists = st.lists(
    st.one_of(
        st.just(0.0),
        st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False),
        st.floats(min_value=1e-12, max_value=1e6),
    ),
    min_size=1,
    max_size=60,
)
qualities = st.floats(min_value=0.0, max_value=1.0)
stakes = st.integers(min_value=0, max_value=10**24)
work = st.integers(min_value=0, max_value=100_000)


@st.composite
def experts(draw: st.DrawFn, min_size: int = 1, max_size: int = 30):
    size = draw(st.integers(min_size, max_size))
    n = draw(st.lists(work, min_size=size, max_size=size))
    q = draw(st.lists(qualities, min_size=size, max_size=size))
    s = draw(st.lists(stakes, min_size=size, max_size=size))
    return np.array(n, float), np.array(q, float), np.array(s, float)


# ---------------------------------------------------------------------------
# split_budget: money is conserved exactly
# ---------------------------------------------------------------------------


@settings(max_examples=300)
@given(budget=budgets, weights=weights_lists)
def test_split_conserves_the_budget_exactly(budget: int, weights: list[float]) -> None:
    payouts, dust = split_budget(budget, weights)
    assert all(isinstance(p, int) for p in payouts) and isinstance(dust, int)
    assert sum(payouts) + dust == budget
    assert all(p >= 0 for p in payouts)
    positive = sum(1 for w in weights if w > 0)
    if positive:
        assert 0 <= dust < positive  # each floor loses less than one unit
    else:
        assert dust == budget and payouts == [0] * len(weights)


@settings(max_examples=200)
@given(budget=budgets, weights=weights_lists)
def test_split_is_the_exact_floor_of_the_rational_share(budget: int, weights: list[float]) -> None:
    payouts, _ = split_budget(budget, weights)
    exact = [Fraction(w) for w in weights]  # Fraction(float) is exact
    total = sum(exact)
    assume(total > 0)
    assert payouts == [int(budget * w // total) for w in exact]


def test_split_keeps_every_unit_of_a_large_budget() -> None:
    # 10**18 + 1 is not representable as a float; three equal shares.
    payouts, dust = split_budget(10**18 + 1, [1.0, 1.0, 1.0])
    assert payouts == [333_333_333_333_333_333] * 3
    assert dust == 2
    # A float computation would have paid a share of 10**24 // 3 wrongly.
    payouts, dust = split_budget(10**24, [1.0, 2.0])
    assert payouts == [333_333_333_333_333_333_333_333, 666_666_666_666_666_666_666_666]
    assert dust == 1


def test_dust_goes_to_treasury_and_zero_weights_return_the_budget() -> None:
    assert split_budget(10, [1.0, 1.0, 1.0]) == ([3, 3, 3], 1)
    assert split_budget(10, [0.0, 0.0]) == ([0, 0], 10)
    assert split_budget(0, [1.0]) == ([0], 0)


@pytest.mark.parametrize(
    ("budget", "weights"),
    [(-1, [1.0]), (1.5, [1.0]), (True, [1.0]), (10, [-1.0]), (10, [float("nan")]),
     (10, [float("inf")]), (10, [[1.0]])],
)
def test_split_rejects_bad_input(budget, weights) -> None:
    with pytest.raises(ValueError):
        split_budget(budget, weights)


# ---------------------------------------------------------------------------
# Monotonicity, saturation, gating, splitting
# ---------------------------------------------------------------------------


@settings(max_examples=200)
@given(team=experts(), i=st.integers(0, 29), dq=st.floats(0.0, 1.0), budget=st.integers(10**9, 10**24))
def test_payout_is_non_decreasing_in_quality(team, i, dq, budget) -> None:
    n, q, s = team
    i %= len(n)
    better = q.copy()
    better[i] = min(1.0, q[i] + dq)
    w0 = reward_weights(n, q, s, s_half=S_HALF)
    w1 = reward_weights(n, better, s, s_half=S_HALF)
    assert w1[i] >= w0[i]
    p0, _ = split_budget(budget, w0)
    p1, _ = split_budget(budget, w1)
    assert p1[i] >= p0[i] - 1


@settings(max_examples=200)
@given(team=experts(), i=st.integers(0, 29), extra=stakes, budget=st.integers(10**9, 10**24))
def test_payout_is_non_decreasing_in_stake(team, i, extra, budget) -> None:
    n, q, s = team
    i %= len(n)
    richer = s.copy()
    richer[i] += extra
    w0 = reward_weights(n, q, s, s_half=S_HALF)
    w1 = reward_weights(n, q, richer, s_half=S_HALF)
    assert w1[i] >= w0[i]
    p0, _ = split_budget(budget, w0)
    p1, _ = split_budget(budget, w1)
    assert p1[i] >= p0[i] - 1


@given(s=st.floats(0, 1e30), beta=st.floats(0, 5), s_half=st.floats(1, 1e12))
def test_stake_bonus_is_bounded_by_one_plus_beta(s: float, beta: float, s_half: float) -> None:
    g = float(stake_multiplier(s, s_half=s_half, beta=beta))
    assert 1.0 <= g <= 1.0 + beta


def test_stake_bonus_saturates() -> None:
    g = stake_multiplier([0, S_HALF, 10 * S_HALF, 10**6 * S_HALF], s_half=S_HALF, beta=1.0)
    assert g[0] == 1.0
    assert g[1] == pytest.approx(1.5)  # half-way at s_half
    assert g[2] == pytest.approx(1 + 10 / 11)
    assert 1.999 < g[3] <= 2.0
    # A whale with a million times the reference stake earns < 2x for the same work.
    w = reward_weights([100, 100], [0.9, 0.9], [0, 10**6 * S_HALF], s_half=S_HALF)
    assert 1.999 < w[1] / w[0] <= 2.0
    payouts, _ = split_budget(3 * 10**12, w)
    assert payouts[1] <= 2 * payouts[0] + 1


def test_no_stake_reference_switches_the_bonus_off() -> None:
    for s_half in (0, -5):
        assert np.all(stake_multiplier([0, 1, 10**20], s_half=s_half) == 1.0)
    with pytest.raises(ValueError):
        stake_multiplier([1], s_half=S_HALF, beta=-1)
    with pytest.raises(ValueError):
        stake_multiplier([-1], s_half=S_HALF)


@settings(max_examples=200)
@given(team=experts(), q_min=st.floats(0.0, 0.99), budget=budgets)
def test_quality_at_or_below_q_min_earns_nothing(team, q_min: float, budget: int) -> None:
    n, q, s = team
    w = reward_weights(n, q, s, s_half=S_HALF, q_min=q_min)
    payouts, _ = split_budget(budget, w)
    for qi, wi, pi in zip(q, w, payouts):
        if qi <= q_min:
            assert wi == 0.0 and pi == 0
        assert wi >= 0.0


@settings(max_examples=300)
@given(
    n=st.integers(1, 100_000),
    raw=st.floats(0.0, 1.0),
    s=stakes,
    work_share=st.floats(0.0, 1.0),
    stake_share=st.floats(0.0, 1.0),
    beta=st.floats(0.0, 3.0),
    z=st.floats(0.0, 3.0),
)
def test_splitting_an_account_never_pays_more(n, raw, s, work_share, stake_share, beta, z) -> None:
    """One person as two accounts: the work, its evidence and the stake split; total weight does not grow.

    Each account's quality is judged on its own smaller sample (the noise
    removed is larger over less evidence), as settlement does, so splitting
    also costs credibility.
    """
    n1 = round(n * work_share)
    n2 = n - n1
    s1 = int(s * stake_share)
    s2 = s - s1
    whole_q = paid_quality(raw, n, z=z)
    whole = reward_weights([n], whole_q, [s], s_half=S_HALF, beta=beta)[0]
    parts_q = paid_quality([raw, raw], [n1, n2], z=z)
    parts = reward_weights([n1, n2], parts_q, [s1, s2], s_half=S_HALF, beta=beta)
    assert parts.sum() <= whole * (1 + 1e-12)


def test_half_the_work_and_half_the_stake_twice_pays_less() -> None:
    whole = reward_weights([200], [0.9], [2 * S_HALF], s_half=S_HALF)[0]
    halves = reward_weights([100, 100], [0.9, 0.9], [S_HALF, S_HALF], s_half=S_HALF)
    assert halves.sum() < whole


# ---------------------------------------------------------------------------
# Quality: shrinkage, gold, chance correction
# ---------------------------------------------------------------------------


@given(q=st.floats(0.0, 1.0), n=st.floats(0.0, 1e6), extra=st.floats(1.0, 1e6), q_min=st.floats(0.0, 0.9),
       z=st.floats(0.0, 3.0))
def test_paid_quality_keeps_part_of_the_advantage_and_more_with_evidence(q, n, extra, q_min, z) -> None:
    paid, more = paid_quality([q, q], [n, n + extra], q_min=q_min, z=z)
    if q > q_min:
        assert q_min <= paid <= q + 1e-12  # never above q, never under the bar when q is above it
    else:
        assert paid <= q_min  # no advantage: nothing to keep
    assert paid <= more + 1e-12  # more evidence, less noise to remove


@given(q1=st.floats(0.0, 1.0), q2=st.floats(0.0, 1.0), n=st.floats(0.0, 1e6), z=st.floats(0.0, 3.0))
def test_paid_quality_is_monotone_in_quality(q1: float, q2: float, n: float, z: float) -> None:
    lo, hi = sorted((q1, q2))
    assert paid_quality(lo, n, z=z) <= paid_quality(hi, n, z=z) + 1e-12


def test_paid_quality_removes_exactly_the_noise_after_the_prior() -> None:
    """(paid - q_min)^2 = (q' - q_min)^2 - z^2 q' (1 - q') / (n + prior), q' = q shrunk towards q_min by
    ``prior`` answers: at z = 1 the unbiased squared advantage."""
    q, n = 0.8, 50
    assert float(paid_quality(q, n, z=1.0, prior=0)) == pytest.approx(0.5 + np.sqrt(0.3**2 - 0.16 / 50))
    assert float(paid_quality(q, n, z=0.0, prior=0)) == pytest.approx(q)
    shrunk = (50 * 0.8 + 10 * 0.5) / 60
    assert float(paid_quality(q, n, z=1.0, prior=10)) == pytest.approx(
        0.5 + np.sqrt((shrunk - 0.5) ** 2 - shrunk * (1 - shrunk) / 60))
    assert float(paid_quality(0.5, 0)) == 0.5  # no evidence, no advantage


def test_the_prior_makes_a_split_account_earn_less_than_one_account() -> None:
    """The same work and quality on one account or five: five accounts carry the skeptical prior five
    times, so they earn clearly less (not only the noise's sliver)."""
    one = reward_weights([325], paid_quality(0.76, 400, z=1.15), [0], s_half=S_HALF)[0]
    five = 5 * reward_weights([65], paid_quality(0.76, 80, z=1.15), [0], s_half=S_HALF)[0]
    assert five < 0.9 * one


def test_luck_does_not_pay_a_clicker() -> None:
    """A random clicker's quality is 0.5 plus noise; at 50 pieces of evidence its lucky 84th percentile
    (0.5 + one standard error) keeps no advantage at the default confidence (0.875, z = 1.15); its one-in-twenty
    streak keeps part, and earns under a tenth of an 80% rater, who keeps nearly all of its 0.3. (Averaged over
    clickers, the bench measures about a hundredth: most keep nothing.)"""
    se = np.sqrt(0.25 / 50)
    paid = paid_quality([0.5 + se, 0.5 + 1.645 * se, 0.8], [50, 50, 50], z=1.15)
    assert paid[0] == 0.5
    assert 0.5 < paid[1] < 0.5 + 0.7 * 1.645 * se
    assert paid[2] > 0.5 + 0.8 * 0.3
    w = reward_weights([50, 50, 50], paid, [0, 0, 0], s_half=S_HALF)
    assert w[0] == 0 and w[1] < 0.1 * w[2]


def test_smoothed_accuracy_never_punishes_answering_gold() -> None:
    """With the same agreement, answering gold correctly raises quality; 5/5 is worth more than no gold.

    The Wilson lower bound used as an accuracy made 5/5 gold (0.57) worth less
    than no gold at all."""
    assert smoothed_accuracy([0, 4, 5, 95], [0, 4, 5, 100]).tolist() == pytest.approx([0.5, 5 / 6, 6 / 7, 96 / 102])
    q, n_eff = blended_quality([0.8] * 4, [100] * 4, [0, 4, 5, 95], [0, 4, 5, 100])
    low = paid_quality(q, n_eff)
    assert low[0] < low[1] < low[2]
    assert n_eff.tolist() == [100, 108, 110, 300]


@given(a=st.floats(0.0, 1.0), n_a=st.integers(0, 10_000), correct=st.integers(0, 500), wrong=st.integers(0, 500),
       gw=st.floats(0.0, 10.0))
@example(a=0.0, n_a=0, correct=0, wrong=3, gw=5e-324)  # found by hypothesis: the gold term underflowed
def test_blended_quality_lies_between_its_two_sources(a, n_a, correct, wrong, gw) -> None:
    q, n_eff = blended_quality(a, n_a, correct, correct + wrong, gold_weight=gw)
    g = (correct + 1) / (correct + wrong + 2)
    # Below a millionth of an answer (a gold weight of 5e-324, say) there is no evidence: q is the neutral 0.5.
    assert min(a, g) - 1e-12 <= float(q) <= max(a, g) + 1e-12 or (float(n_eff) < 1e-6 and float(q) == 0.5)
    assert float(n_eff) == pytest.approx(n_a + gw * (correct + wrong))


@given(a=st.floats(0.0, 1.0), n_a=st.integers(1, 10_000), n_g=st.integers(1, 500), right=st.floats(0.0, 1.0))
def test_more_gold_right_never_lowers_quality(a, n_a, n_g, right) -> None:
    c = int(round(right * n_g))
    assume(c < n_g)
    q, n_eff = blended_quality([a, a], [n_a, n_a], [c, c + 1], [n_g, n_g])
    low = paid_quality(q, n_eff)
    assert q[1] >= q[0] and low[1] >= low[0] - 1e-12


def test_wilson_upper_bound_mirrors_the_lower_one() -> None:
    assert float(wilson_upper_bound(14, 20)) > 0.6  # an honest 70% rater is never clearly below 0.6
    assert float(wilson_upper_bound(40, 100)) < 0.6  # 40% over 100 gold is
    assert float(wilson_upper_bound(0, 0)) == 1.0
    assert float(wilson_upper_bound(7, 10)) == pytest.approx(1 - float(wilson_lower_bound(3, 10)))


def test_the_lab_pays_only_for_judgments_that_earn() -> None:
    assert earned_budget(1_000, [10, 20, 30], [0.5, 0.0, 2.0], 10**9) == 40_000
    assert earned_budget(1_000, [10, 20, 30], [0.0, 0.0, 0.0], 10**9) == 0
    assert earned_budget(1_000, [10, 20, 30], [1.0, 1.0, 1.0], 25_000) == 25_000  # at most the escrow
    with pytest.raises(ValueError):
        earned_budget(-1, [1], [1.0], 10)


@given(n=st.integers(1, 10_000), share=st.floats(0.0, 1.0))
def test_wilson_lower_bound_matches_scipy(n: int, share: float) -> None:
    k = round(n * share)
    expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson").low
    assert float(wilson_lower_bound(k, n)) == pytest.approx(expected, abs=1e-9)


def test_wilson_lower_bound_values() -> None:
    lb = wilson_lower_bound([5, 95, 0, 0], [5, 100, 10, 0])
    assert lb[0] == pytest.approx(0.56552, abs=1e-4)  # 5/5 is weak evidence
    assert lb[1] == pytest.approx(0.88825, abs=1e-4)  # 95/100 is strong
    assert lb[2] == 0.0 and lb[3] == 0.0  # no gold answers: no credit


def _simulate(prevalence: float, accuracy: float | None, n_tasks: int, rng: np.random.Generator):
    """One rater against the consensus: (matches, n, f_rater, f_consensus).

    accuracy None is the herder who always answers direction 1 ("A");
    otherwise the rater reports the consensus direction with that
    probability. Frequencies come from a separate set of "other tasks", as
    DESIGN.md prescribes for P_i.
    """

    def answers(consensus: np.ndarray) -> np.ndarray:
        if accuracy is None:
            return np.ones_like(consensus)
        correct = rng.random(consensus.shape) < accuracy
        return np.where(correct, consensus, 1 - consensus)

    consensus = (rng.random(n_tasks) < prevalence).astype(int)
    rater = answers(consensus)
    other_consensus = (rng.random(n_tasks) < prevalence).astype(int)
    other_rater = answers(other_consensus)
    return int((rater == consensus).sum()), n_tasks, other_rater.mean(), other_consensus.mean()


@settings(max_examples=50, deadline=None)
@given(
    prevalence=st.floats(0.1, 0.9),
    accuracy=st.floats(0.8, 0.95),
    seed=st.integers(0, 2**32 - 1),
)
def test_herding_scores_about_one_half_and_honesty_scores_higher(prevalence, accuracy, seed) -> None:
    rng = np.random.default_rng(seed)
    herder = _simulate(prevalence, None, 4000, rng)
    honest = _simulate(prevalence, accuracy, 4000, rng)
    a_herder, a_honest = chance_corrected_agreement(*zip(herder, honest))
    # Plain agreement would pay the herder `prevalence`, up to 0.9.
    assert abs(a_herder - 0.5) < 0.08  # ~5 sampling standard deviations
    assert a_honest > a_herder
    assert a_honest > 0.5


def test_random_rater_scores_about_one_half() -> None:
    rng = np.random.default_rng(1)
    matches, n, f_i, f_c = _simulate(0.7, 0.5, 20_000, rng)
    assert float(chance_corrected_agreement(matches, n, f_i, f_c)) == pytest.approx(0.5, abs=0.03)


def test_agreement_edge_cases() -> None:
    a = chance_corrected_agreement([0, 10, 0], [0, 10, 10], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    assert a[0] == 0.5  # no comparisons: neutral
    assert a[1] == 1.0  # perfect agreement, chance 0.5, clipped at 1
    assert a[2] == 0.0  # always disagreeing: clipped at 0
    with pytest.raises(ValueError):
        chance_corrected_agreement([11], [10], [0.5], [0.5])
    with pytest.raises(ValueError):
        chance_corrected_agreement([1], [10], [1.5], [0.5])


# ---------------------------------------------------------------------------
# Time-weighted stake
# ---------------------------------------------------------------------------


def test_time_weighted_stake_integer_timestamps() -> None:
    # Bonded 100 before the epoch, 300 from t=50 of [0, 100): average 200.
    assert time_weighted_stake([(-10, 100), (50, 300)], 0, 100) == 200.0
    # Events after the epoch end are ignored; events at start set the opening.
    assert time_weighted_stake([(0, 40), (100, 10**9)], 0, 100) == 40.0
    # No events: nothing bonded.
    assert time_weighted_stake([], 0, 100) == 0.0
    # Order of the input does not matter.
    assert time_weighted_stake([(75, 0), (25, 80)], 0, 100) == 40.0


def test_bonding_just_before_settlement_earns_almost_no_stake_weight() -> None:
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=7)
    late = [(end - dt.timedelta(minutes=1), 10**12)]
    s = time_weighted_stake(late, start, end)
    assert s == pytest.approx(10**12 / (7 * 24 * 60))


def test_time_weighted_stake_is_exact_for_huge_amounts() -> None:
    amount = 10**24 + 1
    s = time_weighted_stake([(0, amount)], 0, 3)
    assert s == float(amount)


def test_time_weighted_stakes_per_expert() -> None:
    result = time_weighted_stakes({"a": [(0, 10)], "b": [(5, 10)]}, 0, 10)
    assert result == {"a": 10.0, "b": 5.0}


@pytest.mark.parametrize(
    "events", [[(0, 1.5)], [(0, -1)], [(0, True)]],
)
def test_time_weighted_stake_rejects_non_integer_amounts(events) -> None:
    with pytest.raises(ValueError):
        time_weighted_stake(events, 0, 10)


def test_time_weighted_stake_rejects_empty_epoch() -> None:
    with pytest.raises(ValueError):
        time_weighted_stake([], 10, 10)


@given(
    amounts=st.lists(st.integers(0, 10**20), min_size=1, max_size=10),
    times=st.lists(st.integers(-100, 200), min_size=1, max_size=10),
)
def test_time_weighted_stake_lies_between_min_and_max_in_force(amounts, times) -> None:
    events = list(zip(times, amounts))
    s = time_weighted_stake(events, 0, 100)
    in_force = [a for t, a in events]
    assert min(0, *in_force) <= s <= max(in_force) * (1 + 1e-15)


# ---------------------------------------------------------------------------
# The whole chain
# ---------------------------------------------------------------------------


def test_settle_epoch_math_chains_the_formulas() -> None:
    result = settle_epoch_math(
        budget=1_000_000_000,
        n=[100, 100, 100, 0, 100],
        matches=[90, 60, 100, 0, 90],
        n_compared=[100, 100, 100, 0, 100],
        f_rater=[0.5, 0.5, 1.0, 0.5, 0.5],
        f_consensus=[0.5, 0.5, 1.0, 0.5, 0.5],
        gold_correct=[10, 0, 0, 0, 10],
        gold_n=[10, 0, 0, 0, 10],
        stake=[S_HALF, S_HALF, 10 * S_HALF, 0, S_HALF],
        s_half=S_HALF,
        excluded=[False, False, False, False, True],
    )
    # a = 0.5 + B - P
    assert result.agreement.tolist() == pytest.approx([0.9, 0.6, 0.5, 0.5, 0.9])
    # q pools 100 comparisons at 0.9 with 10 gold (weight 2 each) at 11/12.
    assert result.quality[0] == pytest.approx((100 * 0.9 + 20 * 11 / 12) / 120)
    assert result.evidence.tolist() == [120, 100, 100, 0, 120]
    shrunk = (100 * 0.6 + 10 * 0.5) / 110  # the skeptical prior: 10 answers at q_min
    assert result.quality_low[1] == pytest.approx(0.5 + np.sqrt((shrunk - 0.5) ** 2 - shrunk * (1 - shrunk) / 110))
    # The herder (always agrees with an always-"A" consensus) earns nothing; so does a slashed expert.
    assert result.weight[2] == 0.0 and result.payouts[2] == 0
    assert result.payouts[3] == 0 and result.payouts[4] == 0
    assert result.payouts[0] > result.payouts[1] > 0
    assert sum(result.payouts) + result.dust == 1_000_000_000


def test_an_earned_budget_pays_only_earning_judgments_and_keeps_the_rest() -> None:
    result = settle_epoch_math(
        reward_per_judgment=1_000, available=10**12, n=[100, 100], matches=[90, 50], n_compared=[100, 100],
        f_rater=[0.5, 0.5], f_consensus=[0.5, 0.5], gold_correct=[0, 0], gold_n=[0, 0], stake=[0, 0], s_half=S_HALF,
    )
    assert result.budget == 100_000  # the clicker's 100 judgments are not paid for
    assert result.payouts == [100_000, 0] and result.dust == 0


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), stake=st.integers(0, 10**13))
def test_pay_rises_with_accuracy_and_with_stake_at_most_one_plus_beta(seed: int, stake: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 400))
    accuracies = np.array([0.6, 0.7, 0.8, 0.9])
    common = dict(
        reward_per_judgment=10**6, available=10**15, n=[n] * 5, n_compared=[n] * 5,
        matches=list(np.round(np.r_[accuracies, 0.9] * n).astype(int)), f_rater=[0.5] * 5, f_consensus=[0.5] * 5,
        gold_correct=[0] * 5, gold_n=[0] * 5, s_half=S_HALF,
    )
    result = settle_epoch_math(**common, stake=[stake] * 4 + [10 * stake])
    w = result.weight
    assert np.all(np.diff(w[:4]) >= 0) and w[3] > w[2] > 0  # 0.9 > 0.8 > 0.7 at equal stake
    if stake > 0:
        assert w[3] < w[4] <= 2 * w[3] * (1 + 1e-12)  # ten times the stake: more, at most (1 + beta)x
    assert sum(result.payouts) + result.dust == result.budget


@settings(max_examples=100, deadline=None)
@given(size=st.integers(1, 50), seed=st.integers(0, 2**32 - 1), budget=budgets)
def test_settle_epoch_math_conserves_the_budget(size: int, seed: int, budget: int) -> None:
    rng = np.random.default_rng(seed)
    n_compared = rng.integers(0, 500, size)
    gold_n = rng.integers(0, 30, size)
    result = settle_epoch_math(
        budget=budget,
        n=rng.integers(0, 1000, size),
        matches=rng.integers(0, n_compared + 1),
        n_compared=n_compared,
        f_rater=rng.random(size),
        f_consensus=rng.random(size),
        gold_correct=rng.integers(0, gold_n + 1),
        gold_n=gold_n,
        stake=rng.integers(0, 10**15, size).astype(float),
        s_half=S_HALF,
        excluded=rng.random(size) < 0.1,
    )
    assert sum(result.payouts) + result.dust == budget
    assert min(result.payouts) >= 0
    assert np.all((result.quality >= 0) & (result.quality <= 1))


# --------------------------------------------------------------------------
# Data-value multiplier
# --------------------------------------------------------------------------


def test_data_value_multiplier_normalises_by_the_mean_positive_value_and_clips():
    values = np.array([0.3, 0.1, -0.2, 0.0, np.nan, 2.0])
    # Mean positive value (0.3 + 0.1 + 2.0) / 3 = 0.8.
    factor = data_value_multiplier(values, cap=2.0)
    assert factor == pytest.approx([0.375, 0.125, 0.0, 0.0, 1.0, 2.0])
    # No positive value at all: no signal, everyone neutral.
    assert data_value_multiplier([-0.1, 0.0, np.nan], cap=2.0).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError):
        data_value_multiplier([0.1], cap=0.5)


@given(st.lists(st.floats(min_value=-1e3, max_value=1e3), min_size=1, max_size=50),
       st.floats(min_value=1.0, max_value=10.0))
def test_data_value_multiplier_is_scale_free_and_bounded(values, cap):
    v = np.array(values)
    factor = data_value_multiplier(v, cap=cap)
    assert np.all((factor >= 0) & (factor <= cap))
    assert factor == pytest.approx(data_value_multiplier(v * 1000.0, cap=cap))


def test_the_value_factor_scales_the_weights_and_none_leaves_them():
    common = dict(budget=1_000, n=[10, 10], matches=[10, 10], n_compared=[10, 10], f_rater=[0.5, 0.5],
                  f_consensus=[0.5, 0.5], gold_correct=[0, 0], gold_n=[0, 0], stake=[0, 0], s_half=0.0)
    plain = settle_epoch_math(**common)
    weighted = settle_epoch_math(**common, value_factor=[1.5, 0.5])
    assert plain.payouts == [500, 500] and plain.value_factor is None
    assert weighted.payouts == [750, 250] and weighted.weight == pytest.approx(plain.weight * [1.5, 0.5])


# --------------------------------------------------------------------------
# Held payouts are set apart
# --------------------------------------------------------------------------


@given(
    n=st.lists(st.integers(1, 500), min_size=2, max_size=12),
    seed=st.integers(0, 2**32 - 1),
    reward=st.integers(1, 10**9),
    spare=st.integers(0, 10**12),
)
def test_a_held_payout_never_lowers_the_others_and_the_budget_is_conserved(n, seed, reward, spare) -> None:
    rng = np.random.default_rng(seed)
    weight = np.where(rng.random(len(n)) < 0.2, 0.0, rng.random(len(n)) * 50)
    held = rng.random(len(n)) < 0.4
    clean = np.where(held, 0.0, weight)
    available = reward * int(sum(n)) // 2 + spare
    payouts, dust, budget = split_with_holds(reward, n, weight, held, available)
    alone_payouts, alone_dust, alone_budget = split_with_holds(reward, n, clean, np.zeros(len(n), bool), available)
    assert sum(payouts) + dust == budget <= available
    for k in range(len(n)):
        if not held[k]:  # the experts not held get exactly what they would get without the held ones
            assert payouts[k] == alone_payouts[k]
        if weight[k] == 0:
            assert payouts[k] == 0
    if clean.sum() > 0 and budget < available:  # enough money: a held expert is set the others' rate
        rate = alone_budget / clean.sum()
        for k in np.flatnonzero(held & (weight > 0)).tolist():
            assert payouts[k] == pytest.approx(rate * weight[k], abs=1.0)


def test_a_held_ring_leaves_honest_pay_per_judgment_as_without_it() -> None:
    n = [100, 100, 100, 100]
    weight = np.array([30.0, 30.0, 40.0, 40.0])  # two honest, two held ring accounts that look better
    payouts, dust, budget = split_with_holds(10, n, weight, [False, False, True, True], 10**6)
    assert payouts[:2] == [1000, 1000]  # each honest judgment earns the reward, as if the ring were not there
    assert payouts[2:] == [1333, 1333] and budget == sum(payouts) + dust
