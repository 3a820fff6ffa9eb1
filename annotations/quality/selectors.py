"""Reads of the quality results: the lab's quality view, consensus rows, and settlement inputs.

Nothing here names an expert to a lab: raters appear by their per-campaign
handle only (``annotations.handles``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.db.models import Count, F, Q, QuerySet, Window
from django.db.models.functions import RowNumber

from annotations import selectors as annotation_selectors
from annotations.models import Campaign, Judgment, QualityReport, RaterQuality, Task, TaskConsensus
from annotations.quality import compute, loading

HISTOGRAM_BINS = 10
ALPHA_HISTORY = 100


def margin_histogram(campaign: Campaign) -> list[dict[str, Any]]:
    """Consensus margins of the campaign's tasks in ten bins of width 0.1 (the last one includes 1.0), one query."""
    edges = [round(b / HISTOGRAM_BINS, 2) for b in range(HISTOGRAM_BINS + 1)]
    counts = {}
    for b in range(HISTOGRAM_BINS):
        condition = Q(margin__gte=edges[b])
        if b < HISTOGRAM_BINS - 1:
            condition &= Q(margin__lt=edges[b + 1])
        counts[f"b{b}"] = Count("task_id", filter=condition)
    totals = TaskConsensus.objects.filter(campaign=campaign).aggregate(**counts)
    return [{"low": edges[b], "high": edges[b + 1], "count": totals[f"b{b}"]} for b in range(HISTOGRAM_BINS)]


def alpha_history(campaign: Campaign, limit: int = ALPHA_HISTORY) -> list[dict[str, Any]]:
    """Alpha with its interval per report, oldest first (the latest ``limit`` reports)."""
    reports = list(
        QualityReport.objects.filter(campaign=campaign).order_by("-version")
        .values_list("version", "computed_at", "n_judgments", "figures")[:limit]
    )
    return [
        {"version": version, "computed_at": at, "n_judgments": n,
         "nominal": figures.get("alpha_nominal") or {}, "ordinal": figures.get("alpha_ordinal") or {}}
        for version, at, n, figures in reversed(reports)
    ]


def rater_rows(campaign: Campaign) -> list[dict[str, Any]]:
    """Per-rater figures by handle, flagged raters first. Carries no expert id, name or e-mail."""
    rows = RaterQuality.objects.filter(campaign=campaign).order_by("-flagged", "handle")
    return [
        {
            "handle": r.handle, "n_judgments": r.n_judgments, "agreement": r.agreement, "n_compared": r.n_compared,
            "reliability": r.reliability, "gold_accuracy": r.gold_accuracy, "gold_lower_bound": r.gold_lower_bound,
            "gold_n": r.gold_n, "median_seconds": r.median_seconds, "flags": r.flags, "evidence": r.evidence,
        }
        for r in rows
    ]


def consensus_summary(campaign: Campaign) -> dict[str, Any]:
    stats = TaskConsensus.objects.filter(campaign=campaign).aggregate(
        tasks=Count("task_id"), settled=Count("task_id", filter=Q(margin__gte=campaign.consensus_min_margin) & (
            Q(effective_votes__isnull=True) | Q(effective_votes__gte=compute.min_effective_votes(campaign.overlap)))),
    )
    states = dict(
        Task.objects.filter(campaign=campaign, is_gold=False, consensus__isnull=False)
        .values("state").annotate(n=Count("id")).order_by().values_list("state", "n")
    )
    return {
        "tasks": stats["tasks"], "settled": stats["settled"], "min_margin": campaign.consensus_min_margin,
        "awaiting_raters": states.get(Task.State.OPEN, 0), "in_review": states.get(Task.State.REVIEW, 0),
        "adjudicated": states.get(Task.State.ADJUDICATED, 0),
    }


