"""Consensus maths on synthetic crowds with a known truth (no Django needed)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotations.consensus import (
    clip_weights,
    dawid_skene_binary,
    majority_vote_binary,
    ranking_to_pairs,
    weighted_bradley_terry,
    weighted_median,
    wilson_lower_bound,
)

N_ITEMS, N_WORKERS, OVERLAP = 2000, 60, 5


def crowd(seed: int, accuracy: np.ndarray, *, always_one: int | None = None, spammers: np.ndarray | None = None):
    """Each item gets OVERLAP distinct workers; worker w is right with probability accuracy[w]."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, N_ITEMS)
    item = np.repeat(np.arange(N_ITEMS), OVERLAP)
    worker = np.argsort(rng.random((N_ITEMS, N_WORKERS)), axis=1)[:, :OVERLAP].ravel()
    label = np.where(rng.random(item.size) < accuracy[worker], truth[item], 1 - truth[item])
    if spammers is not None:
        spam = np.isin(worker, spammers)
        label[spam] = rng.integers(0, 2, spam.sum())
    if always_one is not None:
        label[worker == always_one] = 1
    return truth, item, worker, label


def accuracy_of(posterior: np.ndarray, truth: np.ndarray) -> float:
    return float(((posterior > 0.5) == truth).mean())


class TestRankingToPairs:
    def test_ranking_with_a_tie(self):
        pairs = ranking_to_pairs([2, 1, 2])  # B best, A and C tied behind it
        assert list(zip(pairs.i, pairs.j)) == [(0, 1), (0, 2), (1, 2)]
        assert pairs.direction.tolist() == [-1, 0, 1]
        assert pairs.strength.tolist() == [1, 0, 1]

    def test_rank_gap_is_the_strength(self):
        pairs = ranking_to_pairs([1, 2, 3, 4])
        assert pairs.direction.tolist() == [1] * 6
        assert pairs.strength.tolist() == [1, 2, 3, 1, 2, 1]

    @pytest.mark.parametrize(("strength", "direction", "gap"), [(-3, 1, 3), (-1, 1, 1), (0, 0, 0), (2, -1, 2)])
    def test_explicit_strength_for_two_responses(self, strength, direction, gap):
        # -3 = A much better: the pair (A, B) points to A.
        pairs = ranking_to_pairs([1, 2], strength=strength)
        assert (pairs.direction.item(), pairs.strength.item()) == (direction, gap)

    def test_batch_of_judgments(self):
        pairs = ranking_to_pairs(np.array([[1, 2, 3], [3, 1, 1]]))
        assert pairs.direction.tolist() == [[1, 1, 1], [-1, -1, 0]]
        assert pairs.strength.tolist() == [[1, 2, 1], [2, 2, 0]]

    def test_rejects_out_of_scale_strength(self):
        with pytest.raises(ValueError):
            ranking_to_pairs([1, 2], strength=4)


