"""A campaign's quality from flat arrays: consensus, agreement and signals.

No Django here: ``annotations.quality.loading`` turns the database into the
arrays below and ``annotations.quality.services`` writes the results. The
maths itself lives in ``annotations.agreement``, ``annotations.consensus``
and ``annotations.signals``; this module only decides what goes in.

Conventions
-----------
* A *unit* is one pair of responses ``(i, j)``, ``i < j`` upload positions,
  of one task: ``unit = task_index * P + pair`` with ``P = K(K-1)/2`` pairs in
  ``np.triu_indices(K, 1)`` order. For K = 2 a unit is a task.
* A rater's *direction* on a unit is +1 (i better), -1 (j better) or 0 (tie).
  Ties carry no direction: nominal alpha, raw agreement, kappa, Dawid-Skene
  and the consensus vote use decided directions only; ordinal alpha uses the
  signed strength (``direction * gap``, the -3..+3 scale for K = 2), ties
  included as 0.
* Vote weight of a rater: the log-odds of their gold-anchored reliability
  (``anchored_reliability``: their gold answers in the campaign, with the
  Dawid-Skene estimate counting as ``GOLD_ANCHOR_PSEUDO`` answers, so a ring
  that makes up most raters cannot vote itself reliable against the gold),
  clipped to [0.55, 0.99] (a poor rater still counts a little, no vote drops
  to zero from one estimate, nobody counts as infallible), times a stake
  factor ``1 + stake / median stake`` clipped at ``cap`` times the median
  rater's (``consensus.clip_weights``), so no whale outweighs ``cap``
  typical stakers.
* Effective votes of a pair: Kish's ``(sum w)^2 / sum w^2`` over the decided
  votes; a task needs ``MIN_EFFECTIVE_VOTES`` on every pair to count as
  settled, so one heavy vote against two light ones is not a consensus.
* Consensus of a unit: ``p`` = weighted share of decided votes saying "i is
  better" (``consensus.majority_vote_binary``); margin ``|2p - 1|``. This is
  the one-coin Dawid-Skene decision rule with the estimated reliabilities,
  and the same formula serves a single task between campaign runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Iterator
from typing import Any

import numpy as np

from annotations import agreement, consensus, rater_agreement, signals

STRENGTH_NONE = -128  # loader's stand-in for a missing strength
# Reliability assumed for a rater the campaign job has not estimated yet and
# who answered no gold: somewhat better than chance, as vetting implies.
PRIOR_RELIABILITY = 0.7
RELIABILITY_CLIP = (0.55, 0.99)
# The Dawid-Skene estimate counts as this many gold answers in a rater's anchored reliability: with a few gold
# answers it still matters, with the dozen a new account answers (assignment serves them more gold) gold leads.
GOLD_ANCHOR_PSEUDO = 3.0
MIN_EFFECTIVE_VOTES = 2.0


def min_effective_votes(overlap: int) -> float:
    """Effective votes a task needs to be settled: 2, or less where the campaign asks for fewer raters.

    Two raters of unequal weight have fewer than two effective votes (3:1 gives 1.6), so a campaign of
    overlap 2 asks for 1.5 (one vote alone is 1); a campaign of overlap 1 wants one opinion by design.
    """
    return min(MIN_EFFECTIVE_VOTES, 0.75 * max(int(overlap), 1))
DEFAULT_WEIGHT_CAP = 3.0
# Bootstrap draws for alpha's interval: 1,000 while units are few (where the
# interval is wide and matters), 200 beyond (100k units: the percentile
# bounds move by ~0.001 between seeds, and draws cost units x draws).
BOOTSTRAP_DRAWS_SMALL, BOOTSTRAP_DRAWS_LARGE, BOOTSTRAP_LARGE_UNITS = 1000, 200, 20_000
# Kendall's W is computed per task; at most this many tasks (a fixed-seed sample).
KENDALL_MAX_TASKS = 2000
KAPPA_MIN_SHARED = 10

# Signal thresholds (DESIGN.md, Quality): statistic and bar per signal.
GOLD_MIN_N = 20
POSITION_Z = 4.0
SPEED_Z = -3.0
SPEED_MIN_N = 5
COLLUSION_Z = 4.0
COLLUSION_MIN_SHARED = 10
COLLUSION_MAX_P = 1e-3
# Co-ratings (with anyone) a rater needs before its shared errors are tested as a whole (signals.ring_errors).
RING_MIN_CORATED = 20
# The ring flag needs both: shared errors over everything (consensus and gold units) at z > RING_Z, and on
# gold alone at z > RING_GOLD_Z. Both z are conditional on where the others err (signals.ring_errors), so
# an honest rater scores about a standard normal on each; measured, honest raters stayed under 2.4 and
# 2.3, while a majority ring in a small campaign (40 judgments an account) scored 3.3-5.0 and 2.2-3.2.
RING_Z = 3.0
RING_GOLD_Z = 2.0
OUTSIDE_MAX_SHARE = 0.3
OUTSIDE_MIN_N = 10
COPIED_THRESHOLD = 0.8  # Jaccard of 5-character shingles
COPIED_MIN_COUNT = 3  # copies before a rater is flagged; one look-alike may be chance


@dataclass
class Judgments:
    """One row per counted (not voided) judgment of a campaign."""

    k: int
    judgment_id: np.ndarray
    task_id: np.ndarray
    expert_id: np.ndarray
    ranks: np.ndarray  # (N, K) rank per upload position, 1 = best
    strength: np.ndarray  # -3..3 in upload order, STRENGTH_NONE when not asked
    slot_a: np.ndarray  # upload position shown first
    slot_b: np.ndarray  # upload position shown second
    time_ms: np.ndarray
    is_gold: np.ndarray  # bool
    gold_correct: np.ndarray  # -1 no verdict, 0 wrong, 1 right
    outside: np.ndarray  # bool: marked "outside my expertise"

    @property
    def size(self) -> int:
        return int(self.judgment_id.size)

    def take(self, rows: np.ndarray) -> Judgments:
        return Judgments(self.k, *(getattr(self, name)[rows] for name in _COLUMNS))


_COLUMNS = (
    "judgment_id", "task_id", "expert_id", "ranks", "strength", "slot_a", "slot_b", "time_ms", "is_gold",
    "gold_correct", "outside",
)


def pair_directions(j: Judgments) -> tuple[np.ndarray, np.ndarray]:
    """``(direction, gap)``, each ``(N, P)``, from ranks, or from the explicit strength where one was given."""
    rp = consensus.ranking_to_pairs(j.ranks.reshape(-1, j.k))
    direction = np.asarray(rp.direction, dtype=np.int64).reshape(j.size, -1)
    gap = np.asarray(rp.strength, dtype=np.int64).reshape(j.size, -1)
    if j.k == 2:
        scaled = j.strength != STRENGTH_NONE
        if scaled.any():
            sp = consensus.ranking_to_pairs(j.ranks[scaled], j.strength[scaled])
            direction[scaled], gap[scaled] = sp.direction, sp.strength
    return direction, gap


def stake_factor(stakes: np.ndarray) -> np.ndarray:
    """``1 + stake / median positive stake``: a rater without stake still counts once."""
    s = np.asarray(stakes, dtype=np.float64)
    positive = s[s > 0]
    if positive.size == 0:
        return np.ones_like(s)
    return 1.0 + s / float(np.median(positive))


def reliability_log_odds(reliability: np.ndarray) -> np.ndarray:
    r = np.where(np.isfinite(reliability), reliability, PRIOR_RELIABILITY)
    r = np.clip(r, *RELIABILITY_CLIP)
    return np.log(r / (1.0 - r))


def anchored_reliability(ds_accuracy: np.ndarray, gold_correct: np.ndarray, gold_n: np.ndarray,
                         pseudo: float = GOLD_ANCHOR_PSEUDO) -> np.ndarray:
    """(gold right + pseudo x base) / (gold answered + pseudo), base = the Dawid-Skene estimate (or the prior).

    Dawid-Skene learns reliability from agreement, so raters who answer alike
    by a shared rule and make up most of a task's raters look reliable to it.
    Gold answers are checked against the truth, which no ring can outvote,
    and their say grows with their number.
    """
    base = np.where(np.isfinite(ds_accuracy), ds_accuracy, PRIOR_RELIABILITY)
    return (np.asarray(gold_correct, dtype=np.float64) + pseudo * base) / (np.asarray(gold_n, dtype=np.float64) + pseudo)


def effective_votes(item: np.ndarray, weight: np.ndarray, n_items: int) -> np.ndarray:
    """Kish's effective number of votes per item, ``(sum w)^2 / sum w^2`` (0 for an item without votes)."""
    total = np.bincount(item, weights=weight, minlength=n_items)
    squares = np.bincount(item, weights=weight * weight, minlength=n_items)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(squares > 0, total * total / np.where(squares > 0, squares, 1.0), 0.0)


