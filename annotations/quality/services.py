"""Quality jobs: per-task consensus, campaign agreement and signals, adaptive overlap.

Both entry points are safe to run twice and concurrently:

* ``campaign_quality_compute`` reads without locks, computes, then writes in
  short transactions. The first locks the campaign row, compares the input
  fingerprint with the latest report (same inputs: nothing is written) and
  creates the next report version. Every later batch locks the campaign row
  again and stops if a newer report exists, so an older run never finishes
  over a newer one.
* ``task_consensus_update`` (queued when a task reaches its overlap) locks
  the task's consensus row; both jobs skip a row whose stored
  ``last_judgment_id`` is newer than what they computed from.
* Adaptive overlap is a conditional UPDATE (still complete, all wanted
  judgments in, margin under the bar), so a task is raised once per decision.
"""
from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime, timedelta

import numpy as np
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone

from annotations import signals
from annotations.models import (
    Campaign, Judgment, QualityReport, RaterQuality, RationaleMatch, Task, TaskConsensus,
)
from annotations.quality import compute, loading, writing
from annotations.quality.compute import CampaignQuality
from annotations.services import ServiceError

logger = logging.getLogger(__name__)

# Bump when the maths changes, so unchanged inputs are recomputed once.
ALGORITHM_VERSION = 2
# Consensus rows written per transaction.
WRITE_BATCH = 10_000
# Copied rationales are the slow signal (~1 s per 100k rationales), so each
# run checks only tasks with judgments since the last check, plus at most
# this many judgments of an older backlog (a first run on a large campaign
# works through it over a few periodic runs).
RATIONALE_BUDGET = 100_000
# Judgments committed slightly out of order are rechecked: the window reaches back this far.
RATIONALE_SLACK = timedelta(minutes=10)


# --------------------------------------------------------------------------
# Adaptive overlap
# --------------------------------------------------------------------------


def tasks_adapt_overlap(*, campaign: Campaign, task_ids: list[int] | None = None) -> dict[str, int]:
    """Complete tasks whose consensus is not settled get another rater, or go to review.

    Not settled: the margin is under the campaign's minimum, or some pair has
    fewer effective votes than ``compute.min_effective_votes`` (two with the
    default overlap: one reliable rater against two poor ones is one opinion,
    not a consensus).

    Below ``max_overlap`` the task's ``target_overlap`` rises by one and it
    opens again; at ``max_overlap`` it waits for a moderator (REVIEW). Each
    outcome is one conditional UPDATE (state complete, all wanted judgments
    in, margin under the bar), so two jobs deciding on the same task change
    it once: the second finds it no longer complete.
    """
    disagreeing = Task.objects.filter(
        Q(consensus__margin__lt=campaign.consensus_min_margin)
        | Q(consensus__effective_votes__lt=compute.min_effective_votes(campaign.overlap)),
        campaign=campaign, is_gold=False, state=Task.State.COMPLETE, judgment_count__gte=F("target_overlap"),
    )
    if task_ids is not None:
        disagreeing = disagreeing.filter(id__in=task_ids)
    with transaction.atomic():
        review = disagreeing.filter(target_overlap__gte=campaign.max_overlap).update(state=Task.State.REVIEW)
    with transaction.atomic():
        raised = disagreeing.filter(target_overlap__lt=campaign.max_overlap).update(
            target_overlap=F("target_overlap") + 1, state=Task.State.OPEN,
        )
    return {"raised": raised, "review": review}


def task_adjudicate(*, task: Task, moderator) -> Task:
    """A moderator settles a task in review: its stored consensus stands, no more raters are sought."""
    changed = Task.objects.filter(pk=task.pk, state=Task.State.REVIEW).update(state=Task.State.ADJUDICATED)
    if not changed:
        raise ServiceError("only a task awaiting review can be adjudicated.", status=409)
    logger.info("task %s adjudicated by %s", task.pk, moderator)
    task.state = Task.State.ADJUDICATED
    return task


# --------------------------------------------------------------------------
# Per task, between campaign runs
# --------------------------------------------------------------------------


def _fallback_weights(campaign: Campaign, expert_ids: list[int]) -> dict[int, float]:
    """Weights of raters the campaign job has not estimated yet: their gold accuracy (smoothed), else the prior."""
    gold = {
        row["expert_id"]: row for row in Judgment.objects.filter(
            campaign=campaign, expert_id__in=expert_ids, is_gold=True, gold_correct__isnull=False, voided=False,
        ).values("expert_id").annotate(n=Count("id"), right=Count("id", filter=Q(gold_correct=True))).order_by()
    }
    reliability = np.array([
        (gold[e]["right"] + 1) / (gold[e]["n"] + 2) if e in gold else compute.PRIOR_RELIABILITY for e in expert_ids
    ])
    return dict(zip(expert_ids, compute.reliability_log_odds(reliability).tolist()))


