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
* Adaptive overlap is a compare-and-set on the task (state and
  ``target_overlap`` as read), so a task is raised once per decision.
"""
from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime, timedelta

import numpy as np
import orjson
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from annotations import signals
from annotations.handles import rater_handle
from annotations.models import (
    Campaign, Judgment, QualityReport, RaterQuality, RationaleMatch, Task, TaskConsensus,
)
from annotations.quality import compute, loading
from annotations.quality.compute import CampaignQuality, TaskConsensusRows
from annotations.services import ServiceError

logger = logging.getLogger(__name__)

# Bump when the maths changes, so unchanged inputs are recomputed once.
ALGORITHM_VERSION = 1
WRITE_BATCH = 10_000
# Pair figures are stored to three decimals, and a consensus row is rewritten
# only when they, the ranks or the rater count change: every rerun nudges
# the reliabilities, and rewriting 100k unchanged rows would cost seconds.
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
    """Complete tasks whose consensus margin is under the campaign's minimum get another rater, or go to review.

    Below ``max_overlap`` the task's ``target_overlap`` rises by one and it
    opens again; at ``max_overlap`` it waits for a moderator (REVIEW). Each
    outcome is one conditional UPDATE (state complete, all wanted judgments
    in, margin under the bar), so two jobs deciding on the same task change
    it once: the second finds it no longer complete.
    """
    disagreeing = Task.objects.filter(
        campaign=campaign, is_gold=False, state=Task.State.COMPLETE, judgment_count__gte=F("target_overlap"),
        consensus__margin__lt=campaign.consensus_min_margin,
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
# Consensus rows
# --------------------------------------------------------------------------


def _changed(old: tuple, new: dict, tokens: int | None) -> bool:
    _, ranks, _margin, n_raters, _, pairs, old_tokens = old
    if ranks != new["ranks"] or n_raters != new["n_raters"] or pairs != new["pairs"]:
        return True
    return old_tokens is None and tokens is not None


_CONSENSUS_FIELDS = ["ranks", "pairs", "margin", "n_raters", "method", "last_judgment_id", "version", "tokens",
                     "computed_at"]


def _write_consensus_batch(campaign_id: int, rows: TaskConsensusRows, batch: range, version: int,
                           tokens: dict[int, int], now: datetime) -> int:
    """Create or update one batch of consensus rows; the caller holds the campaign lock. Returns rows written."""
    if connection.vendor == "postgresql":
        return _upsert_consensus_postgres(campaign_id, rows, batch, version, tokens, now)
    records = list(rows.records(batch))
    existing = {
        row[0]: row for row in TaskConsensus.objects.select_for_update().filter(
            task_id__in=[r["task_id"] for r in records]).values_list(
            "task_id", "ranks", "margin", "n_raters", "last_judgment_id", "pairs", "tokens",
        )
    }
    create, update = [], []
    for values in records:
        task_id = values.pop("task_id")
        known_tokens = tokens.get(task_id)
        old = existing.get(task_id)
        if old is None:
            create.append(TaskConsensus(task_id=task_id, campaign_id=campaign_id, version=version,
                                        tokens=known_tokens, computed_at=now, **values))
        elif old[4] <= values["last_judgment_id"] and _changed(old, values, known_tokens):
            update.append(TaskConsensus(task_id=task_id, campaign_id=campaign_id, version=version,
                                        tokens=known_tokens if known_tokens is not None else old[6],
                                        computed_at=now, **values))
    # A row a concurrent task job created meanwhile is newer than ours: keep it.
    TaskConsensus.objects.bulk_create(create, ignore_conflicts=True)
    TaskConsensus.objects.bulk_update(update, _CONSENSUS_FIELDS, batch_size=500)
    return len(create) + len(update)


def _copy_upsert(model, columns: list[str], rows, *, conflict: list[str], update: list[str], where: str = "",
                 expressions: dict[str, str] | None = None) -> int:
    """PostgreSQL: COPY ``rows`` into a temporary table, then one ``INSERT ... ON CONFLICT DO UPDATE [WHERE]``.

    Django's ``bulk_update`` writes a CASE per row and field (seconds per
    10k rows) and its upsert has no WHERE; this takes milliseconds. JSON
    values must come as text. Runs inside the caller's transaction.
    """
    table, temp = model._meta.db_table, f"quality_in_{model._meta.db_table}"
    names = ", ".join(columns)
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor  # the driver's cursor, for COPY
        # Quality rows are derived data the next run rewrites: not worth a disk flush per batch.
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {temp} ON COMMIT DELETE ROWS AS "
                       f"SELECT {names} FROM {table} WITH NO DATA")
        cursor.execute(f"TRUNCATE {temp}")  # left over when the caller's transaction has not committed yet
        with cursor.copy(f"COPY {temp} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        expressions = expressions or {}
        assignments = ", ".join(f"{name} = {expressions.get(name, f'EXCLUDED.{name}')}" for name in update)
        cursor.execute(f"INSERT INTO {table} AS c ({names}) SELECT {names} FROM {temp} "
                       f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {assignments} {where}")
        return max(cursor.rowcount, 0)


def _json(value) -> str:
    return orjson.dumps(value).decode()


_CONSENSUS_COLUMNS = ["task_id", "campaign_id", "ranks", "pairs", "margin", "n_raters", "method", "version",
                      "last_judgment_id", "tokens", "computed_at"]
# An older computation never overwrites a newer one, and an unchanged row is left alone.
_CONSENSUS_WHERE = """
WHERE c.last_judgment_id <= EXCLUDED.last_judgment_id
  AND (c.ranks <> EXCLUDED.ranks OR c.pairs <> EXCLUDED.pairs OR c.n_raters <> EXCLUDED.n_raters
       OR (c.tokens IS NULL AND EXCLUDED.tokens IS NOT NULL))
