"""Who is leased what: the expert loop's Next and Skip.

Next checks the expert may rate the campaign (:func:`annotations.experts.expert_eligibility`),
hands back a live lease as is, and otherwise claims a task (:mod:`annotations.leases`),
gold or not. Gold (honeypot) tasks are the anchor no ring can outvote, so a
new expert (fewer than ``DATADAO_NEW_EXPERT_GOLD_ANSWERS`` scored gold answers
in any campaign) and one flagged in the campaign see gold at least at
``DATADAO_NEW_EXPERT_GOLD_RATE``. Judgments are :mod:`annotations.judgments`'.
"""
from __future__ import annotations

import functools
import random
import time
from datetime import datetime
from typing import NamedTuple

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.db import IntegrityError
from django.utils import timezone

from annotations.experts import expert_eligibility
from annotations.leases import assignment_release, lease_claim, leases_reclaim, work_left
from annotations.models import Assignment, Campaign, Expert, ExpertDomain, Judgment, RaterQuality
from annotations.services import ServiceError
from datadao.rows import Columns, fetch

# When every candidate is locked by a concurrent claim, wait this long and
# look again rather than answer "nothing left" while work remains.
CLAIM_RETRIES = 8
CLAIM_BACKOFF_S = 0.005


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
                claimed = lease_claim(campaign, expert, gold=True, now=now, rng=rng)
            if claimed is None:
                claimed = lease_claim(campaign, expert, gold=False, now=now, rng=rng)
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
        if not work_left(campaign, expert):
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