def campaign_quality(campaign: Campaign) -> dict[str, Any]:
    """Everything the quality endpoint and the lab dashboard show."""
    latest = QualityReport.objects.filter(campaign=campaign).order_by("-version").first()
    figures = latest.figures if latest else {}
    return {
        "campaign": campaign.pk,
        "computed_at": latest.computed_at if latest else None,
        "version": latest.version if latest else None,
        "n_judgments": latest.n_judgments if latest else 0,
        "n_tasks": latest.n_tasks if latest else 0,
        "n_raters": latest.n_raters if latest else 0,
        "alpha_nominal": figures.get("alpha_nominal"),
        "alpha_ordinal": figures.get("alpha_ordinal"),
        "raw_agreement": figures.get("raw_agreement"),
        "kappa": figures.get("kappa"),
        "kendall_w": figures.get("kendall_w"),
        "consensus": consensus_summary(campaign),
        "margin_histogram": margin_histogram(campaign),
        "alpha_history": alpha_history(campaign),
        "raters": rater_rows(campaign),
        "signals": figures.get("signals") or {},
        "progress": annotation_selectors.campaign_progress(campaign),
    }


def campaign_consensus(campaign: Campaign, *, max_margin: float | None = None,
                       state: str | None = None) -> QuerySet[TaskConsensus]:
    """The campaign's per-task consensus, weakest first."""
    queryset = TaskConsensus.objects.filter(campaign=campaign).select_related("task")
    if max_margin is not None:
        queryset = queryset.filter(margin__lte=max_margin)
    if state:
        queryset = queryset.filter(task__state=state)
    return queryset.order_by("margin", "task_id")


# --------------------------------------------------------------------------
# Settlement inputs: what rewards.settlement pays on
# --------------------------------------------------------------------------

# Gold record per person: the latest this many gold verdicts across every
# campaign. Gold is the anchor no ring can outvote, so it follows the person
# (the vetted expert), not the account's epoch in one campaign, where a
# handful of answers said little and splitting work kept each account under
# any threshold. 200 answers pin accuracy to about +-0.06 and still let an
# expert who improves leave old mistakes behind.
GOLD_WINDOW = 200


@dataclass(frozen=True)
class RaterEpochQuality:
    """One expert's settlement inputs for an epoch of a campaign.

    n counts the epoch's accepted judgments (what is paid for). The agreement
    figures compare the expert's pair directions with the reliability-weighted
    leave-one-out consensus over the history window (the epoch and the ones
    before it that settlement asks for); the gold figures are the person's
    rolling gold record (``GOLD_WINDOW`` latest verdicts, every campaign).
    ``weighted_*`` count each comparison by the consensus's certainty, and
    f_rater / f_consensus are weighted the same way.
    """

    expert_id: int
    n: int
    matches: int
    n_compared: int
    f_rater: float
    f_consensus: float
    gold_correct: int
    gold_n: int
    gold_in_epoch: int = 0
    # The same, each comparison counted by the consensus's certainty (what the maths uses).
    weighted_matches: float = 0.0
    weighted_compared: float = 0.0


def expert_gold_records(expert_ids: list[int], *, until: datetime, window: int = GOLD_WINDOW,
                        since: datetime | None = None) -> dict[int, tuple[int, int]]:
    """expert id -> (correct, answered) over their latest ``window`` gold verdicts submitted before ``until``.

    Voided judgments and gold answers without a verdict do not count. With
    ``since``, only verdicts submitted from then on count (used for the
    epoch's own gold count).
    """
    if not expert_ids:
        return {}
    queryset = Judgment.objects.filter(
        expert_id__in=expert_ids, is_gold=True, gold_correct__isnull=False, voided=False, submitted_at__lt=until,
    )
    if since is not None:
        queryset = queryset.filter(submitted_at__gte=since)
        rows = queryset.values("expert_id").annotate(
            n=Count("id"), right=Count("id", filter=Q(gold_correct=True))).order_by()
        return {r["expert_id"]: (r["right"], r["n"]) for r in rows}
    ranked = queryset.annotate(
        recent=Window(RowNumber(), partition_by=[F("expert_id")], order_by=[F("submitted_at").desc(), F("id").desc()]),
    ).filter(recent__lte=window).values_list("expert_id", "gold_correct")
    out: dict[int, list[int]] = {}
    for expert_id, correct in ranked:
        record = out.setdefault(expert_id, [0, 0])
        record[0] += bool(correct)
        record[1] += 1
    return {e: (c, n) for e, (c, n) in out.items()}