def vote_weights(reliability: np.ndarray, stakes: np.ndarray, cap: float) -> np.ndarray:
    """Each rater's consensus weight: reliability log-odds x stake factor, the stake factor clipped at ``cap`` x
    the median rater's.

    The cap is on stake, what a whale can buy. Capping the whole weight at a
    multiple of the median rater's would let a ring that makes up most raters
    set the median, and so cap the honest raters' gold-earned reliability.
    """
    factor = stake_factor(stakes)
    if factor.size:
        factor = consensus.clip_weights(factor, cap)
    return reliability_log_odds(reliability) * factor


@dataclass
class TaskConsensusRows:
    """Consensus of every non-gold task with a judgment, aligned arrays."""

    task_id: np.ndarray
    ranks: np.ndarray  # (T, K)
    p: np.ndarray  # (T, P) weighted share saying i better
    margin_pairs: np.ndarray  # (T, P)
    votes: np.ndarray  # (T, P) decided votes
    margin: np.ndarray  # (T,) min over pairs
    effective: np.ndarray  # (T,) fewest effective votes over pairs
    n_raters: np.ndarray
    last_judgment_id: np.ndarray
    method: str

    def records(self, rows: range) -> Iterator[dict[str, Any]]:
        """The stored form of ``rows``: plain lists and numbers, pair figures to three decimals."""
        k = self.ranks.shape[1]
        i, j = (x.tolist() for x in np.triu_indices(k, 1))
        sl = slice(rows.start, rows.stop)
        ranks, p = self.ranks[sl].tolist(), np.round(self.p[sl], 3).tolist()
        margins, votes = np.round(self.margin_pairs[sl], 3).tolist(), self.votes[sl].tolist()
        margin, n_raters = np.round(self.margin[sl], 6).tolist(), self.n_raters[sl].tolist()
        effective = np.round(self.effective[sl], 3).tolist()
        task_ids, last = self.task_id[sl].tolist(), self.last_judgment_id[sl].tolist()
        for r in range(len(ranks)):
            yield {
                "task_id": task_ids[r], "ranks": ranks[r], "margin": margin[r], "n_raters": n_raters[r],
                "effective_votes": effective[r],
                "method": self.method, "last_judgment_id": last[r],
                "pairs": [{"i": i[q], "j": j[q], "p": p[r][q], "margin": margins[r][q], "votes": votes[r][q]}
                          for q in range(len(i))],
            }


