"""Leasing tasks to experts and recording their judgments.

Invariant, per task: ``filled`` = live leases + submitted judgments, and
``filled <= target_overlap`` (a CHECK constraint). Every change to a lease's
state is a conditional UPDATE on the lease (``WHERE state = 'leased'``) and
only the caller whose UPDATE changed the row adjusts ``filled``, so racing
requests, retries and a reclaim job running twice all count once.

Claiming work (``assignment_next``) costs the same whatever the campaign's
size: an index walk over ``task_assign_idx`` (campaign, state, is_gold,
-filled, id) that stops after the ``DATADAO_ASSIGN_WINDOW`` most-needed tasks
this expert has not seen and that still have room (closest to completion
first), then one of them drawn at random. Handing out the single most-needed
task would let accounts of one ring that press Next one after another land on
the same task and outvote its honest raters; a draw from the window keeps them
apart while tasks still finish in order. On PostgreSQL pick, count and lease
are one statement (a CTE) whose chosen row is locked with ``FOR NO KEY UPDATE
SKIP LOCKED``, so concurrent experts fan out over different tasks instead of
queueing on one; on SQLite (which serialises writers) the conditional
``UPDATE ... WHERE filled < target_overlap`` alone keeps it correct. Both
lanes draw the same way (an md5 of the task id and a salt from the caller's
``rng``), so a seeded ``rng`` replays a run. Unique constraints (one lease per
task and expert, one live lease per expert and campaign) are the last line of
defence.

Gold (honeypot) tasks are the anchor no ring can outvote, so a new expert
(fewer than ``DATADAO_NEW_EXPERT_GOLD_ANSWERS`` scored gold answers in any
campaign) and one flagged in the campaign see gold at least at
``DATADAO_NEW_EXPERT_GOLD_RATE``.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils import timezone

from annotations.experts import expert_eligibility, gold_top_matches, slot_ranks_to_positions
from annotations.models import (
    Assignment, Campaign, Expert, ExpertDomain, Flag, Judgment, QualificationItem, RaterQuality, Response, Task,
)
from annotations.ranking import RankingError, parse_ranking, slot_letters
from annotations.services import ServiceError
from datadao.rows import Columns, fetch

logger = logging.getLogger(__name__)

# When every candidate is locked by a concurrent claim, wait this long and
# look again rather than answer "nothing left" while work remains.
CLAIM_RETRIES = 8
CLAIM_BACKOFF_S = 0.005
RECLAIM_BATCH = 500
MAX_RATIONALE = 10_000
LIKERT = range(1, 6)


class JudgmentInvalid(ServiceError):
    """A judgment that breaks the campaign's form; carries every field error at once."""

    def __init__(self, errors: list[dict[str, Any]]):
        self.errors = errors
        super().__init__(errors[0]["message"], field=errors[0].get("field"), status=400)

    def as_errors(self) -> list[dict[str, Any]]:
        return self.errors


# --------------------------------------------------------------------------
# Leasing
# --------------------------------------------------------------------------


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


def _claim(campaign: Campaign, expert: Expert, *, gold: bool, now: datetime, rng: random.Random) -> Assignment | None:
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


def _anything_left(campaign: Campaign, expert: Expert) -> bool:
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


class _Known(NamedTuple):
    """What :func:`assignment_next_in` read in its one query."""

    domain_vetted: bool
    live: Assignment | None
    # Scored gold answers in any campaign, counted up to the new-expert bar;
    # None where the campaign's gold rate makes them irrelevant.
    gold_answers: int | None
    flagged: bool
    # Base units bonded, read only where the campaign has a minimum stake; None: not read here.
    bonded_stake: int | None = None


def _bonded_stake_sql() -> tuple[str, list] | None:
    """The rewards selector ``expert_bonded_stake`` as a scalar subquery (one ``%s``: the expert), so a Next
    reads the stake in its context statement instead of a second, unprepared query.

    annotations may not import rewards (``.importlinter``); the ledger's account model is reached through
    the reverse relation rewards declares on ``Expert``. None without the rewards app (then the eligibility
    rule asks :func:`annotations.money.rewards_side`). tests/annotations/test_next_stake_and_token.py
    checks the stake a Next reads against the selector's.
    """
    try:
        account = Expert._meta.get_field("ledger_accounts").related_model
    except FieldDoesNotExist:
        return None
    return (f"(SELECT ra.balance FROM {account._meta.db_table} ra WHERE ra.kind = %s AND ra.expert_id = %s "
            "ORDER BY ra.id LIMIT 1)", [account.Kind.BONDED])