"""


def _upsert_consensus_postgres(campaign_id: int, rows: TaskConsensusRows, batch: range, version: int,
                               tokens: dict[int, int], now: datetime) -> int:
    """The generic path's rule in one statement per batch."""
    records = (
        (v["task_id"], campaign_id, _json(v["ranks"]), _json(v["pairs"]), v["margin"], v["n_raters"], v["method"],
         version, v["last_judgment_id"], tokens.get(v["task_id"]), now)
        for v in rows.records(batch)
    )
    update = [c for c in _CONSENSUS_COLUMNS if c not in ("task_id", "campaign_id")]
    return _copy_upsert(TaskConsensus, _CONSENSUS_COLUMNS, records, conflict=["task_id"], update=update,
                        where=_CONSENSUS_WHERE, expressions={"tokens": "COALESCE(EXCLUDED.tokens, c.tokens)"})


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


def task_consensus_update(*, task_id: int) -> TaskConsensus | None:
    """Recompute one task's consensus from its judgments and the stored rater weights, then adapt its overlap.

    Raters the campaign job has not seen yet count with their smoothed gold
    accuracy (or the prior), clipped at the campaign's cap times the median
    weight of the last campaign run.
    """
    task = Task.objects.select_related("campaign").filter(pk=task_id).first()
    if task is None or task.is_gold:
        return None
    campaign = task.campaign
    judgments, _ = loading.load_judgments(campaign.pk, campaign.responses_per_task, task_ids=[task_id])
    if judgments.size == 0:
        return None
    experts = sorted(set(judgments.expert_id.tolist()))
    weights = dict(RaterQuality.objects.filter(campaign=campaign, expert_id__in=experts)
                   .values_list("expert_id", "vote_weight"))
    latest = QualityReport.objects.filter(campaign=campaign).order_by("-version").first()
    missing = [e for e in experts if e not in weights]
    if missing:
        median = (latest.figures.get("weight_median") if latest else None) or None
        for expert_id, weight in _fallback_weights(campaign, missing).items():
            weights[expert_id] = min(weight, campaign.consensus_weight_cap * median) if median else weight
    rows = compute.single_task_consensus(judgments, weights, compute.reliability_log_odds(
        np.array([compute.PRIOR_RELIABILITY]))[0])
    values = next(rows.records(range(1)))
    values.pop("task_id")
    tokens = None
    if not TaskConsensus.objects.filter(task_id=task_id, tokens__isnull=False).exists():
        tokens = loading.task_tokens_of(task.pk)
    now = timezone.now()
    for _attempt in range(2):
        try:
            with transaction.atomic():
                current = TaskConsensus.objects.select_for_update().filter(task_id=task_id).first()
                if current is None:
                    current = TaskConsensus.objects.create(
                        task_id=task_id, campaign=campaign, version=latest.version if latest else 0,
                        tokens=tokens, computed_at=now, **values,
                    )
                elif current.last_judgment_id <= values["last_judgment_id"]:
                    for name, value in values.items():
                        setattr(current, name, value)
                    current.version = latest.version if latest else 0
                    current.computed_at = now
                    if current.tokens is None:
                        current.tokens = tokens
                    current.save()
            break
        except IntegrityError:
            continue  # a concurrent job created the row first: lock it and compare
    tasks_adapt_overlap(campaign=campaign, task_ids=[task_id])
    return TaskConsensus.objects.filter(task_id=task_id).first()