class TestDawidSkene:
    def test_beats_majority_vote_with_spammers_and_an_always_one_rater(self):
        accuracy = np.full(N_WORKERS, 0.85)
        spammers = np.arange(12)  # 20% answer at random
        truth, item, worker, label = crowd(0, accuracy, always_one=N_WORKERS - 1, spammers=spammers)
        majority = accuracy_of(majority_vote_binary(item, label, N_ITEMS), truth)
        result = dawid_skene_binary(item, worker, label, N_ITEMS, N_WORKERS)
        consensus = accuracy_of(result.posterior, truth)
        assert consensus > majority, f"Dawid-Skene {consensus:.4f} vs majority vote {majority:.4f}"
        assert result.converged
        honest = np.setdiff1d(np.arange(N_WORKERS), np.r_[spammers, N_WORKERS - 1])
        # Reliability separates the crowd: every honest worker above every spammer.
        assert result.worker_accuracy[honest].min() > result.worker_accuracy[spammers].max()
        # The always-"1" rater is seen through: says 1 whatever the truth.
        assert result.sensitivity[-1] > 0.95 and result.specificity[-1] < 0.05

    def test_one_coin_also_beats_majority_vote(self):
        accuracy = np.full(N_WORKERS, 0.85)
        truth, item, worker, label = crowd(1, accuracy, spammers=np.arange(12))
        majority = accuracy_of(majority_vote_binary(item, label, N_ITEMS), truth)
        result = dawid_skene_binary(item, worker, label, N_ITEMS, N_WORKERS, model="one_coin")
        consensus = accuracy_of(result.posterior, truth)
        assert consensus > majority, f"one-coin {consensus:.4f} vs majority vote {majority:.4f}"

    def test_gold_keeps_or_improves_accuracy(self):
        accuracy = np.full(N_WORKERS, 0.85)
        truth, item, worker, label = crowd(2, accuracy, always_one=N_WORKERS - 1, spammers=np.arange(12))
        gold = np.arange(0, N_ITEMS, 20)
        plain = dawid_skene_binary(item, worker, label, N_ITEMS, N_WORKERS)
        seeded = dawid_skene_binary(item, worker, label, N_ITEMS, N_WORKERS, gold_item_idx=gold, gold_label=truth[gold])
        assert accuracy_of(seeded.posterior, truth) >= accuracy_of(plain.posterior, truth)
        # Gold items are clamped to the gold answer.
        assert seeded.posterior[gold].tolist() == truth[gold].astype(float).tolist()

    def test_gold_rescues_a_crowd_whose_majority_is_wrong(self):
        # 60% of workers are mostly wrong: without gold, EM follows the majority
        # to the mirror solution; gold tells it which way round the crowd is.
        accuracy = np.where(np.arange(N_WORKERS) < 36, 0.2, 0.85)
        truth, item, worker, label = crowd(3, accuracy)
        gold = np.arange(0, N_ITEMS, 20)
        rest = np.setdiff1d(np.arange(N_ITEMS), gold)
        plain = dawid_skene_binary(item, worker, label, N_ITEMS, N_WORKERS)
        seeded = dawid_skene_binary(item, worker, label, N_ITEMS, N_WORKERS, gold_item_idx=gold, gold_label=truth[gold])
        assert accuracy_of(plain.posterior[rest], truth[rest]) < 0.5
        assert accuracy_of(seeded.posterior[rest], truth[rest]) > 0.9

    def test_capped_stake_stops_a_wrong_whale_from_dictating(self):
        accuracy = np.full(N_WORKERS, 0.85)
        accuracy[0] = 0.0  # the whale is always wrong
        truth, item, worker, label = crowd(4, accuracy)
        stake = np.ones(N_WORKERS)
        stake[0] = 1e6
        whale_items = np.unique(item[worker == 0])
        uncapped = dawid_skene_binary(item, worker, label, N_ITEMS, N_WORKERS, worker_weight=stake)
        capped = dawid_skene_binary(
            item, worker, label, N_ITEMS, N_WORKERS, worker_weight=stake, worker_weight_cap=2.0
        )
        wrong_uncapped = 1 - accuracy_of(uncapped.posterior[whale_items], truth[whale_items])
        wrong_capped = 1 - accuracy_of(capped.posterior[whale_items], truth[whale_items])
        assert wrong_uncapped > 0.9, "an uncapped whale decides its items"
        assert wrong_capped < 0.1, f"capped whale still decides {wrong_capped:.2%} of its items"

    def test_equal_weights_change_nothing(self):
        truth, item, worker, label = crowd(5, np.full(N_WORKERS, 0.8))
        plain = dawid_skene_binary(item, worker, label, N_ITEMS, N_WORKERS)
        weighted = dawid_skene_binary(item, worker, label, N_ITEMS, N_WORKERS, worker_weight=np.full(N_WORKERS, 7.0))
        np.testing.assert_allclose(weighted.posterior, plain.posterior)

    def test_rejects_ties_and_unlabelled_items_get_the_prior(self):
        with pytest.raises(ValueError):
            dawid_skene_binary([0], [0], [0.5], 1, 1)
        result = dawid_skene_binary([0, 0, 1, 1], [0, 1, 0, 1], [1, 1, 0, 0], 3, 3)
        assert result.posterior[2] == pytest.approx(result.prior)
        assert np.isnan(result.worker_accuracy[2])


