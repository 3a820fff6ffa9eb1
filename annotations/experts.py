"""Experts: applying, vetting by moderators, qualification tests, eligibility.

The life of an expert (DESIGN.md, flow 2)::

    applied --approve--> qualifying --pass a domain's test--> vetted
       |                     |                                  |
       +--reject--> rejected +----------suspend-----------> suspended --approve--> (reinstated)

Vetting is per domain (``ExpertDomain``): a moderator approves the person,
then the expert passes a qualification test of gold tasks in each domain.
Whether an expert may rate a campaign is decided in one place,
``expert_eligibility``.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from annotations import roles
from annotations.leases import assignment_release
from annotations.models import (
    Assignment, Campaign, Domain, Expert, ExpertDomain, QualificationAttempt, QualificationItem, Task,
)
from annotations.ranking import RankingError, parse_ranking
from annotations.money import rewards_side
from annotations.services import ServiceError
from datadao.wallet import validate_wallet_address

# A test long enough that guessing rarely passes (0.5**5 = 3% at K=2 with a
# 0.8 bar), short enough to take in a few minutes.
QUALIFICATION_ITEMS = 5
QUALIFICATION_PASS_MARK = 0.8
QUALIFICATION_RETRY_HOURS = 24
CREDENTIALS_MIN_LENGTH = 20


def qualification_items() -> int:
    return int(getattr(settings, "DATADAO_QUALIFICATION_ITEMS", QUALIFICATION_ITEMS))


def qualification_pass_mark() -> float:
    return float(getattr(settings, "DATADAO_QUALIFICATION_PASS_MARK", QUALIFICATION_PASS_MARK))


def qualification_retry_after() -> timedelta:
    return timedelta(hours=float(getattr(settings, "DATADAO_QUALIFICATION_RETRY_HOURS", QUALIFICATION_RETRY_HOURS)))


# --------------------------------------------------------------------------
# Applying and vetting
# --------------------------------------------------------------------------


def _clean_application(*, domains: list[str], credentials: str, wallet_address: str) -> tuple[list[str], str, str]:
    valid = set(Domain.values)
    domains = list(dict.fromkeys(domains))  # keep order, drop repeats
    if not domains:
        raise ServiceError("choose at least one domain.", field="domains")
    unknown = [d for d in domains if d not in valid]
    if unknown:
        raise ServiceError(f"unknown domain {unknown[0]!r}.", field="domains")
    credentials = credentials.strip()
    if len(credentials) < CREDENTIALS_MIN_LENGTH:
        raise ServiceError(
            f"describe your credentials in at least {CREDENTIALS_MIN_LENGTH} characters "
            "(degrees, licences, years of practice).", field="credentials",
        )
    try:
        wallet_address = validate_wallet_address(wallet_address)
    except ValueError as exc:
        raise ServiceError(str(exc), field="wallet_address") from exc
    return domains, credentials, wallet_address


def expert_apply(*, user, domains: list[str], credentials: str, wallet_address: str) -> Expert:
    """Create or update the user's application.

    An applicant may edit the application until a moderator reviews it; a
    rejected applicant may apply again; an approved expert who names a new
    domain gets to take that domain's qualification test.
    """
    domains, credentials, wallet_address = _clean_application(
        domains=domains, credentials=credentials, wallet_address=wallet_address,
    )
    if Expert.objects.filter(wallet_address=wallet_address).exclude(user=user).exists():
        raise ServiceError("this wallet address is registered to another expert.", field="wallet_address")
    try:
        with transaction.atomic():
            expert = Expert.objects.select_for_update().filter(user=user).first()
            if expert is None:
                return Expert.objects.create(
                    user=user, domains=domains, credentials=credentials, wallet_address=wallet_address,
                )
            if expert.state == Expert.State.SUSPENDED:
                raise ServiceError("your account is suspended; contact a moderator.", field="state", status=409)
            expert.credentials = credentials
            expert.wallet_address = wallet_address
            if expert.state in (Expert.State.APPLIED, Expert.State.REJECTED):
                expert.domains = domains
                expert.state = Expert.State.APPLIED
                expert.save(update_fields=["domains", "credentials", "wallet_address", "state"])
                return expert
            # Approved already: new domains go straight to qualification.
            expert.domains = list(dict.fromkeys([*expert.domains, *domains]))
            expert.save(update_fields=["domains", "credentials", "wallet_address"])
            for domain in domains:
                ExpertDomain.objects.get_or_create(expert=expert, domain=domain)
            return expert
    except IntegrityError as exc:  # two experts racing for one wallet
        raise ServiceError("this wallet address is registered to another expert.", field="wallet_address") from exc


def _review(expert: Expert, *, moderator, note: str, state: str) -> Expert:
    expert.state = state
    expert.reviewed_at = timezone.now()
    expert.reviewed_by = moderator
    expert.review_note = note
    expert.save(update_fields=["state", "reviewed_at", "reviewed_by", "review_note"])
    return expert


@transaction.atomic
def expert_approve(*, expert: Expert, moderator=None, note: str = "") -> Expert:
    """Approve an application (or reinstate a suspended expert).

    The expert gets the expert role and takes a qualification test per
    domain; a reinstated expert keeps the domains already passed.
    """
    expert = Expert.objects.select_for_update().get(pk=expert.pk)
    if expert.state not in (Expert.State.APPLIED, Expert.State.REJECTED, Expert.State.SUSPENDED):
        raise ServiceError(f"cannot approve an expert who is {expert.get_state_display().lower()}.", status=409)
    for domain in expert.domains:
        ExpertDomain.objects.get_or_create(expert=expert, domain=domain)
    vetted = ExpertDomain.objects.filter(expert=expert, state=ExpertDomain.State.VETTED).exists()
    group, _ = Group.objects.get_or_create(name=roles.EXPERT)
    expert.user.groups.add(group)
    return _review(
        expert, moderator=moderator, note=note, state=Expert.State.VETTED if vetted else Expert.State.QUALIFYING,
    )


@transaction.atomic
def expert_reject(*, expert: Expert, moderator=None, note: str = "") -> Expert:
    expert = Expert.objects.select_for_update().get(pk=expert.pk)
    if expert.state != Expert.State.APPLIED:
        raise ServiceError("only pending applications can be rejected; suspend an approved expert instead.", status=409)
    return _review(expert, moderator=moderator, note=note, state=Expert.State.REJECTED)


@transaction.atomic
def expert_suspend(*, expert: Expert, moderator=None, note: str = "") -> Expert:
    """Stop an expert from rating; their live leases go back to the pool at once."""
    expert = Expert.objects.select_for_update().get(pk=expert.pk)
    if expert.state in (Expert.State.SUSPENDED, Expert.State.REJECTED, Expert.State.APPLIED):
        raise ServiceError(f"cannot suspend an expert who is {expert.get_state_display().lower()}.", status=409)
    for assignment in Assignment.objects.filter(expert=expert, state=Assignment.State.LEASED):
        assignment_release(assignment=assignment, state=Assignment.State.EXPIRED)
    return _review(expert, moderator=moderator, note=note, state=Expert.State.SUSPENDED)


# --------------------------------------------------------------------------
# Eligibility
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.eligible


def expert_eligibility(
    *, expert: Expert, campaign: Campaign, domain_vetted: bool | None = None, bonded_stake: int | None = None,
) -> Eligibility:
    """The one rule for who may rate a campaign: vetted in its domain, not
    suspended, holding at least its minimum bonded stake, and the campaign open.

    ``domain_vetted``: whether the expert is vetted in the campaign's domain,
    when the caller already read it (the Next request reads it together with
    the campaign); None reads it here. ``bonded_stake`` likewise (base units;
    None asks the rewards side)."""
    if expert.state == Expert.State.SUSPENDED:
        return Eligibility(False, "your expert account is suspended.")
    if expert.state != Expert.State.VETTED:
        return Eligibility(False, "you are not vetted yet: pass a qualification test first.")
    if campaign.status != Campaign.Status.OPEN:
        return Eligibility(False, f"the campaign is {campaign.get_status_display().lower()}, not open.")
    if domain_vetted is None:
        domain_vetted = ExpertDomain.objects.filter(
            expert=expert, domain=campaign.domain, state=ExpertDomain.State.VETTED,
        ).exists()
    if not domain_vetted:
        return Eligibility(False, f"you are not vetted in {campaign.get_domain_display()}.")
    if campaign.min_stake:
        stake = bonded_stake if bonded_stake is not None else rewards_side().bonded_stake(expert=expert)
        if stake < campaign.min_stake:
            return Eligibility(False, f"this campaign needs a bonded stake of {campaign.min_stake}; you have {stake}.")
    return Eligibility(True)


# --------------------------------------------------------------------------
# Qualification
# --------------------------------------------------------------------------


def qualification_start(
    *, expert: Expert, domain: str, rng: random.Random | None = None, now=None,
) -> QualificationAttempt:
    """Start (or resume) a domain's test: gold tasks the expert has not seen."""
    now = now or timezone.now()
    rng = rng or random.SystemRandom()
    if expert.state not in (Expert.State.QUALIFYING, Expert.State.VETTED):
        raise ServiceError("a moderator must approve your application before the test.", status=409)
    vetting = ExpertDomain.objects.filter(expert=expert, domain=domain).first()
    if vetting is None:
        raise ServiceError("apply for this domain first.", field="domain", status=409)
    if vetting.state == ExpertDomain.State.VETTED:
        raise ServiceError("you are already vetted in this domain.", field="domain", status=409)
    open_attempt = QualificationAttempt.objects.filter(expert=expert, domain=domain, finished_at__isnull=True).first()
    if open_attempt:
        return open_attempt
    last = QualificationAttempt.objects.filter(expert=expert, domain=domain).order_by("-finished_at").first()
    if last and last.finished_at and now < last.finished_at + qualification_retry_after():
        retry_at = last.finished_at + qualification_retry_after()
        raise ServiceError(f"you can retake this test after {retry_at:%Y-%m-%d %H:%M} UTC.", status=409)

    size = qualification_items()
    seen = QualificationItem.objects.filter(expert=expert, task=OuterRef("pk"))
    assigned = Assignment.objects.filter(expert=expert, task=OuterRef("pk"))
    # The gold pool of a domain is small next to its tasks; a bounded sample
    # of ids is shuffled in Python rather than ORDER BY RANDOM() in SQL.
    pool = list(
        Task.objects.filter(campaign__domain=domain, is_gold=True)
        .exclude(Exists(seen)).exclude(Exists(assigned))
        .values_list("id", "campaign__responses_per_task")[:500]
    )
    if len(pool) < size:
        raise ServiceError("no qualification test is available for this domain yet; try again later.", status=409)
    picked = rng.sample(pool, size)
    try:
        with transaction.atomic():
            attempt = QualificationAttempt.objects.create(
                expert=expert, domain=domain, started_at=now, pass_mark=qualification_pass_mark(),
            )
            QualificationItem.objects.bulk_create([
                QualificationItem(attempt=attempt, expert=expert, task_id=task_id, display_order=_shuffled(k, rng))
                for task_id, k in picked
            ])
    except IntegrityError:  # a double click started the same test twice
        return QualificationAttempt.objects.get(expert=expert, domain=domain, finished_at__isnull=True)
    return attempt


