"""Judgments: checking one against its campaign's form and recording it, exactly once.

The judgment that completes a task (its overlap reached) marks the task's
consensus due in the same write, and queues the consensus after commit
(:mod:`annotations.followup`).
"""
from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from annotations.experts import gold_top_matches, slot_ranks_to_positions
from annotations.followup import consensus_publish
from annotations.leases import assignment_release
from annotations.models import Assignment, Campaign, Expert, Flag, Judgment, Task
from annotations.ranking import RankingError, parse_ranking, slot_letters
from annotations.services import ServiceError
from datadao.rows import Columns, fetch

logger = logging.getLogger(__name__)

MAX_RATIONALE = 10_000
LIKERT = range(1, 6)


class JudgmentInvalid(ServiceError):
    """A judgment that breaks the campaign's form; carries every field error at once."""

    def __init__(self, errors: list[dict[str, Any]]):
        self.errors = errors
        super().__init__(errors[0]["message"], field=errors[0].get("field"), status=400)

    def as_errors(self) -> list[dict[str, Any]]:
        return self.errors


@dataclass
class JudgmentInput:
    """A judgment as the expert wrote it, in displayed slots."""

    ranking: Any
    strength: int | None = None
    ratings: dict[str, dict[str, int]] | None = None
    rationale: str = ""
    flags: list[str] | None = None


@dataclass
class CleanJudgment:
    ranks: list[int]
    strength: int | None
    ratings: dict[str, list[int]]
    rationale: str
    flags: list[str]


def _clean_judgment(campaign: Campaign, display_order: list[int], data: JudgmentInput) -> CleanJudgment:
    """Validate against the campaign's form and map slots back to upload positions."""
    k = len(display_order)
    letters = slot_letters(k)
    errors: list[dict[str, Any]] = []
    slot_ranks: list[int] | None = None
    try:
        slot_ranks = parse_ranking(data.ranking, k)
    except RankingError as exc:
        errors.append({"field": "ranking", "message": str(exc)})

    strength = None
    uses_scale = k == 2 and campaign.strength_scale
    if uses_scale:
        if data.strength is None:
            errors.append({"field": "strength", "message": "give a strength from -3 (A much better) to +3 (B much better)."})
        elif not isinstance(data.strength, int) or isinstance(data.strength, bool) or not -3 <= data.strength <= 3:
            errors.append({"field": "strength", "message": "must be an integer from -3 to +3."})
        elif slot_ranks is not None:
            implied = 0 if slot_ranks[0] == slot_ranks[1] else (-1 if slot_ranks[0] < slot_ranks[1] else 1)
            sign = (data.strength > 0) - (data.strength < 0)
            if sign != implied:
                errors.append({"field": "strength", "message": "contradicts the ranking (negative means A is better, 0 a tie)."})
            else:
                # Slot A shows position display_order[0]: if that is the second
                # upload, "A better" means "second better" in upload order.
                strength = data.strength if display_order[0] == 0 else -data.strength
    elif data.strength is not None:
        errors.append({"field": "strength", "message": "this campaign does not use a strength scale."})

    ratings: dict[str, list[int]] = {}
    given = data.ratings or {}
    axes = list(campaign.attribute_axes or [])
    if not isinstance(given, dict):
        errors.append({"field": "ratings", "message": "must map each attribute to {slot: 1..5}."})
        given = {}
    for axis in given:
        if axis not in axes:
            errors.append({"field": f"ratings.{axis}", "message": f"unknown attribute; rate {', '.join(axes) or 'none'}."})
    for axis in axes:
        per_slot = given.get(axis)
        if not isinstance(per_slot, dict):
            errors.append({"field": f"ratings.{axis}", "message": f"rate every response on {axis} from 1 to 5."})
            continue
        values = [0] * k
        for index, letter in enumerate(letters):
            value = per_slot.get(letter)
            if isinstance(value, bool) or not isinstance(value, int) or value not in LIKERT:
                errors.append({
                    "field": f"ratings.{axis}.{letter}",
                    "message": f"rate response {letter} on {axis} with a whole number from 1 to 5.",
                })
                continue
            values[display_order[index]] = value
        extra = set(per_slot) - set(letters)
        if extra:
            errors.append({"field": f"ratings.{axis}", "message": f"unknown slot {sorted(extra)[0]!r}."})
        ratings[axis] = values

    rationale = (data.rationale or "").strip()
    if campaign.rationale_required and len(rationale) < campaign.rationale_min_length:
        errors.append({
            "field": "rationale",
            "message": f"explain your ranking in at least {campaign.rationale_min_length} characters (you wrote {len(rationale)}).",
        })
    if len(rationale) > MAX_RATIONALE:
        errors.append({"field": "rationale", "message": f"keep the rationale under {MAX_RATIONALE} characters."})

    flags = list(dict.fromkeys(data.flags or []))
    bad_flags = [f for f in flags if f not in Flag.values]
    if bad_flags:
        errors.append({"field": "flags", "message": f"unknown flag {bad_flags[0]!r}; use {', '.join(Flag.values)}."})

    if errors:
        raise JudgmentInvalid(errors)
    assert slot_ranks is not None
    return CleanJudgment(
        ranks=slot_ranks_to_positions(slot_ranks, display_order), strength=strength, ratings=ratings,
        rationale=rationale, flags=flags,
    )


