"""Moderation signals catch planted cheaters and leave honest raters alone (no Django needed)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from annotations.signals import (
    collusion,
    copied_rationales,
    gold_accuracy,
    jaccard,
    outside_expertise,
    position_bias,
    ring_errors,
    shingles,
    speed,
)


def flagged_raters(signal) -> set[int]:
    return set(signal.rater[signal.flagged].tolist())


class TestPositionBias:
    def test_first_clicker_is_flagged_and_honest_raters_are_not(self):
        rng = np.random.default_rng(0)
        n = 200
        rater = np.repeat(np.arange(20), n)
        chose_first = rng.random(rater.size) < 0.5
        chose_first[rater == 7] = rng.random(n) < 0.9  # rater 7 clicks whatever is on the left
        got = position_bias(rater, chose_first)
        assert flagged_raters(got) == {7}
        assert got.z[7] > 4 and abs(got.z[0]) < 4

    def test_z_and_p_value_formulas(self):
        rater = np.array([0] * 100 + [1] * 10)
        chose_first = np.array([True] * 70 + [False] * 30 + [True] * 5 + [False] * 5)
        got = position_bias(rater, chose_first)
        assert got.z.tolist() == pytest.approx([(0.7 - 0.5) / np.sqrt(0.25 / 100), 0.0])
        assert got.p_value.tolist() == pytest.approx([binomtest(70, 100).pvalue, 1.0])

    @settings(max_examples=100, deadline=None)
    @given(n=st.integers(1, 400), frac=st.floats(0, 1))
    def test_p_value_matches_scipy_binomtest(self, n, frac):
        k = int(round(frac * n))
        got = position_bias(np.zeros(n, dtype=int), np.arange(n) < k)
        assert got.p_value[0] == pytest.approx(binomtest(k, n, 0.5).pvalue, rel=1e-9, abs=1e-300)


class TestSpeed:
    def test_rater_who_does_not_read_is_flagged(self):
        rng = np.random.default_rng(1)
        rater = np.repeat(np.arange(30), 40)
        tokens = rng.integers(200, 2000, rater.size)
        seconds = tokens * 0.15 * rng.lognormal(0, 0.4, rater.size)
        seconds[rater == 3] = tokens[rater == 3] * 0.15 / 40  # 40x faster than reading pace
        got = speed(rater, seconds, tokens)
        assert flagged_raters(got) == {3}
        assert got.median_z[3] < -3 and abs(got.median_z[4]) < 3

    def test_one_quick_judgment_is_not_enough(self):
        rater = np.array([0] * 20 + [1] * 3)
        seconds = np.r_[np.linspace(50, 150, 20), [0.1, 0.1, 0.1]]
        got = speed(rater, seconds, np.full(23, 100), min_n=5)
        assert not got.flagged.any()
        assert got.median_z[1] < -3

    def test_unusable_times_are_skipped(self):
        got = speed([0, 0, 1, 1], [10, 0, 10, 12], [100, 100, 0, 100])
        assert got.n.tolist() == [1, 1]


def collusion_campaign(seed: int, n_units: int = 3000, n_raters: int = 40, overlap: int = 4):
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), overlap)
    rater = np.argsort(rng.random((n_units, n_raters)), axis=1)[:, :overlap]
    # Raters 0 and 1 work as a team: they take the same tasks and share answers.
    team = rng.random(n_units) < 0.3
    rater[team, 0], rater[team, 1] = 0, 1
    rater[team, 2:] = 2 + np.argsort(rng.random((team.sum(), n_raters - 2)), axis=1)[:, : overlap - 2]
    rater = rater.ravel()
    is_error = rng.random(unit.size) < 0.15
    team_rows = np.repeat(team, overlap)
    is_error[team_rows & (rater == 1)] = is_error[team_rows & (rater == 0)]
    return rater, unit, is_error


class TestCollusion:
    def test_colluding_pair_is_flagged_and_independent_raters_are_not(self):
        rater, unit, is_error = collusion_campaign(2)
        got = collusion(rater, unit, is_error)
        flagged = set(zip(got.rater_a[got.flagged].tolist(), got.rater_b[got.flagged].tolist()))
        assert flagged == {(0, 1)}, f"flagged pairs: {flagged}"
        assert got.n_shared.min() >= 10

    def test_z_formula(self):
        # Two raters share 20 units; each errs on 10 of their 20; they err together on 10.
        rater = np.repeat([[0, 1]], 20, axis=0).ravel()
        unit = np.repeat(np.arange(20), 2)
        is_error = np.repeat(np.arange(20) < 10, 2)
        got = collusion(rater, unit, is_error)
        n, p = 20, 0.25
        assert got.z[0] == pytest.approx((10 - n * p) / np.sqrt(n * p * (1 - p)))
        assert got.expected[0] == pytest.approx(5.0)

    def test_few_shared_tasks_are_not_judged(self):
        rater = np.repeat([[0, 1]], 9, axis=0).ravel()
        got = collusion(rater, np.repeat(np.arange(9), 2), np.ones(18, bool))
        assert got.rater_a.size == 0

    def test_small_counts_need_the_exact_tail_too(self):
        # 2 shared errors in 10 tasks at 10% error each: z = 6.0, yet independence
        # does that for 1 pair in 230 (exact binomial tail 0.0043).
        rater = np.r_[np.repeat([[0, 1]], 10, axis=0).ravel(), np.full(50, 0), np.full(50, 1)]
        unit = np.r_[np.repeat(np.arange(10), 2), np.arange(100, 150), np.arange(200, 250)]
        is_error = np.zeros(rater.size, bool)
        is_error[:4] = True  # units 0 and 1: both wrong
        is_error[20:24] = True
        is_error[70:74] = True  # 6 of 60 errors each overall
        got = collusion(rater, unit, is_error)
        assert got.z[0] == pytest.approx((2 - 0.1) / np.sqrt(0.1 * 0.99))
        assert got.p_value[0] == pytest.approx(1 - 0.99**10 - 10 * 0.01 * 0.99**9)
        assert not got.flagged[0]


class TestCopiedRationales:
    BASE = "Response B cites the 2019 guideline and gives the correct pediatric dose; A omits the weight adjustment."

    def test_copy_with_cosmetic_changes_is_flagged_and_distinct_texts_are_not(self):
        texts = [
            self.BASE,
            "  " + self.BASE.upper().replace(" ", "   "),  # rater 1 copied rater 0
            "A is clearer, but B is right about the interaction with warfarin, which matters more here.",
            "Both are fine; B is shorter and sticks to what the question asked.",
            self.BASE,  # same text but another task: not compared
        ]
        got = copied_rationales([0, 1, 2, 3, 2], [10, 10, 10, 10, 11], texts)
        pairs = set(zip(got.rater_a[got.flagged].tolist(), got.rater_b[got.flagged].tolist()))
        assert pairs == {(0, 1)}
        assert got.similarity[got.flagged].tolist() == [1.0]
        assert got.task[got.flagged].tolist() == [10]

    def test_light_paraphrase_is_caught_and_reported_exactly(self):
        edited = self.BASE.replace("correct", "right").replace("omits", "leaves out")
        got = copied_rationales([0, 1], [1, 1], [self.BASE, edited], threshold=0.6)
        exact = jaccard(shingles(self.BASE), shingles(edited))
        assert 0.6 <= exact < 1
        assert got.similarity.tolist() == pytest.approx([exact])
        assert got.flagged.tolist() == [True]

    def test_many_tasks_only_planted_copies_flagged(self):
        rng = np.random.default_rng(3)
        vocab = [f"w{k}" for k in range(2000)]
        n_tasks, overlap = 300, 5
        task = np.repeat(np.arange(n_tasks), overlap)
        rater = np.concatenate([rng.choice(50, overlap, replace=False) for _ in range(n_tasks)])
        texts = [" ".join(rng.choice(vocab, 25)) for _ in range(task.size)]
        planted = set()
        for t in range(0, n_tasks, 30):  # on every 30th task the second rater copies the first
            a, b = t * overlap, t * overlap + 1
            texts[b] = texts[a]
            planted.add((t, min(rater[a], rater[b]), max(rater[a], rater[b])))
        got = copied_rationales(rater, task, texts)
        found = set(zip(got.task[got.flagged].tolist(), got.rater_a[got.flagged].tolist(), got.rater_b[got.flagged].tolist()))
        assert found == planted

    @settings(max_examples=100, deadline=None)
    @given(text=st.text(min_size=1, max_size=80), other=st.text(max_size=80))
    def test_respaced_copy_of_any_text_is_flagged(self, text, other):
        respaced = "\t " + " \n ".join(text.split()) + "  "
        got = copied_rationales([0, 1, 2], [5, 5, 5], [text, respaced, other])
        copied = set(zip(got.rater_a[got.flagged].tolist(), got.rater_b[got.flagged].tolist()))
        if text.split():
            assert (0, 1) in copied
        else:
            assert (0, 1) not in copied  # blank rationales are never compared
        # Whatever is reported is the exact Jaccard of the two shingle sets.
        texts = [text, respaced, other]
        for a, b, sim in zip(got.judgment_a, got.judgment_b, got.similarity):
            assert sim == pytest.approx(jaccard(shingles(texts[a]), shingles(texts[b])), nan_ok=True)

    def test_empty_and_short_rationales(self):
        got = copied_rationales([0, 1, 2], [1, 1, 1], ["", "", "ok"])
        assert not got.flagged.any()
        assert shingles("ok") == {"ok"} and shingles("   ") == set()


class TestOutsideExpertise:
    def test_share_and_minimum_count(self):
        rater = np.r_[np.full(20, 0), np.full(5, 1), np.full(20, 2)]
        outside = np.r_[np.arange(20) < 8, [True, True, True, False, False], np.arange(20) < 2]
        got = outside_expertise(rater, outside)
        assert got.share.tolist() == pytest.approx([0.4, 0.6, 0.1])
        assert got.flagged.tolist() == [True, False, False]


class TestGoldAccuracy:
    def test_clearly_below_the_bar_flags_only_with_enough_gold(self):
        rater = np.r_[np.full(30, 0), np.full(19, 1), np.full(40, 2)]
        correct = np.r_[np.arange(30) < 12, np.arange(19) < 5, np.arange(40) < 38]
        got = gold_accuracy(rater, correct, bar=0.6)
        assert got.accuracy.tolist() == pytest.approx([0.4, 5 / 19, 0.95])
        assert got.flagged.tolist() == [True, False, False]

    def test_an_honest_record_is_not_flagged_for_a_wide_interval(self):
        # 13/20 = 0.65 observed: the lower bound ~0.43 is under a 0.6 bar, but the upper bound ~0.82 is not, so
        # the record is not *clearly* below the bar (the rule that slashes must spare honest experts).
        got = gold_accuracy(np.zeros(20, int), np.arange(20) < 13, bar=0.6)
        assert got.lower_bound[0] == pytest.approx(0.4329, abs=1e-3)
        assert got.upper_bound[0] == pytest.approx(0.8188, abs=1e-3)
        assert not got.flagged[0]
        # 40% over 60 answers is clearly below.
        assert gold_accuracy(np.zeros(60, int), np.arange(60) < 24, bar=0.6).flagged[0]


class TestRingErrors:
    def test_a_ring_too_large_for_any_pair_to_show_is_flagged_and_honest_raters_are_not(self):
        # 200 gold-like units, 6 raters each, drawn from 12 ring accounts (one shared rule, right half
        # the time) and 10 honest raters (80% right, independently). Each ring pair shares few units.
        rng = np.random.default_rng(7)
        n_units, per_unit = 200, 6
        rater = np.argsort(rng.random((n_units, 22)), axis=1)[:, :per_unit]
        rule_wrong = rng.random(n_units) < 0.5
        ring = rater < 12
        is_error = np.where(ring, rule_wrong[:, None], rng.random((n_units, per_unit)) < 0.2)
        unit = np.repeat(np.arange(n_units), per_unit)
        got = ring_errors(rater.ravel(), unit, is_error.ravel())
        pairs = collusion(rater.ravel(), unit, is_error.ravel())
        by_pairs = set(pairs.rater_a[pairs.flagged].tolist()) | set(pairs.rater_b[pairs.flagged].tolist())
        assert flagged_raters(got) == set(range(12))
        assert len(by_pairs & set(range(12))) <= 8  # one pair at a time, part of the ring goes unseen

    def test_honest_raters_who_miss_a_rings_units_are_not_read_as_a_ring(self):
        # Gold as a campaign sees it: 30 units, each rated by about half of 20 accounts, 12 of them a ring
        # answering by one rule (wrong on half the units), 8 honest raters wrong 25% of the time
        # independently. An honest rater who misses a unit the ring misses shares that error with five or
        # six ring accounts at once; counted as independent pairs (the test before this one), 11% of honest
        # raters scored z > 2. Conditional on where the others err, the honest z is about standard normal.
        rng = np.random.default_rng(5)
        honest_flags, ring_flags = [], []
        for _ in range(80):
            unit, rater = np.nonzero(rng.random((30, 20)) < 0.5)
            rule_wrong = rng.random(30) < 0.5
            is_error = np.where(rater < 12, rule_wrong[unit], rng.random(unit.size) < 0.25)
            got = ring_errors(rater, unit, is_error, min_corated=1, z_threshold=2.0, min_shared_errors=1)
            honest = got.rater >= 12
            honest_flags.extend(got.flagged[honest])
            ring_flags.extend(got.flagged[~honest])
        assert np.mean(honest_flags) <= 0.06
        assert np.mean(ring_flags) >= 0.95

    def test_independent_errors_are_not_flagged(self):
        rater, unit, is_error = collusion_campaign(5)
        independent = is_error.copy()
        independent[:] = np.random.default_rng(1).random(is_error.size) < 0.15
        got = ring_errors(rater, unit, independent)
        assert not got.flagged.any()
        assert got.n_corated.min() >= 20