def _shuffled(k: int, rng: random.Random) -> list[int]:
    order = list(range(k))
    rng.shuffle(order)
    return order


def top_positions(ranks: list[int]) -> set[int]:
    best = min(ranks)
    return {position for position, rank in enumerate(ranks) if rank == best}


def gold_top_matches(ranks: list[int], gold: list[int]) -> bool:
    """A gold answer is right when the expert's top choice (or tied top group) is gold's."""
    return top_positions(ranks) == top_positions(gold)


def slot_ranks_to_positions(slot_ranks: list[int], display_order: list[int]) -> list[int]:
    """Ranks per displayed slot -> ranks per uploaded response position."""
    ranks = [0] * len(display_order)
    for slot, position in enumerate(display_order):
        ranks[position] = slot_ranks[slot]
    return ranks


@transaction.atomic
def qualification_submit(*, attempt: QualificationAttempt, answers: dict[int, Any], now=None) -> QualificationAttempt:
    """Score a test: ``answers`` maps item id -> ranking in slots (best first).

    Passing vets the expert in the domain (and makes an approved expert
    vetted); failing records the score and starts the retry cooldown.
    """
    now = now or timezone.now()
    attempt = QualificationAttempt.objects.select_for_update().get(pk=attempt.pk)
    if attempt.finished_at is not None:
        return attempt
    items = list(attempt.items.select_related("task"))
    errors = []
    for item in items:
        try:
            slot_ranks = parse_ranking(answers.get(item.id), len(item.display_order))
        except RankingError as exc:
            errors.append(f"question {items.index(item) + 1}: {exc}")
            continue
        item.ranks = slot_ranks_to_positions(slot_ranks, item.display_order)
        item.correct = gold_top_matches(item.ranks, item.task.gold)
    if errors:
        raise ServiceError("answer every question. " + " ".join(errors), field="answers")
    QualificationItem.objects.bulk_update(items, ["ranks", "correct"])
    attempt.score = sum(1 for item in items if item.correct) / len(items)
    attempt.passed = attempt.score >= attempt.pass_mark
    attempt.finished_at = now
    attempt.save(update_fields=["score", "passed", "finished_at"])
    vetting = ExpertDomain.objects.select_for_update().get(expert=attempt.expert_id, domain=attempt.domain)
    vetting.score = attempt.score
    if attempt.passed:
        vetting.state = ExpertDomain.State.VETTED
        vetting.qualified_at = now
        Expert.objects.filter(pk=attempt.expert_id, state=Expert.State.QUALIFYING).update(state=Expert.State.VETTED)
    else:
        vetting.state = ExpertDomain.State.FAILED
    vetting.save(update_fields=["state", "score", "qualified_at"])
    return attempt
