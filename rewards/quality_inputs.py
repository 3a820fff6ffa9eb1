"""The quality figures settlement pays on: one ``ExpertQualityInput`` per expert and epoch.

This module is the seam between the quality jobs and the money.
``epoch_quality_inputs(epoch)`` is what ``rewards.settlement`` calls; the
quality issue replaces its body with the reliability-weighted consensus
(Dawid-Skene / Bradley-Terry) and keeps the signature and the meaning of
every field. Until then it computes a plain version straight from the
Judgment rows:

- n: accepted (not voided) judgments submitted in the epoch, gold included;
- per pair of responses (a, b) of a non-gold task, a rater's *direction* is
  "a better" or "b better" (ties carry no direction); the leave-one-out
  consensus of a judgment is the majority direction of the other raters of
  the same task (all epochs, voided judgments left out), undefined on a tie;
- matches / n_compared: the epoch's directions that match / have a
  consensus;
- f_rater: share of the rater's compared directions that say "the earlier
  response is better"; f_consensus: the same share for the consensus
  directions they were compared with. Both are taken over the whole epoch
  rather than "other tasks", which differs by one task in hundreds;
- gold_correct / gold_n: the epoch's gold judgments with a verdict.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.db import connection
from django.db.models import Count, Q

from annotations.models import Campaign, Judgment
from rewards.bulk import select_int_matrix


@dataclass(frozen=True)
class ExpertQualityInput:
    expert_id: int
    n: int
    matches: int
    n_compared: int
    f_rater: float
    f_consensus: float
    gold_correct: int
    gold_n: int


def epoch_quality_inputs(epoch) -> list[ExpertQualityInput]:
    """Quality inputs of every expert with an accepted judgment in ``epoch``, ordered by expert id."""
    window = Q(submitted_at__gte=epoch.starts_at, submitted_at__lt=epoch.ends_at)
    counts = (
        Judgment.objects.filter(window, campaign_id=epoch.campaign_id, voided=False)
        .values("expert_id")
        .annotate(
            n=Count("id"),
            gold_n=Count("id", filter=Q(is_gold=True, gold_correct__isnull=False)),
            gold_correct=Count("id", filter=Q(is_gold=True, gold_correct=True)),
        )
        .order_by("expert_id")
    )
    rows = list(counts.values_list("expert_id", "n", "gold_n", "gold_correct"))
    if not rows:
        return []
    agreement = _agreement_counts(epoch)
    out = []
    for expert_id, n, gold_n, gold_correct in rows:
        matches, compared, rater_first, consensus_first = agreement.get(expert_id, (0, 0, 0, 0))
        out.append(
            ExpertQualityInput(
                expert_id=expert_id,
                n=n,
                matches=matches,
                n_compared=compared,
                f_rater=rater_first / compared if compared else 0.5,
                f_consensus=consensus_first / compared if compared else 0.5,
                gold_correct=gold_correct,
                gold_n=gold_n,
            )
        )
    return out


def _agreement_counts(epoch) -> dict[int, tuple[int, int, int, int]]:
    """expert id -> (matches, compared, own 'earlier better' count, consensus 'earlier better' count)."""
    k = Campaign.objects.filter(pk=epoch.campaign_id).values_list("responses_per_task", flat=True).first() or 2
    pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
    if connection.vendor == "postgresql":
        task, expert, in_epoch, direction = _directions_postgres(epoch, pairs)
    else:
        task, expert, in_epoch, direction = _directions_orm(epoch, pairs)
    return _agreement_from_directions(task, expert, in_epoch, direction)


def _directions_postgres(epoch, pairs):
    """One COPY of integer columns: the database does the JSON work for 1M judgments."""
    # sign(rank_b - rank_a): +1 when the earlier response a is ranked better (lower), -1 worse, 0 tie or missing.
    signs = ", ".join(
        f"coalesce(sign((j.ranks->>{b})::numeric - (j.ranks->>{a})::numeric), 0)::int" for a, b in pairs
    )
    sql = (
        f"SELECT j.task_id, j.expert_id, (j.submitted_at >= %s AND j.submitted_at < %s)::int, {signs} "
        "FROM annotations_judgment j "
        "WHERE j.campaign_id = %s AND NOT j.voided AND NOT j.is_gold AND j.task_id IN ("
        "  SELECT task_id FROM annotations_judgment WHERE campaign_id = %s AND NOT voided AND NOT is_gold"
        "  AND submitted_at >= %s AND submitted_at < %s)"
    )
    start, end, campaign = epoch.starts_at, epoch.ends_at, epoch.campaign_id
    rows = select_int_matrix(sql, [start, end, campaign, campaign, start, end], 3 + len(pairs))
    return rows[:, 0], rows[:, 1], rows[:, 2].astype(bool), rows[:, 3:]


def _directions_orm(epoch, pairs):
    in_epoch_tasks = Judgment.objects.filter(
        campaign_id=epoch.campaign_id, voided=False, is_gold=False,
        submitted_at__gte=epoch.starts_at, submitted_at__lt=epoch.ends_at,
    ).values("task_id")
    rows = list(
        Judgment.objects.filter(campaign_id=epoch.campaign_id, voided=False, is_gold=False, task_id__in=in_epoch_tasks)
        .values_list("task_id", "expert_id", "ranks", "submitted_at")
        .order_by()
    )
    direction = np.zeros((len(rows), len(pairs)), dtype=np.int64)
    for row, (_, _, ranks, _) in enumerate(rows):
        for p, (a, b) in enumerate(pairs):
            if b < len(ranks) and ranks[a] != ranks[b]:
                direction[row, p] = 1 if ranks[a] < ranks[b] else -1
    task = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    expert = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    in_epoch = np.fromiter((epoch.starts_at <= r[3] < epoch.ends_at for r in rows), dtype=bool, count=len(rows))
    return task, expert, in_epoch, direction


def _agreement_from_directions(task, expert, in_epoch, direction) -> dict[int, tuple[int, int, int, int]]:
    """Leave-one-out majority per (task, pair); counts per expert over the epoch's judgments."""
    if task.size == 0:
        return {}
    n_pairs = direction.shape[1]
    _, task_idx = np.unique(task, return_inverse=True)
    has = direction != 0  # ties say nothing
    rows, cols = np.nonzero(has)
    unit = task_idx[rows] * n_pairs + cols
    vote = (direction[rows, cols] > 0).astype(np.int64)  # 1: the earlier response is better
    owner = expert[rows]
    count_it = in_epoch[rows]
    if unit.size == 0:
        return {}

    _, unit_idx = np.unique(unit, return_inverse=True)
    earlier_votes = np.bincount(unit_idx, weights=vote).astype(np.int64)
    all_votes = np.bincount(unit_idx)
    others_earlier = earlier_votes[unit_idx] - vote
    others_later = (all_votes[unit_idx] - earlier_votes[unit_idx]) - (1 - vote)
    defined = (others_earlier != others_later) & count_it
    consensus_earlier = others_earlier > others_later
    match = defined & (vote == consensus_earlier)

    experts, expert_idx = np.unique(owner[defined], return_inverse=True)
    size = experts.size
    matches = np.bincount(expert_idx, weights=match[defined], minlength=size)
    compared = np.bincount(expert_idx, minlength=size)
    rater_first = np.bincount(expert_idx, weights=vote[defined], minlength=size)
    consensus_first = np.bincount(expert_idx, weights=consensus_earlier[defined], minlength=size)
    return {
        int(e): (int(m), int(c), int(r), int(f))
        for e, m, c, r, f in zip(experts.tolist(), matches.tolist(), compared.tolist(),
                                 rater_first.tolist(), consensus_first.tolist())
    }