@functools.cache
def _context_sql(gold_answers: int) -> tuple[str, Columns, Columns, list]:
    campaign, lease = Columns(Campaign, "c"), Columns(Assignment, "a")
    stake = _bonded_stake_sql()
    stake_sql, stake_params = (f"CASE WHEN c.min_stake > 0 THEN COALESCE({stake[0]}, 0) END", stake[1]) if stake \
        else ("NULL", [])
    # The gold count stops at the bar (a LIMIT inside), and runs only where
    # the raised rate could change the chance (0 < gold_rate < raised).
    sql = (
        f"SELECT {campaign.sql}, {stake_sql}, EXISTS (SELECT 1 FROM {ExpertDomain._meta.db_table} d "
        "WHERE d.expert_id = %s AND d.domain = c.domain AND d.state = %s), "
        "CASE WHEN c.gold_rate > 0 AND c.gold_rate < %s THEN (SELECT count(*) FROM (SELECT 1 "
        f"FROM {Judgment._meta.db_table} j WHERE j.expert_id = %s AND j.is_gold AND j.gold_correct IS NOT NULL "
        f"AND NOT j.voided LIMIT {int(gold_answers)}) s) END, "
        f"EXISTS (SELECT 1 FROM {RaterQuality._meta.db_table} q WHERE q.campaign_id = c.id AND q.expert_id = %s "
        "AND q.flagged), "
        f"{lease.sql} FROM {Campaign._meta.db_table} c LEFT JOIN {Assignment._meta.db_table} a "
        "ON a.campaign_id = c.id AND a.expert_id = %s AND a.state = %s WHERE c.id = %s"
    )
    return sql, campaign, lease, stake_params


def assignment_next_in(
    *, expert: Expert, campaign_id: int, rng: random.Random | None = None, now: datetime | None = None,
) -> Assignment | None:
    """``assignment_next`` for a campaign given by id (the API's Next).

    The campaign, the expert's vetting in its domain, their bonded stake
    (where the campaign has a minimum), their live lease in it and what
    decides their gold rate are read in one prepared statement, so a Next
    costs that statement and the claim.
    """
    sql, campaign_columns, lease_columns, stake_params = _context_sql(max(0, settings.DATADAO_NEW_EXPERT_GOLD_ANSWERS))
    row = fetch(sql, [
        *stake_params, *([expert.pk] if stake_params else []),
        expert.pk, ExpertDomain.State.VETTED, settings.DATADAO_NEW_EXPERT_GOLD_RATE, expert.pk, expert.pk,
        expert.pk, Assignment.State.LEASED, campaign_id,
    ], one=True)
    if row is None:
        raise ServiceError("no such campaign.", field="campaign", status=404)
    width = campaign_columns.width
    campaign = campaign_columns.load(row[:width])
    stake, vetted, gold_answers, flagged = row[width:width + 4]
    live = lease_columns.load(row[width + 4:])
    return assignment_next(expert=expert, campaign=campaign, rng=rng, now=now,
                           _known=_Known(bool(vetted), live, gold_answers, bool(flagged), stake))


def _gold_chance(campaign: Campaign, expert: Expert, known: _Known | None) -> float:
    """The chance that this Next serves gold: the campaign's gold rate, raised to
    ``DATADAO_NEW_EXPERT_GOLD_RATE`` while the expert has fewer than
    ``DATADAO_NEW_EXPERT_GOLD_ANSWERS`` scored gold answers (any campaign, voided ones left out) or is
    flagged in this campaign. A campaign without gold (rate 0) stays without.
    """
    raised = settings.DATADAO_NEW_EXPERT_GOLD_RATE
    if not 0 < campaign.gold_rate < raised:
        return campaign.gold_rate
    bar = settings.DATADAO_NEW_EXPERT_GOLD_ANSWERS
    if known is not None and known.gold_answers is not None:
        gold_answers, flagged = known.gold_answers, known.flagged
    else:
        scored = Judgment.objects.filter(expert=expert, is_gold=True, gold_correct__isnull=False, voided=False)
        gold_answers = scored[:max(0, bar)].count()
        flagged = gold_answers >= bar and RaterQuality.objects.filter(
            campaign=campaign, expert=expert, flagged=True,
        ).exists()
    return raised if gold_answers < bar or flagged else campaign.gold_rate