# --------------------------------------------------------------------------
# Per campaign
# --------------------------------------------------------------------------


def _fingerprint(campaign: Campaign, judgments: compute.Judgments, stakes: np.ndarray,
                 gold: dict[int, list[int]]) -> str:
    """Judgments never change after submission (voiding removes them), so their ids stand for their content."""
    digest = hashlib.blake2b(digest_size=32)
    digest.update(np.sort(judgments.judgment_id).tobytes())
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
    """Near-copies among rationales of tasks with new judgments (and a bounded slice of the backlog).

    Returns ``(task, later judgment, earlier judgment, similarity)`` for each
    flagged pair, and the checking state to store on the report.
    """
    per_task = np.bincount(np.unique(judgments.task_id, return_inverse=True)[1])
    tasks = np.unique(judgments.task_id)
    pending = tasks[per_task >= 2]
    since = latest.rationales_checked_until if latest is not None else None
    backlog_after = latest.figures.get("rationale_backlog_after") if latest is not None else None
    if since is not None:
        recent = set(
            Judgment.objects.filter(campaign=campaign, voided=False, submitted_at__gte=since - RATIONALE_SLACK)
            .values_list("task_id", flat=True).distinct().order_by()
        )
        wanted = np.isin(pending, np.fromiter(recent, dtype=np.int64, count=len(recent)))
        if backlog_after is not None:
            wanted |= pending > backlog_after
        pending = pending[wanted]
    counts = per_task[np.searchsorted(tasks, pending)]
    take = int(np.searchsorted(np.cumsum(counts), RATIONALE_BUDGET, side="right"))
    take = max(take, min(1, pending.size))
    chosen = pending[:take]
    state = {"checked_until": snapshot_at,
             "backlog_after": int(chosen[-1]) if take < pending.size else None, "checked_tasks": int(chosen.size)}
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
        raters = _rater_rows(campaign, result, version, now)
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
        _write_raters(raters)
        RaterQuality.objects.filter(campaign=campaign).exclude(
            expert_id__in=[int(e) for e in result.expert_id]).delete()

    rows, written = result.tasks, 0
    for start in range(0, rows.task_id.size, WRITE_BATCH):
        with transaction.atomic():
            if not _still_newest(campaign.pk, version):
                logger.info("quality v%s of campaign %s superseded; stopping writes", version, campaign.pk)
                return report
            written += _write_consensus_batch(
                campaign.pk, rows, range(start, min(start + WRITE_BATCH, rows.task_id.size)), version, tokens, now,
            )
    report.figures["consensus_rows_written"] = written
    return report


def _write_raters(raters: list[RaterQuality]) -> None:
    """Insert or update each rater's row in place (unique per campaign and expert)."""
    fields = [f for f in RaterQuality._meta.concrete_fields if f.name != "id"]
    if connection.vendor == "postgresql":
        columns = [f.column for f in fields]
        records = ((_json(v) if isinstance(v, dict) else v for v in (getattr(r, f.attname) for f in fields))
                   for r in raters)
        _copy_upsert(RaterQuality, columns, (tuple(r) for r in records), conflict=["campaign_id", "expert_id"],
                     update=[c for c in columns if c not in ("campaign_id", "expert_id")])
        return
    RaterQuality.objects.bulk_create(
        raters, update_conflicts=True, unique_fields=["campaign", "expert"],
        update_fields=[f.name for f in fields if f.name not in ("campaign", "expert")], batch_size=1000,
    )


