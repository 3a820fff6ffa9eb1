"""Leases: claiming a task for an expert, giving its place back, and what the expert sees of it.

Invariant, per task: ``filled`` = live leases + submitted judgments, and
``filled <= target_overlap`` (a CHECK constraint). Every change to a lease's
state is a conditional UPDATE on the lease (``WHERE state = 'leased'``) and
only the caller whose UPDATE changed the row adjusts ``filled``, so racing
requests, retries and a reclaim job running twice all count once.

A claim (``lease_claim``) costs the same whatever the campaign's size: an
index walk over ``task_assign_idx`` (campaign, state, is_gold, -filled, id)
that stops after the ``DATADAO_ASSIGN_WINDOW`` most-needed tasks this expert
has not seen and that still have room (closest to completion first), then one
of them drawn at random. Handing out the single most-needed task would let
accounts of one ring that press Next one after another land on the same task
and outvote its honest raters; a draw from the window keeps them apart while
tasks still finish in order. On PostgreSQL pick, count and lease are one
statement (a CTE) whose chosen row is locked with ``FOR NO KEY UPDATE SKIP
LOCKED``, so concurrent experts fan out over different tasks instead of
queueing on one; on SQLite (which serialises writers) the conditional
``UPDATE ... WHERE filled < target_overlap`` alone keeps it correct. Both
lanes draw the same way (an md5 of the task id and a salt from the caller's
``rng``), so a seeded ``rng`` replays a run. Unique constraints (one lease per
task and expert, one live lease per expert and campaign) are the last line of
defence.

Who may be leased what, and when gold is served, is :mod:`annotations.assignment`'s.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils import timezone

from annotations.models import Assignment, Campaign, Expert, QualificationItem, Response, Task
from annotations.ranking import slot_letters
from datadao.rows import fetch

RECLAIM_BATCH = 500


def _lease_ends(campaign: Campaign, now: datetime) -> datetime:
    return now + timedelta(minutes=campaign.lease_minutes)


def assignment_release(*, assignment: Assignment, state: str, reason: str = "", now: datetime | None = None) -> bool:
    """End a live lease (expired or skipped) and give its place back to the task.

    Returns False when the lease was no longer live (someone else ended it);
    then nothing changes, which makes every caller safe to run twice.
    """
    now = now or timezone.now()
    with transaction.atomic():
        changed = Assignment.objects.filter(pk=assignment.pk, state=Assignment.State.LEASED).update(
            state=state, finished_at=now, skip_reason=reason[:500],
        )
        if changed:
            Task.objects.filter(pk=assignment.task_id, filled__gt=F("judgment_count")).update(filled=F("filled") - 1)
    if changed:
        assignment.state, assignment.finished_at, assignment.skip_reason = state, now, reason[:500]
    return bool(changed)


def _candidates(campaign: Campaign, expert: Expert, *, gold: bool) -> QuerySet[Task]:
    """The tasks the expert may be leased, most needed first (a claim draws from the first few)."""
    seen = Assignment.objects.filter(task=OuterRef("pk"), expert=expert)
    queryset = (
        Task.objects.filter(campaign=campaign, state=Task.State.OPEN, is_gold=gold, filled__lt=F("target_overlap"))
        .exclude(Exists(seen))
    )
    if gold:
        # Gold seen in a qualification test would be a known answer.
        tested = QualificationItem.objects.filter(task=OuterRef("pk"), expert=expert)
        # Least-served gold first (a backward walk of the same index), so
        # every honeypot is seen by about as many experts.
        return queryset.exclude(Exists(tested)).order_by("filled", "-id")
    # Closest to completion first, so items finish.
    return queryset.order_by("-filled", "id")


def _draw_key(task_id: int, salt: str) -> str:
    """The random order within the window: PostgreSQL's ``md5(t.id::text || salt)``, so both lanes draw alike."""
    return hashlib.md5(f"{task_id}{salt}".encode()).hexdigest()


@functools.cache
def _claim_sql(*, gold: bool, window: int) -> str:
    """The PostgreSQL claim as one statement: pick, count and lease in a single round trip, which also
    returns the leased task's prompt and responses (one row per response), so the page or API can show
    it without asking again.

    The same rules as ``_candidates``: ``pool`` is the index walk's first
    ``window`` tasks (a literal, so the prepared statement's generic plan
    still walks the index and stops), ``candidate`` one of them in the
    salted md5 order, the first whose row lock (NO KEY UPDATE, so
    foreign-key checks of judgments on the task are not blocked) is free.
    The lock re-checks the row, the UPDATE is conditional, and the unique
    constraints on assignments still back it up.
    """
    task, assignment, tested = Task._meta.db_table, Assignment._meta.db_table, QualificationItem._meta.db_table
    response = Response._meta.db_table
    not_tested = (
        f"AND NOT EXISTS (SELECT 1 FROM {tested} q WHERE q.task_id = t.id AND q.expert_id = %(expert)s)"
        if gold else ""
    )
    order = "t.filled ASC, t.id DESC" if gold else "t.filled DESC, t.id ASC"
    return f"""
        WITH pool AS (
            SELECT t.id FROM {task} t
            WHERE t.campaign_id = %(campaign)s AND t.state = %(open)s AND t.is_gold = %(gold)s
              AND t.filled < t.target_overlap
              AND NOT EXISTS (SELECT 1 FROM {assignment} a WHERE a.task_id = t.id AND a.expert_id = %(expert)s)
              {not_tested}
            ORDER BY {order}
            LIMIT {int(window)}
        ), candidate AS (
            SELECT t.id FROM {task} t
            WHERE t.id = ANY (ARRAY(SELECT id FROM pool)) AND t.state = %(open)s AND t.filled < t.target_overlap
            ORDER BY md5(t.id::text || %(salt)s) COLLATE "C"
            LIMIT 1
            FOR NO KEY UPDATE OF t SKIP LOCKED
        ), claimed AS (
            UPDATE {task} t SET filled = t.filled + 1
            FROM candidate WHERE t.id = candidate.id AND t.filled < t.target_overlap
            RETURNING t.id
        ), leased AS (
            INSERT INTO {assignment}
                (task_id, expert_id, campaign_id, state, display_order, leased_at, expires_at, skip_reason)
            SELECT claimed.id, %(expert)s, %(campaign)s, %(leased)s, %(order)s::jsonb, %(now)s, %(expires)s, ''
            FROM claimed
            RETURNING id, task_id
        )
        SELECT leased.id, leased.task_id, t.prompt, r.position, r.text
        FROM leased JOIN {task} t ON t.id = leased.task_id JOIN {response} r ON r.task_id = leased.task_id
    """