def assignment_next(
    *, expert: Expert, campaign: Campaign, rng: random.Random | None = None, now: datetime | None = None,
    _known: _Known | None = None,
) -> Assignment | None:
    """Lease the expert's next task in the campaign, or None when nothing is left for them.

    An unexpired lease is handed back as is (a reload or a second tab gets
    the same task); an expired one is reclaimed first. With the chance
    :func:`_gold_chance` gives (the campaign's gold rate, more for a new or
    flagged expert) the lease is a gold task the expert has not seen.
    ``_known``: what :func:`assignment_next_in` already read.
    """
    now = now or timezone.now()
    rng = rng or random.SystemRandom()
    domain_vetted, live, stake = (
        (_known.domain_vetted, _known.live, _known.bonded_stake) if _known is not None else (None, None, None))
    eligibility = expert_eligibility(expert=expert, campaign=campaign, domain_vetted=domain_vetted,
                                     bonded_stake=stake)
    if not eligibility:
        raise ServiceError(eligibility.reason, field="campaign", status=403)

    if _known is None:
        live = Assignment.objects.filter(expert=expert, campaign=campaign, state=Assignment.State.LEASED).first()
    if live is not None:
        if live.expires_at > now:
            return live
        assignment_release(assignment=live, state=Assignment.State.EXPIRED, now=now)

    chance = _gold_chance(campaign, expert, _known)
    want_gold = chance > 0 and rng.random() < chance
    reclaimed = False
    for attempt in range(CLAIM_RETRIES):
        try:
            claimed = None
            if want_gold:
                claimed = _claim(campaign, expert, gold=True, now=now, rng=rng)
            if claimed is None:
                claimed = _claim(campaign, expert, gold=False, now=now, rng=rng)
        except IntegrityError:
            # A concurrent request of the same expert took a lease first
            # (double click on Next): hand that one back.
            live = Assignment.objects.filter(expert=expert, campaign=campaign, state=Assignment.State.LEASED).first()
            if live is not None:
                return live
            continue
        if claimed is not None:
            return claimed
        if not reclaimed:
            # Nothing free: other experts' expired leases may be holding the
            # last places (the periodic job may not have run yet).
            reclaimed = True
            if leases_reclaim(campaign=campaign, now=now):
                continue
        if not _anything_left(campaign, expert):
            return None
        # Candidates exist but were locked by concurrent claims: look again.
        time.sleep(CLAIM_BACKOFF_S * (attempt + 1))
    return None


def assignment_for_expert(*, expert: Expert, assignment_id: int) -> Assignment:
    """The expert's own assignment; anyone else's is reported as missing."""
    assignment = Assignment.objects.select_related("task", "campaign").filter(pk=assignment_id, expert=expert).first()
    if assignment is None:
        raise ServiceError("no such assignment.", status=404)
    return assignment


def assignment_skip(*, expert: Expert, assignment_id: int, reason: str, now: datetime | None = None) -> Assignment:
    """Hand a task back with a reason; the expert is not offered it again."""
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("say why you skip this task.", field="reason")
    if len(reason) > 500:
        raise ServiceError("keep the reason under 500 characters.", field="reason")
    assignment = assignment_for_expert(expert=expert, assignment_id=assignment_id)
    if assignment.state == Assignment.State.SKIPPED:
        return assignment
    if assignment.state == Assignment.State.SUBMITTED:
        raise ServiceError("you already submitted a judgment for this task.", status=409)
    if not assignment_release(assignment=assignment, state=Assignment.State.SKIPPED, reason=reason, now=now):
        assignment.refresh_from_db()
        if assignment.state != Assignment.State.SKIPPED:
            raise ServiceError("this lease has already ended; press Next for another task.", status=409)
    return assignment


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


# --------------------------------------------------------------------------
# Judgments
# --------------------------------------------------------------------------


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
    from annotations.followup import consensus_publish

    logger.debug("task %s complete", task_id)
    consensus_publish(task_id)