def _needs_more_raters(task: Task, campaign: Campaign, values: dict) -> bool:
    """``tasks_adapt_overlap``'s condition, on the figures just computed: only then is its UPDATE sent."""
    return (task.state == Task.State.COMPLETE and task.judgment_count >= task.target_overlap
            and (values["margin"] < campaign.consensus_min_margin
                 or (values["effective_votes"] is not None
                     and values["effective_votes"] < compute.min_effective_votes(campaign.overlap))))


def task_consensus_update(*, task_id: int) -> TaskConsensus | None:
    """Recompute one task's consensus from its judgments and the stored rater weights, then adapt its overlap.

    Raters the campaign job has not seen yet count with their smoothed gold
    accuracy (or the prior), clipped at the campaign's cap times the median
    weight of the last campaign run. Kept to a few statements: the task with
    its campaign and stored consensus, then :func:`_consensus_of` (the
    judgments, the weights, the latest report's version, one write); the
    overlap UPDATEs are sent only when the new consensus is unsettled.
    """
    task = Task.objects.select_related("campaign", "consensus").filter(pk=task_id).first()
    if task is None or task.is_gold:
        return None
    written = _consensus_of(task.campaign, [task])
    if task_id not in written:
        return None
    consensus = written[task_id]
    return consensus if consensus is not None else TaskConsensus.objects.filter(task_id=task_id).first()


def tasks_consensus_update(*, campaign: Campaign, task_ids: list[int]) -> int:
    """``task_consensus_update`` for many tasks of one campaign at once; returns the rows written.

    The consensus drain's unit of work (``annotations.followup``): the statements are per batch, not per
    task (the tasks, the judgments, the weights, the version, the token counts of first consensuses, then
    one write per task), so a worker computing a hundred completions pays the reads once.
    """
    tasks = list(Task.objects.select_related("consensus").filter(campaign=campaign, pk__in=task_ids, is_gold=False))
    return sum(1 for row in _consensus_of(campaign, tasks).values() if row is not None)


def _consensus_of(campaign: Campaign, tasks: list[Task]) -> dict[int, TaskConsensus | None]:
    """Compute and write the consensus of ``tasks`` (non-gold, one campaign, ``consensus`` selected).

    Returns task id -> the row written, or None where a row computed from a later judgment was kept;
    tasks without a counted judgment are left out.
    """
    if not tasks:
        return {}
    by_id = {task.pk: task for task in tasks}
    judgments, _ = loading.load_judgments(campaign.pk, campaign.responses_per_task, task_ids=list(by_id))
    if judgments.size == 0:
        return {}
    experts = sorted(set(judgments.expert_id.tolist()))
    weights = dict(RaterQuality.objects.filter(campaign=campaign, expert_id__in=experts)
                   .values_list("expert_id", "vote_weight"))
    version, median = QualityReport.objects.filter(campaign=campaign).order_by("-version").values_list(
        "version", "figures__weight_median").first() or (0, None)
    missing = [e for e in experts if e not in weights]
    if missing:
        for expert_id, weight in _fallback_weights(campaign, missing).items():
            weights[expert_id] = min(weight, campaign.consensus_weight_cap * median) if median else weight
    rows = compute.single_task_consensus(judgments, weights, compute.reliability_log_odds(
        np.array([compute.PRIOR_RELIABILITY]))[0])
    records = list(rows.records(range(rows.task_id.size)))
    stored = {task_id: getattr(by_id[task_id], "consensus", None) for task_id in (r["task_id"] for r in records)}
    uncounted = [t for t, row in stored.items() if row is None or row.tokens is None]
    counted = loading.tasks_tokens_of(uncounted) if uncounted else {}
    now = timezone.now()
    written: dict[int, TaskConsensus | None] = {}
    unsettled = []
    for values in records:
        task_id = values.pop("task_id")
        tokens = counted.get(task_id) if task_id in counted else stored[task_id].tokens
        row = writing.consensus_write_one(task_id, campaign.pk, values, version=version, tokens=tokens, now=now)
        written[task_id] = row
        if row is not None and _needs_more_raters(by_id[task_id], campaign, values):
            unsettled.append(task_id)
    if unsettled:
        tasks_adapt_overlap(campaign=campaign, task_ids=unsettled)
    return written


# --------------------------------------------------------------------------
# Per campaign
# --------------------------------------------------------------------------