def task_consensus(
    j: Judgments, direction: np.ndarray, judgment_weight: np.ndarray, task_ids: np.ndarray, task_row: np.ndarray,
) -> TaskConsensusRows:
    """Weighted consensus of the tasks ``task_ids`` (judgment ``r`` belongs to task ``task_ids[task_row[r]]``)."""
    k, n_tasks = j.k, task_ids.size
    n_pairs = k * (k - 1) // 2
    unit = task_row[:, None] * n_pairs + np.arange(n_pairs)[None, :]
    decided = direction != 0
    item, label = unit[decided], (direction[decided] > 0).astype(np.int64)
    weight = np.broadcast_to(judgment_weight[:, None], direction.shape)[decided]
    p = consensus.majority_vote_binary(item, label, n_tasks * n_pairs, weights=weight).reshape(n_tasks, n_pairs)
    votes = np.bincount(item, minlength=n_tasks * n_pairs).reshape(n_tasks, n_pairs)
    effective = effective_votes(item, weight, n_tasks * n_pairs).reshape(n_tasks, n_pairs).min(axis=1)
    margin_pairs = np.abs(2.0 * p - 1.0)
    n_raters = np.bincount(task_row, minlength=n_tasks)
    last = np.zeros(n_tasks, dtype=np.int64)
    np.maximum.at(last, task_row, j.judgment_id)
    if k == 2:
        first_better = p[:, 0] > 0.5
        ranks = np.where(first_better[:, None], [1, 2], [2, 1])
        ranks[p[:, 0] == 0.5] = [1, 1]
        method = "weighted_vote"
    else:
        ranks = _bradley_terry_ranks(k, direction, judgment_weight, task_row, n_tasks)
        method = "bradley_terry"
    return TaskConsensusRows(
        task_ids, ranks.astype(np.int64), p, margin_pairs, votes, margin_pairs.min(axis=1), effective, n_raters, last,
        method,
    )


