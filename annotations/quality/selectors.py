"""Reads of the quality results: the lab's quality view, consensus rows, and settlement inputs.

Nothing here names an expert to a lab: raters appear by their per-campaign
handle only (``annotations.handles``).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from django.db.models import Count, Q, QuerySet

from annotations import selectors as annotation_selectors
from annotations.models import Campaign, QualityReport, RaterQuality, Task, TaskConsensus
from annotations.quality import compute, loading
from rewards.quality_inputs import ExpertQualityInput

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
        tasks=Count("task_id"), settled=Count("task_id", filter=Q(margin__gte=campaign.consensus_min_margin)),
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
# Settlement inputs (rewards.quality_inputs can call this)
# --------------------------------------------------------------------------


# The same fields and meaning as the inputs settlement pays on.
RaterEpochQuality = ExpertQualityInput


def rater_epoch_quality(*, campaign_id: int, starts_at: datetime, ends_at: datetime) -> list[RaterEpochQuality]:
    """Per expert with an accepted judgment submitted in ``[starts_at, ends_at)``: settlement's quality inputs.

    Like the placeholder in ``rewards.quality_inputs`` but against the
    *reliability-weighted* leave-one-out consensus: for each of the epoch's
    pair directions on a non-gold task, the other raters' votes on that pair
    (all epochs, voided left out) are summed with their stored vote weights
    (``RaterQuality.vote_weight``: Dawid-Skene reliability x clipped stake;
    raters not yet estimated count with the prior), and the direction with
    more weight is the consensus; an exact tie, or no weighted vote, is no
    consensus. f_rater / f_consensus are the shares of compared directions
    saying "the earlier response is better". Ordered by expert id.
    """
    campaign = Campaign.objects.get(pk=campaign_id)
    judgments, in_window = loading.load_judgments(campaign.pk, campaign.responses_per_task,
                                                  window=(starts_at, ends_at))
    if judgments.size == 0 or not in_window.any():
        return []
    assert in_window is not None
    experts = np.unique(judgments.expert_id[in_window])
    counted = in_window
    n = np.bincount(np.searchsorted(experts, judgments.expert_id[counted]), minlength=experts.size)
    on_gold = counted & judgments.is_gold & (judgments.gold_correct >= 0)
    gold_rows = np.searchsorted(experts, judgments.expert_id[on_gold])
    gold_n = np.bincount(gold_rows, minlength=experts.size)
    gold_correct = np.bincount(gold_rows, weights=judgments.gold_correct[on_gold] == 1, minlength=experts.size)

    real = ~judgments.is_gold
    j = judgments.take(real)
    window_rows = in_window[real]
    direction, _ = compute.pair_directions(j)
    stored = dict(RaterQuality.objects.filter(campaign=campaign).values_list("expert_id", "vote_weight"))
    prior = float(compute.reliability_log_odds(np.array([compute.PRIOR_RELIABILITY]))[0])
    weight = np.array([stored.get(int(e), prior) for e in j.expert_id.tolist()], dtype=np.float64)
    n_pairs = direction.shape[1]
    _, task_row = np.unique(j.task_id, return_inverse=True)
    unit = (task_row[:, None] * n_pairs + np.arange(n_pairs)[None, :]).ravel()
    vote = (np.sign(direction) * weight[:, None]).ravel()
    total = np.bincount(unit, weights=vote)
    others = total[unit] - vote
    decided = direction.ravel() != 0
    owner = np.repeat(j.expert_id, n_pairs)
    compared = decided & np.repeat(window_rows, n_pairs) & (np.abs(others) > 1e-9)
    says_earlier = direction.ravel() > 0
    consensus_earlier = others > 0
    rows = np.searchsorted(experts, owner[compared])
    matches = np.bincount(rows, weights=(says_earlier == consensus_earlier)[compared], minlength=experts.size)
    n_compared = np.bincount(rows, minlength=experts.size)
    rater_first = np.bincount(rows, weights=says_earlier[compared], minlength=experts.size)
    consensus_first = np.bincount(rows, weights=consensus_earlier[compared], minlength=experts.size)
    out = []
    for r, expert_id in enumerate(experts.tolist()):
        c = int(n_compared[r])
        out.append(RaterEpochQuality(
            expert_id=int(expert_id), n=int(n[r]), matches=int(matches[r]), n_compared=c,
            f_rater=float(rater_first[r] / c) if c else 0.5, f_consensus=float(consensus_first[r] / c) if c else 0.5,
            gold_correct=int(gold_correct[r]), gold_n=int(gold_n[r]),
        ))
    return out