def _same(judgment: Judgment, clean: CleanJudgment) -> bool:
    return (
        judgment.ranks == clean.ranks and judgment.strength == clean.strength and judgment.ratings == clean.ratings
        and judgment.rationale == clean.rationale and sorted(judgment.flags) == sorted(clean.flags)
    )


@dataclass
class SubmitResult:
    judgment: Judgment
    created: bool


def judgment_submit(
    *, expert: Expert, assignment_id: int, data: JudgmentInput, now: datetime | None = None,
) -> SubmitResult:
    """Record the expert's judgment on a leased task, exactly once.

    A repeat of the same submission (double click, network retry) returns
    the judgment already recorded; a different one is refused. A lease that
    expired, was skipped or belongs to someone else takes no judgment.
    """
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        done = _submit_postgres(expert, assignment_id, data, now)
        if done is not None:
            return done
    expired = False
    with transaction.atomic():
        # Lock the lease row only (not its task or campaign, which every
        # other submit and claim in the campaign also touches).
        assignment = (
            Assignment.objects.select_for_update(of=("self",), no_key=True).select_related("task", "campaign")
            .filter(pk=assignment_id, expert=expert).first()
        )
        if assignment is None:
            raise ServiceError("no such assignment.", status=404)
        clean = _clean_judgment(assignment.campaign, assignment.display_order, data)
        if assignment.state == Assignment.State.SUBMITTED:
            judgment = Judgment.objects.get(assignment=assignment)
            if not _same(judgment, clean):
                raise ServiceError("you already submitted a different judgment for this task.", status=409)
            return SubmitResult(judgment, created=False)
        if assignment.state == Assignment.State.SKIPPED:
            raise ServiceError("you skipped this task; it takes no judgment.", status=409)
        if assignment.campaign.status == Campaign.Status.CLOSED:
            raise ServiceError("the campaign has closed; it takes no more judgments.", status=409)
        if assignment.state == Assignment.State.EXPIRED or assignment.expires_at <= now:
            expired = True
        else:
            judgment = _record(assignment, clean, now)
    if expired:
        assignment_release(assignment=assignment, state=Assignment.State.EXPIRED, now=now)
        raise ServiceError(
            f"your lease on this task expired at {assignment.expires_at:%H:%M:%S} UTC, so the judgment was not "
            "recorded; press Next for another task.", status=409,
        )
    return SubmitResult(judgment, created=True)


@functools.cache
def _submit_sql() -> tuple[str, Columns, Columns, Columns, str]:
    lease, task, campaign = (
        Columns(Assignment, "a"), Columns(Task, "t", fields=["is_gold", "gold"]), Columns(Campaign, "c"),
    )
    read = (
        f"SELECT {lease.sql}, {task.sql}, {campaign.sql} FROM {Assignment._meta.db_table} a "
        f"JOIN {Task._meta.db_table} t ON t.id = a.task_id JOIN {Campaign._meta.db_table} c ON c.id = a.campaign_id "
        "WHERE a.id = %(id)s AND a.expert_id = %(expert)s"
    )
    column = {f.name: f.column for f in Judgment._meta.concrete_fields}
    names = ["assignment", "task", "expert", "campaign", "ranks", "strength", "ratings", "rationale", "flags",
             "display_order", "time_spent_ms", "submitted_at", "is_gold", "gold_correct", "voided", "voided_reason"]
    write = f"""
        WITH lease AS (
            UPDATE {Assignment._meta.db_table} SET state = %(submitted)s, finished_at = %(now)s
            WHERE id = %(id)s AND state = %(leased)s AND expires_at > %(now)s
            RETURNING id, task_id
        ), judgment AS (
            INSERT INTO {Judgment._meta.db_table} ({", ".join(column[n] for n in names)})
            SELECT lease.id, lease.task_id, %(expert)s, %(campaign)s, %(ranks)s::jsonb, %(strength)s,
                   %(ratings)s::jsonb, %(rationale)s, %(flags)s::jsonb, %(display_order)s::jsonb, %(time_spent_ms)s,
                   %(now)s, %(is_gold)s, %(gold_correct)s, false, ''
            FROM lease
            RETURNING id
        ), task_before AS (
            SELECT t.id, t.state FROM {Task._meta.db_table} t JOIN lease ON t.id = lease.task_id
            FOR NO KEY UPDATE OF t
        ), counted AS (
            UPDATE {Task._meta.db_table} t SET judgment_count = t.judgment_count + 1,
                state = CASE WHEN t.state = %(open)s AND t.judgment_count + 1 >= t.target_overlap
                             THEN %(complete)s ELSE t.state END,
                consensus_due_at = CASE WHEN t.state = %(open)s AND t.judgment_count + 1 >= t.target_overlap
                                        THEN %(now)s ELSE t.consensus_due_at END
            FROM task_before WHERE t.id = task_before.id
            RETURNING task_before.state = %(open)s AND t.state = %(complete)s AS completed
        )
        SELECT judgment.id, counted.completed FROM judgment, counted
    """
    return read, lease, task, campaign, write