def _bradley_terry_ranks(
    k: int, direction: np.ndarray, weight: np.ndarray, task_row: np.ndarray, n_tasks: int,
) -> np.ndarray:
    """K > 2: each task's responses in weighted Bradley-Terry order (ties count half a win each way).

    Every rater ranks all K responses, so within a task every pair carries
    the same total weight: a balanced round robin. There the Bradley-Terry
    likelihood equations, ``wins_i = n sum_j sigmoid(theta_i - theta_j)``
    (plus the same prior term for every response), make ``theta`` strictly
    increasing in the weighted wins (Zermelo), so the maximum-likelihood
    order, ties included, is the order of weighted wins. That is computed
    for all tasks at once instead of one ``consensus.weighted_bradley_terry``
    fit per task (about 1 ms each, 100 s for 100k tasks);
    ``tests/annotations/test_quality_consensus.py`` checks the two agree.
    """
    from scipy.stats import rankdata

    i, j = np.triu_indices(k, 1)
    w = np.broadcast_to(weight[:, None], direction.shape)
    credit_i = np.where(direction > 0, 1.0, np.where(direction == 0, 0.5, 0.0)) * w
    credit_j = w - credit_i
    rows = np.broadcast_to(task_row[:, None], direction.shape)
    wins = np.zeros(n_tasks * k)
    np.add.at(wins, (rows * k + i[None, :]).ravel(), credit_i.ravel())
    np.add.at(wins, (rows * k + j[None, :]).ravel(), credit_j.ravel())
    return rankdata(-np.round(wins.reshape(n_tasks, k), 9), method="min", axis=1).astype(np.int64)


@dataclass
class CampaignQuality:
    """Everything the campaign job writes."""

    tasks: TaskConsensusRows
    expert_id: np.ndarray  # raters, sorted
    n_judgments: np.ndarray
    n_compared: np.ndarray
    agreement: np.ndarray
    reliability: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    stake: np.ndarray
    vote_weight: np.ndarray
    median_seconds: np.ndarray
    gold: signals.GoldAccuracy
    position: signals.PositionBias
    speed: signals.Speed
    outside: signals.OutsideExpertise
    collusion: signals.Collusion
    ring: signals.RingErrors
    figures: dict[str, Any] = field(default_factory=dict)


def _aligned(raters: np.ndarray, sub_raters: np.ndarray, values: np.ndarray, fill: float | int) -> np.ndarray:
    """Spread a per-rater result over ``raters`` (sorted); raters missing from ``sub_raters`` get ``fill``."""
    out = np.full(raters.size, fill, dtype=np.asarray(values).dtype if np.asarray(values).size else float)
    if sub_raters.size:
        out[np.searchsorted(raters, sub_raters)] = values
    return out