def _rater_rows(campaign: Campaign, result: CampaignQuality, version: int, now: datetime) -> list[RaterQuality]:
    """One RaterQuality per rater with flags and the evidence behind each."""
    handles = {int(e): rater_handle(campaign.pk, int(e)) for e in result.expert_id}
    copies: dict[int, dict[int, int]] = {}
    for copier, source in RationaleMatch.objects.filter(
        campaign=campaign, similarity__gte=compute.COPIED_THRESHOLD,
    ).values_list("judgment__expert_id", "source__expert_id").order_by():
        copies.setdefault(copier, {}).setdefault(source, 0)
        copies[copier][source] += 1

    def per_rater(sig, *names):
        return {int(r): tuple(getattr(sig, n)[i] for n in names) for i, r in enumerate(sig.rater.tolist())}

    gold = per_rater(result.gold, "n", "accuracy", "lower_bound", "flagged")
    position = per_rater(result.position, "n", "p_first", "z", "p_value", "flagged")
    speed = per_rater(result.speed, "n", "median_z", "flagged")
    outside = per_rater(result.outside, "n", "share", "flagged")
    collusion: dict[int, dict] = {}
    c = result.collusion
    for q in np.argsort(-np.nan_to_num(c.z, nan=-np.inf)).tolist():
        for me, other in ((int(c.rater_a[q]), int(c.rater_b[q])), (int(c.rater_b[q]), int(c.rater_a[q]))):
            best = collusion.get(me)
            if best is None or (bool(c.flagged[q]) and not best["flagged"]):
                collusion[me] = {
                    "statistic": "z", "value": _f(c.z[q]), "threshold": compute.COLLUSION_Z,
                    "n": int(c.n_shared[q]), "co_errors": int(c.co_errors[q]), "expected": _f(c.expected[q]),
                    "p_value": _f(c.p_value[q]), "max_p_value": compute.COLLUSION_MAX_P,
                    "partner": handles.get(other), "flagged": bool(c.flagged[q]),
                }
    out = []
    for r, expert_id in enumerate(int(e) for e in result.expert_id):
        evidence: dict[str, dict] = {}
        if expert_id in gold:
            n, acc, bound, flagged = gold[expert_id]
            evidence["gold"] = {"statistic": "wilson_lower_bound", "value": _f(bound), "accuracy": _f(acc),
                                "threshold": campaign.gold_bar, "n": int(n), "min_n": compute.GOLD_MIN_N,
                                "flagged": bool(flagged)}
        if expert_id in position:
            n, p_first, z, p_value, flagged = position[expert_id]
            evidence["position_bias"] = {"statistic": "z", "value": _f(z), "p_first": _f(p_first),
                                         "p_value": _f(p_value), "threshold": compute.POSITION_Z, "n": int(n),
                                         "flagged": bool(flagged)}
        if expert_id in speed:
            n, median_z, flagged = speed[expert_id]
            evidence["speed"] = {"statistic": "median_robust_z_log_seconds_per_token", "value": _f(median_z),
                                 "threshold": compute.SPEED_Z, "n": int(n), "min_n": compute.SPEED_MIN_N,
                                 "flagged": bool(flagged)}
        if expert_id in outside:
            n, share, flagged = outside[expert_id]
            evidence["outside_expertise"] = {"statistic": "share", "value": _f(share),
                                             "threshold": compute.OUTSIDE_MAX_SHARE, "n": int(n),
                                             "min_n": compute.OUTSIDE_MIN_N, "flagged": bool(flagged)}
        copied = copies.get(expert_id, {})
        n_copies = sum(copied.values())
        evidence["copied_rationale"] = {
            "statistic": "near_copies", "value": n_copies, "threshold": compute.COPIED_MIN_COUNT,
            "similarity": compute.COPIED_THRESHOLD, "n": int(result.n_judgments[r]),
            "sources": sorted(handles.get(s) or rater_handle(campaign.pk, s) for s in copied)[:10],
            "flagged": n_copies >= compute.COPIED_MIN_COUNT,
        }
        if expert_id in collusion:
            evidence["collusion"] = collusion[expert_id]
        flags = {
            "flag_gold": evidence.get("gold", {}).get("flagged", False),
            "flag_position_bias": evidence.get("position_bias", {}).get("flagged", False),
            "flag_speed": evidence.get("speed", {}).get("flagged", False),
            "flag_copied_rationale": evidence["copied_rationale"]["flagged"],
            "flag_collusion": evidence.get("collusion", {}).get("flagged", False),
            "flag_outside_expertise": evidence.get("outside_expertise", {}).get("flagged", False),
        }
        g = gold.get(expert_id)
        out.append(RaterQuality(
            campaign=campaign, expert_id=expert_id, handle=handles[expert_id],
            n_judgments=int(result.n_judgments[r]), n_compared=int(result.n_compared[r]),
            agreement=_f(result.agreement[r]), reliability=_f(result.reliability[r]),
            sensitivity=_f(result.sensitivity[r]), specificity=_f(result.specificity[r]),
            stake=int(result.stake[r]), vote_weight=float(result.vote_weight[r]),
            gold_n=int(g[0]) if g else 0, gold_accuracy=_f(g[1]) if g else None,
            gold_lower_bound=_f(g[2]) if g else None, median_seconds=_f(result.median_seconds[r]),
            flagged=any(flags.values()), evidence=evidence, version=version, computed_at=now, **flags,
        ))
    return out


def _f(x) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else round(x, 6)