def rater_epoch_quality(*, campaign_id: int, starts_at: datetime, ends_at: datetime,
                        history_from: datetime | None = None) -> list[RaterEpochQuality]:
    """Settlement's quality inputs for every expert with an accepted judgment submitted in ``[starts_at, ends_at)``.

    Agreement is measured against the campaign's one quality model, the
    *reliability-weighted* leave-one-out consensus: for each pair direction
    the expert gave on a non-gold task in ``[history_from, ends_at)``, the
    other raters' votes on that pair (all epochs, voided left out) are summed
    with their stored vote weights (``RaterQuality.vote_weight``: gold-anchored
    reliability x clipped stake, as the quality job wrote them; raters not
    yet estimated count with the prior), and the side with more weight is the
    consensus; an exact tie, or no other vote, is no consensus. f_rater /
    f_consensus are the shares of compared directions saying "the earlier
    response is better". Gold is the person's rolling record
    (``expert_gold_records``). Ordered by expert id.
    """
    history_from = history_from if history_from is not None and history_from < starts_at else starts_at
    campaign = Campaign.objects.get(pk=campaign_id)
    judgments, (in_history, in_epoch) = loading.load_judgments_windows(
        campaign.pk, campaign.responses_per_task, window=(history_from, ends_at), inner=(starts_at, ends_at),
    )
    if judgments.size == 0 or not in_epoch.any():
        return []
    experts = np.unique(judgments.expert_id[in_epoch])
    n = np.bincount(np.searchsorted(experts, judgments.expert_id[in_epoch]), minlength=experts.size)

    real = ~judgments.is_gold
    j = judgments.take(real)
    window_rows = in_history[real] & np.isin(j.expert_id, experts)
    direction, _ = compute.pair_directions(j)
    stored = dict(RaterQuality.objects.filter(campaign=campaign).values_list("expert_id", "vote_weight"))
    prior = float(compute.reliability_log_odds(np.array([compute.PRIOR_RELIABILITY]))[0])
    weight = np.array([stored.get(int(e), prior) for e in j.expert_id.tolist()], dtype=np.float64)
    n_pairs = direction.shape[1]
    _, task_row = np.unique(j.task_id, return_inverse=True)
    unit = (task_row[:, None] * n_pairs + np.arange(n_pairs)[None, :]).ravel()
    vote = (np.sign(direction) * weight[:, None]).ravel()
    total = np.bincount(unit, weights=vote, minlength=int(task_row.max(initial=-1) + 1) * n_pairs)
    others = total[unit] - vote
    decided = direction.ravel() != 0
    owner = np.repeat(j.expert_id, n_pairs)
    compared = decided & np.repeat(window_rows, n_pairs) & (np.abs(others) > 1e-9)
    says_earlier = direction.ravel() > 0
    consensus_earlier = others > 0
    rows = np.searchsorted(experts, owner[compared])
    # Each comparison counts by how sure the consensus is, 2 sigmoid(|others|) - 1 (the vote weights are
    # log-odds): matching two light votes (two poor raters, or two accounts of one ring alone on a task) is
    # weak evidence, matching a settled consensus strong. Integer counts are kept for people to read.
    sure = (2.0 / (1.0 + np.exp(-np.abs(others[compared])))) - 1.0
    match = (says_earlier == consensus_earlier)[compared]
    matches = np.bincount(rows, weights=match * sure, minlength=experts.size)
    n_compared = np.bincount(rows, weights=sure, minlength=experts.size)
    matches_count = np.bincount(rows, weights=match, minlength=experts.size)
    compared_count = np.bincount(rows, minlength=experts.size)
    rater_first = np.bincount(rows, weights=says_earlier[compared] * sure, minlength=experts.size)
    consensus_first = np.bincount(rows, weights=consensus_earlier[compared] * sure, minlength=experts.size)

    ids = [int(e) for e in experts.tolist()]
    gold = expert_gold_records(ids, until=ends_at)
    gold_now = expert_gold_records(ids, until=ends_at, since=starts_at)
    out = []
    for r, expert_id in enumerate(ids):
        c = float(n_compared[r])
        correct, answered = gold.get(expert_id, (0, 0))
        out.append(RaterEpochQuality(
            expert_id=expert_id, n=int(n[r]), matches=int(matches_count[r]), n_compared=int(compared_count[r]),
            f_rater=float(rater_first[r] / c) if c > 0 else 0.5,
            f_consensus=float(consensus_first[r] / c) if c > 0 else 0.5,
            gold_correct=int(correct), gold_n=int(answered), gold_in_epoch=gold_now.get(expert_id, (0, 0))[1],
            weighted_matches=float(min(matches[r], c)), weighted_compared=c,
        ))
    return out
