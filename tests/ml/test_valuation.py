"""Data value: the Bradley-Terry probe and exact KNN-Shapley for preference pairs."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from datavalue.valuation import (
    BTProbe,
    balanced_orientation,
    bt_probe_accuracy,
    bt_probe_fit,
    knn_shapley,
    knn_utility,
    pair_features,
    pair_values,
)

# --------------------------------------------------------------------------
# Brute force, written independently of the module under test
# --------------------------------------------------------------------------


def brute_utility(subset, train_x, train_y, v, y, k):
    """Share of the K nearest members of ``subset`` labelled ``y`` (divided by K
    even when fewer than K points exist); ties broken by training index."""
    if not subset:
        return 0.0
    ranked = sorted(subset, key=lambda i: (float(np.sum((train_x[i] - v) ** 2)), i))
    return sum(1.0 for i in ranked[:k] if train_y[i] == y) / k


def brute_shapley_subsets(train_x, train_y, val_x, val_y, k):
    """Exact Shapley by enumerating all subsets (weights |S|!(n-|S|-1)!/n!)."""
    n = len(train_x)
    values = np.zeros(n)
    for v, y in zip(val_x, val_y):
        for i in range(n):
            others = [j for j in range(n) if j != i]
            for size in range(n):
                weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                for subset in itertools.combinations(others, size):
                    gain = brute_utility(list(subset) + [i], train_x, train_y, v, y, k) - brute_utility(
                        list(subset), train_x, train_y, v, y, k
                    )
                    values[i] += weight * gain
    return values / len(val_x)


def brute_shapley_permutations(train_x, train_y, val_x, val_y, k):
    """Exact Shapley as the mean marginal gain over all n! arrival orders."""
    n = len(train_x)
    values = np.zeros(n)
    perms = list(itertools.permutations(range(n)))
    for v, y in zip(val_x, val_y):
        for perm in perms:
            before = 0.0
            for position, i in enumerate(perm):
                after = brute_utility(list(perm[: position + 1]), train_x, train_y, v, y, k)
                values[i] += after - before
                before = after
    return values / (len(perms) * len(val_x))


def random_problem(seed, n, m, d=3, classes=2):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n, d)),
        rng.integers(0, classes, size=n),
        rng.normal(size=(m, d)),
        rng.integers(0, classes, size=m),
    )


# --------------------------------------------------------------------------
# KNN-Shapley
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n,k", [(1, 1), (2, 1), (4, 2), (6, 3), (7, 1), (7, 2), (7, 5), (5, 8)])
def test_knn_shapley_equals_exact_enumeration(seed, n, k):
    train_x, train_y, val_x, val_y = random_problem(seed, n, m=3)
    exact = brute_shapley_subsets(train_x, train_y, val_x, val_y, k)
    fast = knn_shapley(train_x, train_y, val_x, val_y, k)
    np.testing.assert_allclose(fast, exact, rtol=0, atol=1e-9)


def test_knn_shapley_equals_permutation_definition():
    # The subset formula above and the n! orders definition agree, and so does
    # the closed form; three classes so that "match" is not just "not the other".
    train_x, train_y, val_x, val_y = random_problem(11, n=6, m=2, classes=3)
    by_orders = brute_shapley_permutations(train_x, train_y, val_x, val_y, k=2)
    np.testing.assert_allclose(knn_shapley(train_x, train_y, val_x, val_y, 2), by_orders, atol=1e-9)


def test_knn_shapley_follows_tie_rule_of_training_index():
    # Duplicated training points are at exactly the same distance: the lower
    # index counts as nearer, in the brute force and in the closed form.
    train_x = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    train_y = np.array([1, 0, 1, 1, 0])
    val_x, val_y = np.array([[0.2, 0.0]]), np.array([1])
    exact = brute_shapley_subsets(train_x, train_y, val_x, val_y, 2)
    np.testing.assert_allclose(knn_shapley(train_x, train_y, val_x, val_y, 2), exact, atol=1e-9)


def test_knn_shapley_values_add_up_to_the_utility_and_chunks_do_not_matter():
    train_x, train_y, val_x, val_y = random_problem(5, n=300, m=57, d=8)
    values = knn_shapley(train_x, train_y, val_x, val_y, k=7)
    # Efficiency: the values share out exactly u(all) - u(empty), with u(empty) = 0.
    assert values.sum() == pytest.approx(knn_utility(train_x, train_y, val_x, val_y, 7), abs=1e-12)
    chunked = knn_shapley(train_x, train_y, val_x, val_y, k=7, chunk_cells=700)  # 2 rows per chunk
    np.testing.assert_allclose(chunked, values, atol=1e-12)


def test_knn_shapley_rewards_correct_neighbours_and_penalises_wrong_ones():
    train_x = np.array([[0.0], [0.1], [5.0]])
    train_y = np.array([1, 0, 1])
    values = knn_shapley(train_x, train_y, np.array([[0.0]]), np.array([1]), k=1)
    assert values[0] > 0 > values[1]
    assert values[2] > 0  # helps only in orders where it arrives before both


def test_knn_shapley_rejects_bad_input():
    with pytest.raises(ValueError):
        knn_shapley(np.zeros((3, 2)), np.zeros(3), np.zeros((1, 3)), np.zeros(1), 1)
    with pytest.raises(ValueError):
        knn_shapley(np.zeros((3, 2)), np.zeros(3), np.zeros((1, 2)), np.zeros(1), 0)
    assert knn_shapley(np.zeros((0, 2)), np.zeros(0), np.zeros((1, 2)), np.zeros(1), 1).shape == (0,)


# --------------------------------------------------------------------------
# Bradley-Terry probe
# --------------------------------------------------------------------------


def synthetic_preferences(seed, n, d=16):
    """Pairs of random 'embeddings' judged by a hidden linear reward, returned
    as chosen minus rejected (so every label is 1, as exports store them)."""
    rng = np.random.default_rng(seed)
    w_true = rng.normal(size=d)
    a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    p_a = 1 / (1 + np.exp(-3 * (a - b) @ w_true / np.linalg.norm(w_true)))
    a_wins = rng.random(n) < p_a
    chosen = np.where(a_wins[:, None], a, b)
    rejected = np.where(a_wins[:, None], b, a)
    return chosen - rejected, np.ones(n, dtype=int), w_true


def test_probe_learns_a_hidden_reward_from_chosen_minus_rejected():
    diffs, labels, w_true = synthetic_preferences(0, 1200)
    probe = bt_probe_fit(diffs[:1000], labels[:1000], l2=1.0)
    assert bt_probe_accuracy(probe, diffs[1000:], labels[1000:]) > 0.8
    cosine = probe.weights @ w_true / np.linalg.norm(probe.weights) / np.linalg.norm(w_true)
    assert cosine > 0.9
    # Reading the pairs the other way round flips every prediction.
    assert bt_probe_accuracy(probe, -diffs[1000:], labels[1000:]) < 0.2


def test_probe_trained_on_noise_stays_at_chance():
    rng = np.random.default_rng(1)
    diffs = rng.normal(size=(1400, 16))
    labels = rng.integers(0, 2, size=1400)
    probe = bt_probe_fit(diffs[:1000], labels[:1000])
    assert 0.4 < bt_probe_accuracy(probe, diffs[1000:], labels[1000:]) < 0.6


def test_probe_matches_scikit_learn_logistic_regression():
    linear_model = pytest.importorskip("sklearn.linear_model", reason="scikit-learn is the reference here")
    diffs, labels, _ = synthetic_preferences(2, 400, d=8)
    for l2 in (0.1, 1.0, 10.0):
        probe = bt_probe_fit(diffs, labels, l2=l2, seed=3)
        x, y = balanced_orientation(diffs, labels, seed=3)
        assert 0.3 < y.mean() < 0.7  # both classes present after the flips
        reference = linear_model.LogisticRegression(C=1 / l2, fit_intercept=False, tol=1e-12, max_iter=10_000)
        reference.fit(x, y)
        np.testing.assert_allclose(probe.weights, reference.coef_[0], rtol=1e-3, atol=1e-4)


def test_probe_accuracy_counts_ties_as_wrong_and_accepts_plus_minus_one():
    probe = BTProbe(weights=np.array([1.0, 0.0]), l2=1.0)
    diffs = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 5.0]])
    assert bt_probe_accuracy(probe, diffs, np.array([1, -1, 1])) == pytest.approx(2 / 3)
    assert bt_probe_accuracy(probe, diffs, np.array([True, True, True])) == pytest.approx(1 / 3)
    assert math.isnan(bt_probe_accuracy(probe, np.zeros((0, 2)), np.zeros(0)))
    with pytest.raises(ValueError):
        bt_probe_accuracy(probe, diffs, np.array([2, 0, 1]))


# --------------------------------------------------------------------------
# Preference pairs and contributors
# --------------------------------------------------------------------------


def test_pair_features_with_and_without_prompt():
    chosen, rejected, prompt = np.ones((2, 3)), np.zeros((2, 3)), np.full((2, 2), 7.0)
    np.testing.assert_array_equal(pair_features(chosen, rejected), np.ones((2, 3)))
    np.testing.assert_array_equal(pair_features(chosen, rejected, prompt)[:, :2], prompt)
    with pytest.raises(ValueError):
        pair_features(chosen, rejected, np.ones((3, 2)))


def test_a_pair_is_worth_the_same_whichever_way_round_it_is_stored():
    rng = np.random.default_rng(4)
    prompt = rng.normal(size=(40, 4))
    a, b = rng.normal(size=(40, 6)), rng.normal(size=(40, 6))
    labels = rng.integers(0, 2, size=40)
    val = pair_features(rng.normal(size=(15, 6)), rng.normal(size=(15, 6)), rng.normal(size=(15, 4)))
    val_labels = rng.integers(0, 2, size=15)
    owners = [f"r{i % 4}" for i in range(40)]

    as_given = pair_values(pair_features(a, b, prompt), labels, owners, val, val_labels, k=3, prompt_dim=4)
    swapped = pair_values(pair_features(b, a, prompt), 1 - labels, owners, val, val_labels, k=3, prompt_dim=4)
    np.testing.assert_allclose(swapped.per_pair, as_given.per_pair, atol=1e-12)


def test_pair_values_sum_and_mean_per_contributor():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(9, 3))
    labels = rng.integers(0, 2, size=9)
    owners = [1, "1", 1, 2, 2, 2, "1", 3, 1]  # 1 and "1" are different people
    result = pair_values(features, labels, owners, rng.normal(size=(6, 3)), rng.integers(0, 2, size=6), k=2)
    assert set(result.by_contributor) == {1, "1", 2, 3}
    for owner in (1, "1", 2, 3):
        mine = [v for v, o in zip(result.per_pair, owners) if o == owner and type(o) is type(owner)]
        summary = result.by_contributor[owner]
        assert summary.count == len(mine)
        assert summary.total == pytest.approx(sum(mine), abs=1e-12)
        assert summary.mean == pytest.approx(sum(mine) / len(mine), abs=1e-12)


def test_duplicating_easy_pairs_earns_less_than_labelling_hard_novel_ones():
    """Two raters each submit 20 judgments.

    The world: validation pairs fall in 10 topics (tight, well-separated
    clusters of pair differences), 5 per topic, each topic with a gold
    direction. Topic 0 is *easy*: the crowd has already labelled 30 pairs
    there, all correctly. Topics 1-9 are *hard*: the crowd has only 2 pairs in
    each and got both wrong.

    * The copier submits 20 near-identical copies of one easy topic-0 pair,
      labelled correctly.
    * The expert submits 2 or 3 pairs in each hard topic, labelled correctly.

    With k=3 a validation pair's three nearest judgments (with everything
    present) come from its own topic. Topic 0 was already answered perfectly by
    the crowd, so what its validation pairs are worth is shared among 50
    interchangeable correct points, and Shapley's symmetry gives each copy the
    same small share as each crowd pair: copying buys a slice of value that
    already existed, it creates none. The expert's pairs are the only correct
    evidence in their topics and turn validation pairs the 3-NN model got
    wrong into right ones, so each keeps a large value; the wrong crowd pairs,
    for the same reason, are worth less than nothing in total.
    """
    rng = np.random.default_rng(0)
    d, topics, k = 12, 10, 3
    centres = rng.normal(size=(topics, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    gold = rng.integers(0, 2, size=topics)

    def near(topic, count, spread=0.05):
        return centres[topic] + spread * rng.normal(size=(count, d))

    features, labels, owners = [], [], []

    def add(points, label, owner):
        features.append(points)
        labels.extend([label] * len(points))
        owners.extend([owner] * len(points))

    add(near(0, 30), gold[0], "crowd")
    for topic in range(1, topics):
        add(near(topic, 2), 1 - gold[topic], "crowd")
    easy_pair = near(0, 1)
    add(easy_pair + 0.001 * rng.normal(size=(20, d)), gold[0], "copier")
    for i in range(20):
        topic = 1 + i % (topics - 1)
        add(near(topic, 1), gold[topic], "expert")

    val_topics = np.repeat(np.arange(topics), 5)
    val_x = np.vstack([near(t, 1) for t in val_topics])
    result = pair_values(np.vstack(features), np.array(labels), owners, val_x, gold[val_topics], k=k)

    copier = result.by_contributor["copier"]
    expert = result.by_contributor["expert"]
    assert copier.count == expert.count == 20
    assert expert.total > 4 * copier.total > 0
    assert expert.mean > 4 * copier.mean
    values = {
        owner: np.array([v for v, o in zip(result.per_pair, owners) if o == owner])
        for owner in result.by_contributor
    }
    assert (values["expert"] > 0).all()
    # Each copy is worth about what each of the crowd's correct topic-0 pairs is.
    assert values["copier"].mean() == pytest.approx(values["crowd"][:30].mean(), rel=0.25)
    assert values["crowd"][30:].sum() < 0  # the wrong hard-topic labels