def lease_claim(
    campaign: Campaign, expert: Expert, *, gold: bool, now: datetime, rng: random.Random,
) -> Assignment | None:
    """One attempt at an atomic claim; None when no candidate could be taken."""
    order = list(range(campaign.responses_per_task))
    rng.shuffle(order)
    salt = repr(rng.random())
    window = max(1, settings.DATADAO_ASSIGN_WINDOW)
    if connection.vendor == "postgresql":
        return _claim_postgres(campaign, expert, gold=gold, now=now, order=order, salt=salt, window=window)
    # SQLite serialises writers, so the conditional UPDATE alone decides.
    with transaction.atomic():
        pool = list(_candidates(campaign, expert, gold=gold).values_list("id", flat=True)[:window])
        for task_id in sorted(pool, key=lambda task_id: _draw_key(task_id, salt)):
            took = Task.objects.filter(
                pk=task_id, state=Task.State.OPEN, filled__lt=F("target_overlap"),
            ).update(filled=F("filled") + 1)
            if not took:
                continue
            return Assignment.objects.create(
                task_id=task_id, expert=expert, campaign=campaign, display_order=order,
                leased_at=now, expires_at=_lease_ends(campaign, now),
            )
    return None


def _claim_postgres(
    campaign: Campaign, expert: Expert, *, gold: bool, now: datetime, order: list[int], salt: str, window: int,
) -> Assignment | None:
    expires = _lease_ends(campaign, now)
    params = {
        "campaign": campaign.pk, "expert": expert.pk, "gold": gold, "open": Task.State.OPEN,
        "leased": Assignment.State.LEASED, "order": json.dumps(order), "now": now, "expires": expires, "salt": salt,
    }
    # One statement is atomic on its own; inside a caller's transaction it
    # gets a savepoint, so a unique-constraint error leaves that usable.
    with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
        rows = fetch(_claim_sql(gold=gold, window=window), params)
    if not rows:
        return None
    assignment = Assignment(
        id=rows[0][0], task_id=rows[0][1], expert=expert, campaign=campaign, state=Assignment.State.LEASED,
        display_order=order, leased_at=now, expires_at=expires, skip_reason="",
    )
    assignment._state.adding = False
    assignment._state.db = connection.alias
    prompt = Task._meta.get_field("prompt").from_db_value(rows[0][2], None, connection)
    assignment.leased = _as_leased(prompt, {position: text for _, _, _, position, text in rows}, order)
    return assignment


def work_left(campaign: Campaign, expert: Expert) -> bool:
    """Whether any task of the campaign still has room for this expert (locked ones included)."""
    return _candidates(campaign, expert, gold=False).exists()


def leases_reclaim(*, campaign: Campaign | None = None, now: datetime | None = None, batch: int = RECLAIM_BATCH) -> int:
    """Expire leases past their expiry and give their places back. Safe to run twice."""
    now = now or timezone.now()
    campaigns = [campaign] if campaign else Campaign.objects.exclude(status=Campaign.Status.DRAFT).only("id")
    released = 0
    for current in campaigns:
        while True:
            expired = list(
                Assignment.objects.filter(campaign=current, state=Assignment.State.LEASED, expires_at__lte=now)
                .only("id", "task_id")[:batch]
            )
            for assignment in expired:
                released += assignment_release(assignment=assignment, state=Assignment.State.EXPIRED, now=now)
            if len(expired) < batch:
                break
    return released


@dataclass
class LeasedTask:
    """A leased task as its expert sees it: the prompt, and slots in their own random order, no model names."""

    prompt: Any
    responses: list[dict[str, str]]


def _as_leased(prompt: Any, texts: dict[int, str], display_order: list[int]) -> LeasedTask:
    letters = slot_letters(len(display_order))
    return LeasedTask(
        prompt=prompt,
        responses=[{"slot": letters[i], "text": texts[position]} for i, position in enumerate(display_order)],
    )


def leased_task(assignment: Assignment) -> LeasedTask:
    """What the expert sees of a lease; read once (a fresh claim on PostgreSQL brings it along)."""
    cached = getattr(assignment, "leased", None)
    if cached is not None:
        return cached
    rows = list(Response.objects.filter(task_id=assignment.task_id).values_list("position", "text", "task__prompt"))
    assignment.leased = _as_leased(rows[0][2], {position: text for position, text, _ in rows}, assignment.display_order)
    return assignment.leased