class TestClipWeights:
    def test_a_whale_is_bounded_by_factor_times_median(self):
        weights = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 1e6])
        clipped = clip_weights(weights, 3.0)
        assert clipped.max() == 3.0 * 3.0  # lower median of six raters is 3
        np.testing.assert_array_equal(clipped[:5], weights[:5])

    def test_whale_cannot_set_the_median_it_is_clipped_to(self):
        # Were the median stake-weighted, the whale (99.9% of stake) would be the median.
        weights = np.array([1.0] * 9 + [1e4])
        assert clip_weights(weights, 2.0)[-1] == 2.0

    def test_zero_weights_ignored_for_the_median_and_kept(self):
        clipped = clip_weights([0.0, 0.0, 0.0, 2.0, 2.0, 100.0], 1.5)
        assert clipped.tolist() == [0.0, 0.0, 0.0, 2.0, 2.0, 3.0]

    @settings(max_examples=100, deadline=None)
    @given(
        weights=st.lists(st.floats(0, 1e9), min_size=1, max_size=40),
        factor=st.floats(0.5, 10),
    )
    def test_never_exceeds_the_cap_and_never_raises_a_weight(self, weights, factor):
        w = np.array(weights)
        clipped = clip_weights(w, factor)
        assert np.all(clipped <= w)
        if (w > 0).any():
            assert clipped.max() <= factor * weighted_median(w[w > 0]) * (1 + 1e-12)


def simulate_comparisons(strength: np.ndarray, n: int, seed: int):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, strength.size, n)
    b = (a + rng.integers(1, strength.size, n)) % strength.size
    a_wins = rng.random(n) < 1 / (1 + np.exp(strength[b] - strength[a]))
    return np.where(a_wins, a, b), np.where(a_wins, b, a)


class TestBradleyTerry:
    def test_recovers_the_order_of_true_strengths(self):
        strength = np.array([1.5, -0.5, 0.0, 2.5, -1.0])
        winners, losers = simulate_comparisons(strength, 4000, seed=0)
        theta = weighted_bradley_terry(5, winners, losers)
        assert np.argsort(theta).tolist() == np.argsort(strength).tolist()
        np.testing.assert_allclose(theta - theta.mean(), strength - strength.mean(), atol=0.2)

    def test_weight_two_equals_counting_twice(self):
        winners, losers = np.array([0, 1, 2, 0]), np.array([1, 2, 0, 2])
        doubled = weighted_bradley_terry(3, winners, losers, weights=[2, 1, 1, 1])
        repeated = weighted_bradley_terry(3, np.r_[winners, 0], np.r_[losers, 1])
        np.testing.assert_allclose(doubled, repeated, atol=1e-8)

    def test_unbeaten_item_stays_finite_and_on_top(self):
        theta = weighted_bradley_terry(3, [0, 0, 1], [1, 2, 2])
        assert np.all(np.isfinite(theta)) and theta[0] > theta[1] > theta[2]

    def test_a_reliable_rater_outweighs_an_unreliable_one(self):
        # Rater with weight 0.9 says 0 > 1, rater with weight 0.1 says 1 > 0.
        theta = weighted_bradley_terry(2, [0, 1], [1, 0], weights=[0.9, 0.1])
        assert theta[0] > theta[1]

    def test_fixed_point_maximises_the_penalised_likelihood(self):
        winners, losers = simulate_comparisons(np.array([0.3, -0.2, 1.0, 0.0]), 300, seed=1)
        weights = np.random.default_rng(2).uniform(0.2, 1.0, winners.size)
        prior = 0.1
        theta = weighted_bradley_terry(4, winners, losers, weights, prior=prior)
        p = 1 / (1 + np.exp(theta[losers] - theta[winners]))  # P(winner wins)
        grad = np.bincount(winners, weights=weights * (1 - p), minlength=4)
        grad -= np.bincount(losers, weights=weights * (1 - p), minlength=4)
        anchor = 1 / (1 + np.exp(-theta))
        grad += prior * (1 - anchor) - prior * anchor
        np.testing.assert_allclose(grad, 0, atol=1e-8)


class TestWilson:
    def test_known_values(self):
        # 10 of 10 at 95%: (1 + z^2/2n - z sqrt(z^2/4n^2)) / (1 + z^2/n) = 0.7225...
        assert wilson_lower_bound(10, 10).item() == pytest.approx(0.72246, abs=1e-5)
        assert wilson_lower_bound(0, 10).item() == 0.0
        assert wilson_lower_bound(0, 0).item() == 0.0

    def test_vectorised_and_more_evidence_raises_the_bound(self):
        bounds = wilson_lower_bound([9, 90, 900], [10, 100, 1000])
        assert bounds.shape == (3,)
        assert bounds[0] < bounds[1] < bounds[2] < 0.9

    @settings(max_examples=100, deadline=None)
    @given(n=st.integers(1, 10_000), frac=st.floats(0, 1))
    def test_bound_is_below_the_observed_share(self, n, frac):
        k = int(round(frac * n))
        assert 0.0 <= wilson_lower_bound(k, n).item() <= k / n + 1e-12