def _fingerprint(campaign: Campaign, judgments: compute.Judgments, stakes: np.ndarray,
                 gold: dict[int, list[int]]) -> str:
    """Judgments' rankings never change after submission (voiding removes them), so their ids stand for
    their content; a gold verdict can change (a dispute overturns it), so the verdicts are part of it."""
    digest = hashlib.blake2b(digest_size=32)
    order = np.argsort(judgments.judgment_id, kind="stable")
    digest.update(judgments.judgment_id[order].tobytes())
    digest.update(np.asarray(judgments.gold_correct)[order].astype(np.int8).tobytes())
    digest.update(np.asarray(stakes, dtype=np.int64).tobytes())
    digest.update(repr(sorted(gold.items())).encode())
    digest.update(repr((ALGORITHM_VERSION, campaign.gold_bar, campaign.consensus_weight_cap,
                        campaign.consensus_min_margin, campaign.max_overlap)).encode())
    return digest.hexdigest()


def campaign_quality_compute(*, campaign_id: int, seed: int = 0) -> QualityReport | None:
    """Compute a campaign's consensus, agreement and signals and store them; adapt overlap of disagreeing tasks.

    Returns the campaign's current report (the existing one when nothing
    changed since it was computed), or None when there are no judgments.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    clock = [started]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - clock[0], 3)
        clock[0] = now

    snapshot_at = timezone.now()
    campaign = Campaign.objects.get(pk=campaign_id)
    judgments, _ = loading.load_judgments(campaign.pk, campaign.responses_per_task)
    latest = QualityReport.objects.filter(campaign=campaign).order_by("-version").first()
    if judgments.size == 0:
        return latest
    raters = np.unique(judgments.expert_id)
    stake_of = loading.bonded_stakes(raters.tolist())
    stakes = np.array([stake_of.get(int(e), 0) for e in raters], dtype=np.int64)
    gold = loading.gold_ranks(campaign.pk)
    fingerprint = _fingerprint(campaign, judgments, stakes, gold)
    backlog = latest is not None and latest.figures.get("rationale_backlog_after") is not None
    if latest is not None and latest.fingerprint == fingerprint and not backlog:
        return latest
    tokens = loading.task_tokens(campaign.pk)
    lap("load")

    result = compute.campaign_quality(
        judgments, gold_ranks=gold, stakes=stakes, tokens=tokens, gold_bar=campaign.gold_bar,
        weight_cap=campaign.consensus_weight_cap, seed=seed,
    )
    lap("maths")
    matches, rationale_state = _copied_rationales(campaign, judgments, latest, snapshot_at)
    lap("rationales")
    report = _write_campaign(campaign, result, matches, rationale_state, fingerprint, tokens, snapshot_at, started)
    if report is None:  # a newer run got there first
        return QualityReport.objects.filter(campaign=campaign).order_by("-version").first()
    lap("write")
    adapted = tasks_adapt_overlap(campaign=campaign)
    lap("adaptive_overlap")
    report.figures["adaptive_overlap"] = adapted
    report.figures["timings_s"] = timings
    report.duration_ms = int((time.perf_counter() - started) * 1000)
    QualityReport.objects.filter(pk=report.pk).update(figures=report.figures, duration_ms=report.duration_ms)
    return report


def _copied_rationales(campaign: Campaign, judgments: compute.Judgments, latest: QualityReport | None,
                       snapshot_at: datetime) -> tuple[list[tuple[int, int, int, float]], dict]:
    """Near-copies among rationales of tasks with new judgments, then a bounded slice of the backlog.

    Tasks with a judgment since the last check always go first; older tasks
    never checked (a campaign's first run, or a backlog left by the budget)
    follow in task order up to ``RATIONALE_BUDGET`` judgments, and the
    report remembers where the backlog resumes. Returns ``(task, later
    judgment, earlier judgment, similarity)`` per flagged pair, and the
    checking state to store on the report.
    """
    tasks, per_task = np.unique(judgments.task_id, return_counts=True)
    pairable = tasks[per_task >= 2]
    since = latest.rationales_checked_until if latest is not None else None
    after = latest.figures.get("rationale_backlog_after") if latest is not None else None
    if since is None:  # never checked: everything is backlog
        recent, backlog = pairable[:0], pairable
    else:
        new_ids = set(
            Judgment.objects.filter(campaign=campaign, voided=False, submitted_at__gte=since - RATIONALE_SLACK)
            .values_list("task_id", flat=True).distinct().order_by()
        )
        recent = pairable[np.isin(pairable, np.fromiter(new_ids, dtype=np.int64, count=len(new_ids)))]
        backlog = pairable[pairable > after] if after is not None else pairable[:0]
        backlog = backlog[~np.isin(backlog, recent)]
    budget = RATIONALE_BUDGET - int(per_task[np.searchsorted(tasks, recent)].sum())
    take = int(np.searchsorted(np.cumsum(per_task[np.searchsorted(tasks, backlog)]), max(budget, 0), side="right"))
    if recent.size == 0 and backlog.size:
        take = max(take, 1)  # always make progress
    if take >= backlog.size:
        resume_after = None
    elif take > 0:
        resume_after = int(backlog[take - 1])
    else:
        resume_after = after if after is not None else int(backlog[0]) - 1
    chosen = np.concatenate([recent, backlog[:take]])
    state = {"checked_until": snapshot_at, "backlog_after": resume_after, "checked_tasks": int(chosen.size)}
    if chosen.size == 0:
        return [], state
    rows: list[tuple[int, int, int, str]] = []
    chosen_ids = chosen.tolist()
    for start in range(0, len(chosen_ids), 5000):
        rows.extend(Judgment.objects.filter(
            campaign=campaign, voided=False, task_id__in=chosen_ids[start : start + 5000],
        ).exclude(rationale="").values_list("id", "task_id", "expert_id", "rationale").order_by())
    if len(rows) < 2:
        return [], state
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    task = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    rater = np.fromiter((r[2] for r in rows), dtype=np.int64, count=len(rows))
    found = signals.copied_rationales(rater, task, [r[3] for r in rows], threshold=compute.COPIED_THRESHOLD)
    matches = []
    for a, b, similarity in zip(found.judgment_a[found.flagged].tolist(), found.judgment_b[found.flagged].tolist(),
                                found.similarity[found.flagged].tolist()):
        earlier, later = sorted((int(ids[a]), int(ids[b])))
        matches.append((int(task[a]), later, earlier, float(similarity)))
    return matches, state


def _still_newest(campaign_id: int, version: int) -> bool:
    Campaign.objects.select_for_update().filter(pk=campaign_id).values_list("id", flat=True).first()
    newest = QualityReport.objects.filter(campaign_id=campaign_id).order_by("-version").values_list(
        "version", flat=True).first()
    return newest == version


def _write_campaign(campaign: Campaign, result: CampaignQuality, matches: list, rationale_state: dict,
                    fingerprint: str, tokens: dict[int, int], snapshot_at: datetime, started: float,
                    ) -> QualityReport | None:
    now = timezone.now()
    with transaction.atomic():
        Campaign.objects.select_for_update().filter(pk=campaign.pk).values_list("id", flat=True).first()
        latest = QualityReport.objects.filter(campaign=campaign).order_by("-version").first()
        if latest is not None and latest.fingerprint == fingerprint and \
                latest.figures.get("rationale_backlog_after") is None:
            return None
        version = (latest.version if latest else 0) + 1
        figures = dict(result.figures, rationale_backlog_after=rationale_state["backlog_after"],
                       rationale_checked_tasks=rationale_state["checked_tasks"],
                       max_judgment_id=int(result.tasks.last_judgment_id.max()) if result.tasks.task_id.size else 0)
        RationaleMatch.objects.bulk_create([
            RationaleMatch(campaign=campaign, task_id=t, judgment_id=later, source_id=earlier, similarity=s,
                           found_at=now) for t, later, earlier, s in matches
        ], ignore_conflicts=True)
        raters = writing.rater_rows(campaign, result, version, now)
        figures["signals"] = {name.removeprefix("flag_"): sum(getattr(r, name) for r in raters)
                              for name in RaterQuality.FLAG_FIELDS}
        figures["flagged_raters"] = sum(r.flagged for r in raters)
        report = QualityReport.objects.create(
            campaign=campaign, version=version, computed_at=now, fingerprint=fingerprint,
            n_judgments=result.figures["n_judgments"], n_tasks=result.figures["n_tasks"],
            n_raters=result.figures["n_raters"], figures=figures,
            rationales_checked_until=rationale_state["checked_until"],
            duration_ms=int((time.perf_counter() - started) * 1000),
        )
        writing.raters_write(raters)
        RaterQuality.objects.filter(campaign=campaign).exclude(
            expert_id__in=[int(e) for e in result.expert_id]).delete()

    rows, written = result.tasks, 0
    for start in range(0, rows.task_id.size, WRITE_BATCH):
        with transaction.atomic():
            if not _still_newest(campaign.pk, version):
                logger.info("quality v%s of campaign %s superseded; stopping writes", version, campaign.pk)
                return report
            written += writing.consensus_batch_write(
                campaign.pk, rows, range(start, min(start + WRITE_BATCH, rows.task_id.size)), version, tokens, now,
            )
    # A task whose every judgment was voided has no consensus any more.
    counted = Judgment.objects.filter(task_id=OuterRef("task_id"), voided=False)
    TaskConsensus.objects.filter(campaign=campaign).exclude(Exists(counted)).delete()
    report.figures["consensus_rows_written"] = written
    return report