def _grouped_median(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    order = np.lexsort((values, group))
    v, counts = values[order], np.bincount(group, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    if v.size == 0:
        return np.full(n_groups, np.nan)
    lo = np.minimum(starts + (counts - 1) // 2, v.size - 1)
    hi = np.minimum(starts + counts // 2, v.size - 1)
    return np.where(counts > 0, (v[lo] + v[hi]) / 2.0, np.nan)


def _num(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def _interval(point: float, low: float, high: float) -> dict[str, float | None]:
    return {"value": _num(point), "low": _num(low), "high": _num(high)}


def campaign_quality(
    j: Judgments,
    *,
    gold_ranks: dict[int, list[int]],
    stakes: np.ndarray,
    tokens: dict[int, int],
    gold_bar: float,
    weight_cap: float = DEFAULT_WEIGHT_CAP,
    seed: int = 0,
) -> CampaignQuality:
    """The campaign job's maths. ``stakes`` is aligned with ``np.unique(j.expert_id)``."""
    k = j.k
    n_pairs = k * (k - 1) // 2
    raters, rater_row = np.unique(j.expert_id, return_inverse=True)
    tasks, task_row = np.unique(j.task_id, return_inverse=True)
    direction, gap = pair_directions(j)
    unit = task_row[:, None] * n_pairs + np.arange(n_pairs)[None, :]
    decided = direction != 0
    label = (direction > 0).astype(np.int64)
    unit_worker = np.broadcast_to(rater_row[:, None], direction.shape)

    # Dawid-Skene over every decided pair direction, gold pairs clamped to gold.
    gold_rows = [t for t in np.flatnonzero(np.isin(tasks, list(gold_ranks))).tolist()
                 if isinstance(gold_ranks[int(tasks[t])], list) and len(gold_ranks[int(tasks[t])]) == k]
    gold_units, gold_labels = np.empty(0, dtype=np.int64), np.empty(0)
    if gold_rows:
        g = consensus.ranking_to_pairs(np.array([gold_ranks[int(tasks[t])] for t in gold_rows]))
        g_dir = np.asarray(g.direction).reshape(len(gold_rows), n_pairs)
        g_unit = np.asarray(gold_rows)[:, None] * n_pairs + np.arange(n_pairs)[None, :]
        gold_units, gold_labels = g_unit[g_dir != 0], (g_dir[g_dir != 0] > 0).astype(np.float64)
    stake_w = stake_factor(stakes)
    ds = consensus.dawid_skene_binary(
        unit[decided], unit_worker[decided], label[decided], tasks.size * n_pairs, raters.size,
        gold_item_idx=gold_units, gold_label=gold_labels,
        worker_weight=stake_w, worker_weight_cap=weight_cap,
    )
    # A rater who shares no pair with anyone and answered no gold has an
    # unidentifiable reliability (EM returns its starting point): count them
    # with the prior rather than with whatever EM stopped at.
    d_items, d_workers = unit[decided], unit_worker[decided]
    shared = np.bincount(d_items, minlength=tasks.size * n_pairs)[d_items] >= 2
    evidence = shared | np.isin(d_items, gold_units)
    identifiable = np.bincount(d_workers, weights=evidence, minlength=raters.size) > 0
    reliability = np.where(identifiable, ds.worker_accuracy, np.nan)
    on_gold = j.is_gold & (j.gold_correct >= 0)
    gold_n = np.bincount(rater_row[on_gold], minlength=raters.size)
    gold_right = np.bincount(rater_row[on_gold], weights=j.gold_correct[on_gold] == 1, minlength=raters.size)
    anchored = anchored_reliability(reliability, gold_right, gold_n)
    # A rater with neither gold nor shared items keeps an unknown (NaN) reliability: the prior's weight.
    anchored = np.where(identifiable | (gold_n > 0), anchored, np.nan)
    weights = vote_weights(anchored, stakes, weight_cap)

    # Consensus of non-gold tasks.
    real = ~j.is_gold
    real_tasks, real_row = np.unique(j.task_id[real], return_inverse=True)
    rows = task_consensus(j.take(real), direction[real], weights[rater_row[real]], real_tasks, real_row)

    # Agreement over non-gold units (numbered like the consensus rows).
    r_unit = real_row[:, None] * n_pairs + np.arange(n_pairs)[None, :]
    r_dir, r_gap = direction[real], gap[real]
    r_rater = np.broadcast_to(rater_row[real][:, None], r_dir.shape)
    dec = r_dir != 0
    d_unit, d_label, d_rater = r_unit[dec], (r_dir[dec] > 0).astype(np.int64), r_rater[dec]
    n_units = int(np.unique(d_unit).size)
    n_boot = BOOTSTRAP_DRAWS_SMALL if n_units <= BOOTSTRAP_LARGE_UNITS else BOOTSTRAP_DRAWS_LARGE
    nominal = agreement.alpha_bootstrap_ci_from_ratings(d_unit, d_label, "nominal", n_boot=n_boot, seed=seed)
    ordinal = agreement.alpha_bootstrap_ci_from_ratings(
        r_unit.ravel(), (r_dir * r_gap).ravel(), "ordinal", n_boot=n_boot, seed=seed,
    )
    raw = agreement.raw_agreement_from_ratings(d_unit, d_label)
    loo = rater_agreement.leave_one_out_agreement(d_rater, d_unit, d_label)
    kappa = rater_agreement.pairwise_kappa(d_rater, d_unit, d_label, min_shared=KAPPA_MIN_SHARED)
    kendall = _kendalls_w(j.take(real), real_row, seed) if k > 2 else None

    # Signals.
    seconds = j.time_ms / 1000.0
    every = np.arange(j.size)
    rank_a = j.ranks[every, np.clip(j.slot_a, 0, k - 1)]
    rank_b = j.ranks[every, np.clip(j.slot_b, 0, k - 1)]
    prefers = rank_a != rank_b
    position = signals.position_bias(j.expert_id[prefers], (rank_a < rank_b)[prefers], z_threshold=POSITION_Z)
    tokens_per_task = np.array([tokens.get(int(t), 0) for t in tasks.tolist()], dtype=np.float64)
    speed = signals.speed(j.expert_id, seconds, tokens_per_task[task_row], z_threshold=SPEED_Z, min_n=SPEED_MIN_N)
    outside = signals.outside_expertise(j.expert_id, j.outside, max_share=OUTSIDE_MAX_SHARE, min_n=OUTSIDE_MIN_N)
    gold = signals.gold_accuracy(j.expert_id[on_gold], j.gold_correct[on_gold] == 1, bar=gold_bar, min_n=GOLD_MIN_N)
    consensus_p = rows.p.ravel()
    says = consensus_p[d_unit]
    settled = says != 0.5
    is_error = (d_label == 1) != (says > 0.5)
    found = signals.collusion(
        d_rater[settled], d_unit[settled], is_error[settled], min_shared=COLLUSION_MIN_SHARED,
        z_threshold=COLLUSION_Z, max_p_value=COLLUSION_MAX_P,
    )
    collusion = found._replace(rater_a=raters[found.rater_a], rater_b=raters[found.rater_b])
    # The ring test sums a rater's shared errors over everyone it rated with, conditional on where the
    # others erred (signals.ring_errors). Against the consensus alone, a ring that makes most raters errs
    # with nobody, and the honest raters it outvotes "err" together; so gold tasks join as one unit each
    # (wrong where the top choice missed gold), and a flag also needs the errors on gold alone to lean the
    # same way (z > RING_GOLD_Z): on gold a ring's members err together, honest raters independently.
    g_task = np.unique(j.task_id[on_gold], return_inverse=True)[1]
    g_wrong = j.gold_correct[on_gold] == 0
    ring = signals.ring_errors(
        np.concatenate([d_rater[settled], rater_row[on_gold]]),
        np.concatenate([d_unit[settled], real_tasks.size * n_pairs + g_task]),
        np.concatenate([is_error[settled], g_wrong]),
        min_corated=RING_MIN_CORATED, z_threshold=RING_Z,
    )
    on_truth = signals.ring_errors(rater_row[on_gold], g_task, g_wrong, min_corated=1, z_threshold=RING_GOLD_Z,
                                   min_shared_errors=1)
    leaning = np.zeros(raters.size, dtype=bool)
    leaning[on_truth.rater[on_truth.flagged]] = True
    ring = ring._replace(flagged=ring.flagged & leaning[ring.rater])
    ring = ring._replace(rater=raters[ring.rater])

    n_judgments = np.bincount(rater_row, minlength=raters.size)
    median_seconds = _grouped_median(rater_row, seconds.astype(np.float64), raters.size)
    plain = consensus.majority_vote_binary(d_unit, d_label, real_tasks.size * n_pairs)
    both = (plain != 0.5) & (consensus_p != 0.5)
    finite_kappa = kappa.kappa[np.isfinite(kappa.kappa)]
    figures: dict[str, Any] = {
        "n_judgments": int(j.size), "n_tasks": int(real_tasks.size), "n_raters": int(raters.size),
        "n_units": n_units, "n_boot": n_boot, "k": k,
        "alpha_nominal": _interval(*nominal), "alpha_ordinal": _interval(*ordinal), "raw_agreement": _num(raw),
        "kappa": {
            "n_pairs": int(finite_kappa.size), "min_shared": KAPPA_MIN_SHARED,
            "median": _num(np.median(finite_kappa)) if finite_kappa.size else None,
            "p25": _num(np.quantile(finite_kappa, 0.25)) if finite_kappa.size else None,
            "p75": _num(np.quantile(finite_kappa, 0.75)) if finite_kappa.size else None,
            "share_below_zero": _num((finite_kappa < 0).mean()) if finite_kappa.size else None,
        },
        "kendall_w": kendall,
        "dawid_skene": {"iterations": int(ds.n_iter), "converged": bool(ds.converged), "prior": _num(ds.prior),
                        "gold_pairs": int(gold_units.size)},
        "consensus_vs_majority": _num(((consensus_p > 0.5) == (plain > 0.5))[both].mean()) if both.any() else None,
        "weight_median": _num(np.median(weights[weights > 0])) if (weights > 0).any() else None,
    }
    return CampaignQuality(
        tasks=rows, expert_id=raters, n_judgments=n_judgments,
        n_compared=_aligned(raters, raters[loo.rater], loo.n_compared, 0),
        agreement=_aligned(raters, raters[loo.rater], loo.agreement, np.nan),
        reliability=reliability, sensitivity=np.where(identifiable, ds.sensitivity, np.nan),
        specificity=np.where(identifiable, ds.specificity, np.nan),
        stake=np.asarray(stakes, dtype=np.int64), vote_weight=weights, median_seconds=median_seconds,
        gold=gold, position=position, speed=speed, outside=outside, collusion=collusion, ring=ring,
        figures=figures,
    )


def _kendalls_w(j: Judgments, task_row: np.ndarray, seed: int) -> dict[str, Any] | None:
    """Kendall's W per task with two or more rankings (a sample of at most KENDALL_MAX_TASKS), summarised."""
    counts = np.bincount(task_row)
    eligible = np.flatnonzero(counts >= 2)
    if eligible.size == 0:
        return None
    if eligible.size > KENDALL_MAX_TASKS:
        eligible = np.sort(np.random.default_rng(seed).choice(eligible, KENDALL_MAX_TASKS, replace=False))
    order = np.argsort(task_row, kind="stable")
    bounds = np.searchsorted(task_row[order], np.arange(counts.size + 1))
    values = np.array([rater_agreement.kendalls_w(j.ranks[order[bounds[t] : bounds[t + 1]]])
                       for t in eligible.tolist()])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    return {"mean": _num(values.mean()), "median": _num(np.median(values)), "n_tasks": int(values.size),
            "sampled": bool(counts.size > KENDALL_MAX_TASKS)}


def single_task_consensus(j: Judgments, rater_weight: dict[int, float], fallback_weight: float) -> TaskConsensusRows:
    """One task's consensus between campaign runs, with the stored vote weights (``fallback_weight`` for new raters)."""
    direction, _ = pair_directions(j)
    weights = np.array([rater_weight.get(int(e), fallback_weight) for e in j.expert_id.tolist()], dtype=np.float64)
    tasks, task_row = np.unique(j.task_id, return_inverse=True)
    return task_consensus(j, direction, weights, tasks, task_row)