def _submit_postgres(expert: Expert, assignment_id: int, data: JudgmentInput, now: datetime) -> SubmitResult | None:
    """The usual submission on PostgreSQL in two statements: read the lease with its task and campaign,
    then one statement that closes the lease, records the judgment and counts it on the task, all on
    the condition that the lease is still live. None when that condition failed (a double click racing
    itself, a lease that expired in between, anything not live): the caller then decides under a lock.
    """
    read, lease_columns, task_columns, campaign_columns, write = _submit_sql()
    params = {"id": assignment_id, "expert": expert.pk}
    row = fetch(read, params, one=True)
    if row is None:
        raise ServiceError("no such assignment.", status=404)
    a, t = lease_columns.width, lease_columns.width + task_columns.width
    assignment = lease_columns.load(row[:a])
    task, campaign = task_columns.load(row[a:t]), campaign_columns.load(row[t:])
    assignment.task, assignment.campaign = task, campaign
    clean = _clean_judgment(campaign, assignment.display_order, data)
    if (assignment.state != Assignment.State.LEASED or assignment.expires_at <= now
            or campaign.status == Campaign.Status.CLOSED):
        return None  # every refusal and the repeat of a submission are decided under the lock
    gold_correct = gold_top_matches(clean.ranks, task.gold) if task.is_gold and task.gold else None
    time_spent_ms = min(int((now - assignment.leased_at).total_seconds() * 1000), 2**31 - 1)
    params.update(
        submitted=Assignment.State.SUBMITTED, leased=Assignment.State.LEASED, now=now, campaign=campaign.pk,
        ranks=json.dumps(clean.ranks), strength=clean.strength, ratings=json.dumps(clean.ratings),
        rationale=clean.rationale, flags=json.dumps(clean.flags), display_order=json.dumps(assignment.display_order),
        time_spent_ms=time_spent_ms, is_gold=task.is_gold, gold_correct=gold_correct,
        open=Task.State.OPEN, complete=Task.State.COMPLETE,
    )
    written = fetch(write, params, one=True)
    if written is None:
        return None
    judgment_id, completed = written
    assignment.state, assignment.finished_at = Assignment.State.SUBMITTED, now
    judgment = Judgment(
        id=judgment_id, assignment=assignment, task_id=assignment.task_id, expert_id=expert.pk,
        campaign_id=campaign.pk, ranks=clean.ranks, strength=clean.strength, ratings=clean.ratings,
        rationale=clean.rationale, flags=clean.flags, display_order=assignment.display_order,
        time_spent_ms=time_spent_ms, submitted_at=now, is_gold=task.is_gold, gold_correct=gold_correct,
    )
    judgment._state.adding = False
    judgment._state.db = connection.alias
    if completed:
        task_id = assignment.task_id
        transaction.on_commit(lambda: on_task_complete(task_id))
    return SubmitResult(judgment, created=True)


def _record(assignment: Assignment, clean: CleanJudgment, now: datetime) -> Judgment:
    task = assignment.task
    gold_correct = gold_top_matches(clean.ranks, task.gold) if task.is_gold and task.gold else None
    judgment = Judgment.objects.create(
        assignment=assignment, task=task, expert_id=assignment.expert_id, campaign_id=assignment.campaign_id,
        ranks=clean.ranks, strength=clean.strength, ratings=clean.ratings, rationale=clean.rationale,
        flags=clean.flags, display_order=assignment.display_order,
        time_spent_ms=min(int((now - assignment.leased_at).total_seconds() * 1000), 2**31 - 1),
        submitted_at=now, is_gold=task.is_gold, gold_correct=gold_correct,
    )
    Assignment.objects.filter(pk=assignment.pk).update(state=Assignment.State.SUBMITTED, finished_at=now)
    assignment.state, assignment.finished_at = Assignment.State.SUBMITTED, now
    Task.objects.filter(pk=task.pk).update(judgment_count=F("judgment_count") + 1)
    # The consensus mark is set with the completion, so the need for a consensus is stored with the judgment.
    completed = Task.objects.filter(
        pk=task.pk, state=Task.State.OPEN, judgment_count__gte=F("target_overlap"),
    ).update(state=Task.State.COMPLETE, consensus_due_at=now)
    if completed:
        transaction.on_commit(lambda: on_task_complete(task.pk))
    return judgment


def on_task_complete(task_id: int) -> None:
    """Called once, after commit, when a task reaches its overlap.

    Queues the task's consensus (which also raises its overlap, or sends it
    to review, when the raters disagree). The judgment's statement already
    marked the task (``consensus_due_at``), so a publish that fails (logged,
    never turned into a failed submission, never waited on) is repaired by
    the consensus sweep (:mod:`annotations.followup`).
    """
    logger.debug("task %s complete", task_id)
    consensus_publish(task_id)
