"""Agreement maths against reference implementations (no Django needed)."""
from __future__ import annotations

import itertools
import warnings
from collections import Counter

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import friedmanchisquare, rankdata, spearmanr
from sklearn.metrics import cohen_kappa_score

from annotations.agreement import (
    alpha_bootstrap_ci,
    alpha_from_ratings,
    krippendorff_alpha,
    raw_agreement,
    ratings_from_matrix,
)
from annotations.rater_agreement import cohen_kappa, kendalls_w, leave_one_out_agreement, pairwise_kappa

LEVELS = ["nominal", "ordinal", "interval"]

# The worked example from the krippendorff package and Krippendorff (2011).
WIKI = [
    [np.nan, np.nan, np.nan, np.nan, np.nan, 3, 4, 1, 2, 1, 1, 3, 3, np.nan, 3],
    [1, np.nan, 2, 1, 3, 3, 4, 3, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan],
    [np.nan, np.nan, 2, 1, 3, 4, 4, np.nan, 2, 1, 1, 3, 3, np.nan, 4],
]
ORDINAL_EXAMPLE = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
    [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
]


def reference_alpha(data, level: str) -> float:
    """The reference, with its exceptions and 0/0 mapped to nan like ours."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return float(krippendorff.alpha(reliability_data=np.asarray(data, float), level_of_measurement=level))
        except ValueError:
            return float("nan")


def assert_same(ours: float, ref: float) -> None:
    if np.isnan(ref):
        assert np.isnan(ours), f"reference is undefined but we returned {ours}"
    else:
        assert ours == pytest.approx(ref, abs=1e-9)


@st.composite
def reliability_matrices(draw):
    raters = draw(st.integers(2, 6))
    units = draw(st.integers(1, 18))
    n_values = draw(st.integers(1, 6))
    cells = draw(st.lists(st.integers(0, n_values - 1), min_size=raters * units, max_size=raters * units))
    data = np.array(cells, dtype=float).reshape(raters, units)
    missing = draw(st.lists(st.booleans(), min_size=raters * units, max_size=raters * units))
    data[np.array(missing).reshape(raters, units)] = np.nan
    # Spread values unevenly so interval and ordinal really differ.
    return np.where(np.isnan(data), np.nan, data**2 - 3)


class TestKrippendorffAlpha:
    @pytest.mark.parametrize(("level", "expected"), [("nominal", 0.691358), ("interval", 0.810845)])
    def test_textbook_example(self, level, expected):
        assert krippendorff_alpha(WIKI, level) == pytest.approx(expected, abs=1e-6)

    def test_ordinal_textbook_example(self):
        assert krippendorff_alpha(ORDINAL_EXAMPLE, "ordinal") == pytest.approx(0.815, abs=5e-4)

    @settings(max_examples=150, deadline=None)
    @given(data=reliability_matrices(), level=st.sampled_from(LEVELS))
    def test_matches_reference_with_missing_values(self, data, level):
        assert_same(krippendorff_alpha(data, level), reference_alpha(data, level))

    @pytest.mark.parametrize("level", LEVELS)
    def test_matches_reference_on_a_campaign_sized_sample(self, level):
        rng = np.random.default_rng(7)
        truth = rng.integers(-3, 4, 3000)
        data = np.clip(truth + rng.integers(-1, 2, (6, 3000)), -3, 3).astype(float)
        data[rng.random(data.shape) < 0.5] = np.nan
        assert_same(krippendorff_alpha(data, level), reference_alpha(data, level))

    @pytest.mark.parametrize("level", LEVELS)
    def test_units_with_a_single_rating_are_ignored(self, level):
        base = np.array(WIKI)
        lonely = np.full((3, 4), np.nan)
        lonely[0] = [7, 1, 2, 9]  # one rating per unit: no pairs
        assert krippendorff_alpha(np.hstack([base, lonely]), level) == pytest.approx(
            krippendorff_alpha(base, level), abs=1e-12
        )

    @pytest.mark.parametrize("level", LEVELS)
    def test_perfect_agreement_on_several_values_is_one(self, level):
        data = [[1, 2, 3, 1], [1, 2, 3, 1], [np.nan, 2, 3, 1]]
        assert krippendorff_alpha(data, level) == 1.0
        assert reference_alpha(data, level) == pytest.approx(1.0)

    @pytest.mark.parametrize("level", LEVELS)
    def test_one_value_only_is_undefined(self, level):
        # The reference raises here; zero expected disagreement has no alpha.
        assert np.isnan(krippendorff_alpha([[2, 2, 2], [2, 2, np.nan]], level))
        # Only one value among pairable units: the reference returns 0/0 = nan.
        data = [[1, 1, 5], [1, 1, np.nan]]
        assert np.isnan(reference_alpha(data, level))
        assert np.isnan(krippendorff_alpha(data, level))

    @pytest.mark.parametrize("level", LEVELS)
    def test_no_pairable_unit_is_undefined(self, level):
        assert np.isnan(krippendorff_alpha([[1, np.nan], [np.nan, 2]], level))
        assert np.isnan(krippendorff_alpha(np.empty((0, 0)), level))

    def test_unknown_level_is_rejected(self):
        with pytest.raises(ValueError):
            krippendorff_alpha(WIKI, "ratio")

    @settings(max_examples=50, deadline=None)
    @given(data=reliability_matrices(), level=st.sampled_from(LEVELS), seed=st.integers(0, 1000))
    def test_rows_within_a_unit_do_not_matter(self, data, level, seed):
        # Why a campaign may pass an overlap x units "slot" matrix instead of 2,000 rater rows.
        shuffled = np.random.default_rng(seed).permuted(data, axis=0)
        a, b = krippendorff_alpha(data, level), krippendorff_alpha(shuffled, level)
        assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, abs=1e-12)

    def test_long_format_equals_matrix(self):
        unit, value = ratings_from_matrix(WIKI)
        assert alpha_from_ratings(unit + 100, value, "interval") == pytest.approx(
            krippendorff_alpha(WIKI, "interval"), abs=1e-12
        )


class TestBootstrap:
    def test_interval_matches_a_naive_bootstrap_with_the_same_draws(self):
        data = np.array(WIKI)
        n_boot, seed = 300, 3
        alpha, low, high = alpha_bootstrap_ci(data, "nominal", n_boot=n_boot, seed=seed)
        pairable = data[:, (~np.isnan(data)).sum(axis=0) >= 2]
        picks = np.random.default_rng(seed).integers(0, pairable.shape[1], size=(n_boot, pairable.shape[1]))
        naive = np.array([reference_alpha(pairable[:, p], "nominal") for p in picks])
        naive = naive[np.isfinite(naive)]
        assert alpha == pytest.approx(0.691358, abs=1e-6)
        assert (low, high) == pytest.approx(tuple(np.quantile(naive, [0.025, 0.975])), abs=1e-9)

    @pytest.mark.parametrize("level", LEVELS)
    def test_interval_brackets_the_estimate_and_narrows_with_more_units(self, level):
        rng = np.random.default_rng(0)

        def campaign(units):
            truth = rng.integers(-3, 4, units)
            return np.clip(truth + rng.integers(-1, 2, (3, units)), -3, 3).astype(float)

        a_small, lo_small, hi_small = alpha_bootstrap_ci(campaign(40), level, n_boot=400)
        a_big, lo_big, hi_big = alpha_bootstrap_ci(campaign(4000), level, n_boot=400)
        assert lo_small <= a_small <= hi_small
        assert lo_big <= a_big <= hi_big
        assert hi_big - lo_big < (hi_small - lo_small) / 4

    def test_same_seed_same_interval(self):
        assert alpha_bootstrap_ci(WIKI, "ordinal", n_boot=100, seed=5) == alpha_bootstrap_ci(
            WIKI, "ordinal", n_boot=100, seed=5
        )

    def test_undefined_alpha_gives_undefined_interval(self):
        a, low, high = alpha_bootstrap_ci([[1, 1], [1, 1]], "nominal", n_boot=50)
        assert np.isnan(a) and np.isnan(low) and np.isnan(high)


class TestRawAgreement:
    def test_counts_agreeing_pairs(self):
        # Unit 1: 3 ratings, 2 agree -> 2 of 6 ordered pairs; unit 2: 2 agree -> 2 of 2.
        data = [[1, 0, 4], [1, 0, np.nan], [2, np.nan, np.nan]]
        assert raw_agreement(data) == pytest.approx(4 / 8)

    def test_high_agreement_with_skewed_prevalence_beside_low_alpha(self):
        # Why we report both: 95% "A" with occasional dissent agrees a lot yet alpha is modest.
        rng = np.random.default_rng(1)
        data = np.where(rng.random((3, 5000)) < 0.95, 0.0, 1.0)
        assert raw_agreement(data) > 0.85
        assert krippendorff_alpha(data, "nominal") < 0.1


class TestCohenKappa:
    @settings(max_examples=150, deadline=None)
    @given(
        pairs=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=60),
    )
    def test_matches_sklearn(self, pairs):
        a, b = map(np.array, zip(*pairs))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = cohen_kappa_score(a, b)
        assert_same(cohen_kappa(a, b), ref)

    def test_constant_identical_raters_are_undefined(self):
        assert np.isnan(cohen_kappa([1, 1, 1], [1, 1, 1]))


def brute_force_pairwise_kappa(rater, unit, label, min_shared):
    by_rater = {r: {} for r in set(rater.tolist())}
    for r, u, lab in zip(rater.tolist(), unit.tolist(), label.tolist()):
        by_rater[r][u] = lab
    out = {}
    for a, b in itertools.combinations(sorted(by_rater), 2):
        shared = sorted(set(by_rater[a]) & set(by_rater[b]))
        if len(shared) >= min_shared:
            la = [by_rater[a][u] for u in shared]
            lb = [by_rater[b][u] for u in shared]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[(a, b)] = (len(shared), cohen_kappa_score(la, lb))
    return out


class TestPairwiseKappa:
    @settings(max_examples=40, deadline=None)
    @given(seed=st.integers(0, 10_000), min_shared=st.integers(1, 8))
    def test_matches_pair_by_pair_sklearn(self, seed, min_shared):
        rng = np.random.default_rng(seed)
        n_units, n_raters, overlap = 30, 7, 3
        rater = np.concatenate([rng.choice(n_raters, overlap, replace=False) for _ in range(n_units)])
        unit = np.repeat(np.arange(n_units), overlap)
        label = rng.integers(0, 3, rater.size)
        got = pairwise_kappa(rater, unit, label, min_shared=min_shared)
        expected = brute_force_pairwise_kappa(rater, unit, label, min_shared)
        assert set(zip(got.rater_a.tolist(), got.rater_b.tolist())) == set(expected)
        for a, b, n, k in zip(got.rater_a, got.rater_b, got.n_shared, got.kappa):
            n_ref, k_ref = expected[(a, b)]
            assert n == n_ref
            assert_same(k, k_ref)

    def test_raters_who_never_meet_are_not_paired(self):
        rater = np.array([0, 1, 0, 1, 2, 3])
        unit = np.array([0, 0, 1, 1, 2, 2])
        label = np.array([1, 1, 0, 1, 0, 0])
        got = pairwise_kappa(rater, unit, label, min_shared=1)
        assert list(zip(got.rater_a, got.rater_b, got.n_shared)) == [(0, 1, 2), (2, 3, 1)]


def kendalls_w_by_formula(rankings):
    """Textbook formula, loop by loop, with the tie correction."""
    m, n = rankings.shape
    ranks = np.array([rankdata(row) for row in rankings])
    totals = ranks.sum(axis=0)
    s = sum((t - m * (n + 1) / 2) ** 2 for t in totals)
    ties = sum(t**3 - t for row in rankings for t in Counter(row.tolist()).values())
    return 12 * s / (m**2 * (n**3 - n) - m * ties)


class TestKendallsW:
    def test_identical_rankings_give_one_and_reversed_pair_gives_zero(self):
        assert kendalls_w([[1, 2, 3, 4]] * 5) == pytest.approx(1.0)
        assert kendalls_w([[1, 2, 3, 4], [4, 3, 2, 1]]) == pytest.approx(0.0)

    @settings(max_examples=100, deadline=None)
    @given(
        m=st.integers(2, 6),
        n=st.integers(3, 7),
        cells=st.lists(st.integers(1, 4), min_size=42, max_size=42),
    )
    def test_matches_the_formula_and_friedman_with_ties(self, m, n, cells):
        rankings = np.array(cells[: m * n]).reshape(m, n)
        if all(len(set(row)) == 1 for row in rankings.tolist()):
            assert np.isnan(kendalls_w(rankings))
            return
        w = kendalls_w(rankings)
        assert w == pytest.approx(kendalls_w_by_formula(rankings), abs=1e-9)
        # Friedman's chi-square (tie-corrected) is m (n - 1) W.
        chi2 = friedmanchisquare(*rankings.T).statistic
        assert w == pytest.approx(chi2 / (m * (n - 1)), abs=1e-9)

    def test_without_ties_relates_to_mean_spearman(self):
        rng = np.random.default_rng(4)
        rankings = np.array([rng.permutation(8) + 1 for _ in range(5)])
        rhos = [spearmanr(a, b).statistic for a, b in itertools.combinations(rankings, 2)]
        assert kendalls_w(rankings) == pytest.approx((4 * np.mean(rhos) + 1) / 5, abs=1e-12)


def brute_force_loo(rater, unit, label):
    out = {}
    for k in range(len(rater)):
        others = [label[i] for i in range(len(rater)) if unit[i] == unit[k] and i != k]
        counts = Counter(others).most_common()
        compared, match = out.get(rater[k], (0, 0))
        if counts and (len(counts) == 1 or counts[0][1] > counts[1][1]):
            out[rater[k]] = (compared + 1, match + (counts[0][0] == label[k]))
        else:
            out[rater[k]] = (compared, match)
    return out


class TestLeaveOneOut:
    def test_hand_example(self):
        # Unit 0: 1,1,1,0 -> the three 1s each see a 2-1 majority for 1; rater 3 sees 1,1,1.
        # Unit 1: 1,0 -> each sees the other's label alone, a majority against them.
        # Unit 2: 0,1,0 -> raters 0 and 2 see a 1-1 tie (no verdict); rater 1 sees 0,0.
        rater = [0, 1, 2, 3, 0, 1, 0, 1, 2]
        unit = [0, 0, 0, 0, 1, 1, 2, 2, 2]
        label = [1, 1, 1, 0, 1, 0, 0, 1, 0]
        got = leave_one_out_agreement(rater, unit, label)
        assert got.rater.tolist() == [0, 1, 2, 3]
        assert got.n_compared.tolist() == [2, 3, 1, 1]
        assert got.agreement.tolist() == pytest.approx([0.5, 1 / 3, 1.0, 0.0])

    def test_ties_among_the_others_do_not_count(self):
        got = leave_one_out_agreement([0, 1, 2], [0, 0, 0], [1, 0, 1])
        # Rater 1 sees {1, 1}: compared; raters 0 and 2 see {0, 1}: a tie.
        assert got.n_compared.tolist() == [0, 1, 0]
        assert got.agreement[1] == 0.0 and np.isnan(got.agreement[0])

    @settings(max_examples=60, deadline=None)
    @given(seed=st.integers(0, 10_000), n_labels=st.integers(2, 4))
    def test_matches_brute_force(self, seed, n_labels):
        rng = np.random.default_rng(seed)
        sizes = rng.integers(1, 7, 25)
        unit = np.repeat(np.arange(25), sizes)
        rater = np.concatenate([rng.choice(12, s, replace=False) for s in sizes])
        label = rng.integers(0, n_labels, unit.size)
        got = leave_one_out_agreement(rater, unit, label)
        expected = brute_force_loo(rater.tolist(), unit.tolist(), label.tolist())
        for r, n, share in zip(got.rater.tolist(), got.n_compared.tolist(), got.agreement.tolist()):
            compared, match = expected[r]
            assert n == compared
            assert (compared == 0 and np.isnan(share)) or share == pytest.approx(match / compared)
