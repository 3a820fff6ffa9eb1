"""Disputes: a party contests a decision, a moderator settles it, the ledger follows.

Who disputes what (``Dispute.Kind``):

* an expert: a slash of their stake, a gold answer scored wrong (once it
  has cost them: a gold flag or a slash in that campaign; before that,
  which tasks were gold stays secret), or a voided judgment;
* a lab: a judgment in one of its campaigns, named by the task's
  ``external_id`` and the rater's per-campaign handle, the only names a
  lab knows.

Life of a dispute::

    open --escalate--> escalated
      |                    |   (resolved only with resolve_escalated_dispute)
      +------resolve-------+--> resolved (upheld | overturned), final

Overturning reverses the decision through the ledger's posting function:
a slash is given back, a voided judgment is restored and, if its epoch was
already settled, paid (``dispute:<id>:restore``), a lab's judgment is voided
and its reward clawed back (``dispute:<id>:clawback``), optionally with a
fraud slash (``dispute:<id>:fraud``). The money moves in
``rewards.corrections`` (moderation sits above rewards and calls it). Every posting is keyed by the dispute, and the
dispute row is locked while resolving, so resolving twice moves money once.
Every outcome notifies the parties and is recorded in the audit trail.
"""
from __future__ import annotations

import json
from datetime import datetime

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from annotations import roles
from annotations.audit import audit_record
from annotations.followup import consensus_request
from annotations.handles import rater_handle
from annotations.models import (
    Campaign,
    Expert,
    Judgment,
    RaterQuality,
    Task,
    TaskConsensus,
)
from annotations.notifications import notification_send
from annotations.services import ServiceError
from moderation.models import Dispute
from moderation.outcomes import outcome as outcome_words
from rewards import corrections

STATEMENT_MIN = 20
STATEMENT_MAX = 5000
REASON_MIN = 10


def _now(now: datetime | None) -> datetime:
    return now or timezone.now()


def can_moderate(user) -> bool:
    return bool(user and user.is_authenticated and (user.is_superuser or roles.is_moderator(user)))


def _require_moderator(user) -> None:
    if not can_moderate(user):
        raise ServiceError("only moderators may do this.", status=403)


def _clean_statement(statement: str) -> str:
    statement = (statement or "").strip()
    if len(statement) < STATEMENT_MIN:
        raise ServiceError(
            f"explain the dispute in at least {STATEMENT_MIN} characters.", field="statement",
        )
    if len(statement) > STATEMENT_MAX:
        raise ServiceError(f"keep the statement under {STATEMENT_MAX} characters.", field="statement")
    return statement


def _jsonable(value):
    """Through JSON and back: datetimes and decimals become strings, so the snapshot never changes type."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def disputes_url(dispute: Dispute | None = None) -> str:
    url = reverse("annotations_pages:disputes")
    return f"{url}#dispute-{dispute.pk}" if dispute is not None else url


# --------------------------------------------------------------------------
# Evidence
# --------------------------------------------------------------------------


def _task_evidence(task: Task) -> dict:
    return {
        "id": task.pk, "external_id": task.external_id, "campaign": task.campaign_id, "state": task.state,
        "prompt": task.prompt, "is_gold": task.is_gold, "gold": task.gold,
        "responses": [{"position": r.position, "model": r.model_name, "text": r.text} for r in task.responses.all()],
    }


def _signals_evidence(campaign_id: int, expert_id: int) -> dict | None:
    quality = RaterQuality.objects.filter(campaign_id=campaign_id, expert_id=expert_id).first()
    if quality is None:
        return None
    return {
        "handle": quality.handle, "flags": quality.flags, "flagged": quality.flagged, "version": quality.version,
        "n_judgments": quality.n_judgments, "agreement": quality.agreement, "reliability": quality.reliability,
        "gold_n": quality.gold_n, "gold_accuracy": quality.gold_accuracy,
        "gold_lower_bound": quality.gold_lower_bound, "median_seconds": quality.median_seconds,
        "evidence": quality.evidence, "computed_at": quality.computed_at,
    }


def _judgment_evidence(judgment: Judgment) -> dict:
    consensus = TaskConsensus.objects.filter(task_id=judgment.task_id).first()
    return {
        "task": _task_evidence(judgment.task),
        "judgment": {
            "id": judgment.pk, "rater": rater_handle(judgment.campaign_id, judgment.expert_id),
            "ranks": judgment.ranks, "strength": judgment.strength, "ratings": judgment.ratings,
            "rationale": judgment.rationale, "flags": judgment.flags, "display_order": judgment.display_order,
            "time_spent_ms": judgment.time_spent_ms, "submitted_at": judgment.submitted_at,
            "is_gold": judgment.is_gold, "gold_correct": judgment.gold_correct, "voided": judgment.voided,
            "voided_reason": judgment.voided_reason,
        },
        "gold": judgment.task.gold if judgment.is_gold else None,
        "consensus": None if consensus is None else {
            "ranks": consensus.ranks, "margin": consensus.margin, "method": consensus.method,
            "n_raters": consensus.n_raters, "pairs": consensus.pairs, "computed_at": consensus.computed_at,
        },
        "signals": _signals_evidence(judgment.campaign_id, judgment.expert_id),
        "epoch": corrections.judgment_epoch(judgment=judgment),
    }


def _slash_evidence(slash) -> dict:
    evidence = {
        "slash": {
            "id": slash.pk, "key": slash.key, "fraction": slash.fraction, "bonded_amount": slash.bonded_amount,
            "unbonding_amount": slash.unbonding_amount, "reason": slash.reason, "created_at": slash.created_at,
            "transaction": slash.transaction_id, "campaign": slash.campaign_id, "epoch": slash.epoch_id,
        },
        "signals": _signals_evidence(slash.campaign_id, slash.expert_id) if slash.campaign_id else None,
    }
    if slash.epoch_id:
        reward = corrections.epoch_reward_summary(epoch_id=slash.epoch_id, expert_id=slash.expert_id)
        if reward is not None:
            evidence["epoch_reward"] = reward
        failed = Judgment.objects.filter(
            expert_id=slash.expert_id, campaign_id=slash.campaign_id, is_gold=True, gold_correct=False,
            submitted_at__gte=slash.epoch.starts_at, submitted_at__lt=slash.epoch.ends_at,
        ).select_related("task")[:50]
        evidence["failed_gold"] = [
            {"judgment": j.pk, "task": j.task.external_id, "ranks": j.ranks, "gold": j.task.gold} for j in failed
        ]
    return evidence


# --------------------------------------------------------------------------
# Opening
# --------------------------------------------------------------------------


def _create(*, subject_key: str, **fields) -> tuple[Dispute, bool]:
    existing = Dispute.objects.filter(subject_key=subject_key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            dispute = Dispute.objects.create(subject_key=subject_key, **fields)
    except IntegrityError:  # the same dispute opened twice at once
        existing = Dispute.objects.filter(subject_key=subject_key).first()
        if existing is None:
            raise
        return existing, False
    audit_record(action="dispute.open", actor=fields["raised_by"], obj=dispute,
                 details={"kind": dispute.kind, "subject": subject_key})
    return dispute, True


def gold_verdicts_disputable(expert: Expert):
    """Failed gold answers the expert may see and dispute: in campaigns where gold has cost them
    (a gold flag or a slash); elsewhere which tasks were gold stays secret."""
    campaigns = corrections.slashed_campaign_ids(expert=expert)
    campaigns |= set(RaterQuality.objects.filter(expert=expert, flag_gold=True).values_list("campaign_id", flat=True))
    return Judgment.objects.filter(expert=expert, is_gold=True, gold_correct=False, voided=False,
                                   campaign_id__in=campaigns)


def slashes_disputable(expert: Expert, now: datetime | None = None):
    return corrections.slashes_disputable(expert=expert, now=now)


def dispute_open_expert(
    *, expert: Expert, user, kind: str, statement: str, slash_id: int | None = None,
    transaction_id: int | None = None, judgment_id: int | None = None, now: datetime | None = None,
) -> tuple[Dispute, bool]:
    """An expert disputes one of their own slashes, failed gold answers or voided judgments.

    Returns (dispute, created); disputing the same decision again returns
    the first dispute. Anything not the expert's own (or not disputable) is
    "not found", so ids of other experts' rows reveal nothing.
    """
    statement = _clean_statement(statement)
    if kind == Dispute.Kind.SLASH:
        slashes = corrections.slashes_of(expert=expert)
        if slash_id is not None:
            slash = slashes.filter(pk=slash_id).first()
        elif transaction_id is not None:
            slash = slashes.filter(transaction_id=transaction_id).first()
        else:
            raise ServiceError("name the slash (its id, or its ledger transaction).", field="slash")
        if slash is None:
            raise ServiceError("no such slash of yours.", field="slash", status=404)
        existing = Dispute.objects.filter(subject_key=f"slash:{slash.pk}").first()
        if existing is not None:
            return existing, False
        if not slashes_disputable(expert, now).filter(pk=slash.pk).exists():
            raise ServiceError(
                f"this slash can no longer be disputed: it was given back already, or is older than "
                f"{settings.DATADAO_DISPUTE_WINDOW_DAYS} days.", field="slash", status=409,
            )
        return _create(
            subject_key=f"slash:{slash.pk}", kind=kind, expert=expert, raised_by=user, campaign_id=slash.campaign_id,
            slash=slash, statement=statement, evidence=_jsonable(_slash_evidence(slash)),
        )
    if kind in (Dispute.Kind.GOLD_VERDICT, Dispute.Kind.VOIDED_JUDGMENT):
        if judgment_id is None:
            raise ServiceError("name the judgment.", field="judgment")
        if kind == Dispute.Kind.GOLD_VERDICT:
            candidates, prefix = gold_verdicts_disputable(expert), "gold"
        else:
            candidates, prefix = Judgment.objects.filter(expert=expert, voided=True), "voided"
        existing = Dispute.objects.filter(subject_key=f"{prefix}:{judgment_id}", expert=expert).first()
        if existing is not None:
            return existing, False
        judgment = candidates.filter(pk=judgment_id).select_related("task").first()
        if judgment is None:
            raise ServiceError("no such disputable judgment of yours.", field="judgment", status=404)
        return _create(
            subject_key=f"{prefix}:{judgment.pk}", kind=kind, expert=expert, raised_by=user,
            campaign_id=judgment.campaign_id, judgment=judgment, statement=statement,
            evidence=_jsonable(_judgment_evidence(judgment)),
        )
    raise ServiceError("experts dispute a slash, a gold verdict or a voided judgment.", field="kind")


def judgment_by_handle(*, campaign: Campaign, task_external_id: str, handle: str) -> Judgment | None:
    """The judgment a lab means: the task by its own id, the rater by their per-campaign handle."""
    task = Task.objects.filter(campaign=campaign, external_id=task_external_id).first()
    if task is None:
        return None
    for judgment in Judgment.objects.filter(task=task).select_related("task"):
        if rater_handle(campaign.pk, judgment.expert_id) == handle:
            return judgment
    return None


def dispute_open_lab(
    *, user, campaign_id: int, task_external_id: str, rater: str, statement: str,
) -> tuple[Dispute, bool]:
    """A lab member disputes a judgment in one of the lab's campaigns (task external id + rater handle)."""
    statement = _clean_statement(statement)
    campaign = Campaign.objects.filter(pk=campaign_id, lab__members=user).select_related("lab").first()
    if campaign is None:
        raise ServiceError("no such campaign.", field="campaign", status=404)
    judgment = judgment_by_handle(campaign=campaign, task_external_id=task_external_id, handle=rater)
    if judgment is None:
        raise ServiceError("no judgment by that rater on that task.", field="rater", status=404)
    key = f"lab:{campaign.lab_id}:judgment:{judgment.pk}"
    existing = Dispute.objects.filter(subject_key=key).first()
    if existing is not None:
        return existing, False
    if judgment.voided:
        raise ServiceError("that judgment is voided already; it earns nothing and is not exported.",
                           field="rater", status=409)
    return _create(
        subject_key=key, kind=Dispute.Kind.JUDGMENT_QUALITY, expert_id=judgment.expert_id, lab=campaign.lab,
        raised_by=user, campaign=campaign, judgment=judgment, statement=statement,
        evidence=_jsonable(_judgment_evidence(judgment)),
    )


# --------------------------------------------------------------------------
# Moderating
# --------------------------------------------------------------------------


def _parties(dispute: Dispute) -> list:
    """Who hears about an outcome: the disputant and, for a lab's dispute, the expert whose judgment it was."""
    users = [dispute.raised_by]
    if dispute.kind == Dispute.Kind.JUDGMENT_QUALITY:
        users.append(dispute.expert.user)
    return list({u.pk: u for u in users}.values())


def _subject_text(dispute: Dispute, *, for_expert: bool) -> str:
    if dispute.kind == Dispute.Kind.SLASH:
        return f"the slash of your stake ({dispute.slash.reason})"
    task = dispute.judgment.task.external_id if dispute.judgment_id else "?"
    if dispute.kind == Dispute.Kind.GOLD_VERDICT:
        return f"the gold verdict on task {task}"
    if dispute.kind == Dispute.Kind.VOIDED_JUDGMENT:
        return f"your voided judgment on task {task}"
    rater = rater_handle(dispute.campaign_id, dispute.expert_id)
    return f"a lab's dispute of your judgment on task {task}" if for_expert else \
        f"the judgment of rater {rater} on task {task}"


def _notify(dispute: Dispute, *, kind: str, title: str, body: str) -> None:
    for user in _parties(dispute):
        for_expert = dispute.kind == Dispute.Kind.JUDGMENT_QUALITY and user.pk == dispute.expert.user_id
        notification_send(
            user=user, kind=kind, title=title.format(subject=_subject_text(dispute, for_expert=for_expert)),
            body=body, url=disputes_url(dispute), subject=f"dispute:{dispute.pk}",
        )


@transaction.atomic
def dispute_escalate(*, dispute: Dispute, moderator, note: str, now: datetime | None = None) -> Dispute:
    """Hand a dispute to a senior moderator (one holding ``resolve_escalated_dispute``)."""
    _require_moderator(moderator)
    note = (note or "").strip()
    if len(note) < REASON_MIN:
        raise ServiceError(f"say why it is escalated (at least {REASON_MIN} characters).", field="note")
    Dispute.objects.select_for_update().filter(pk=dispute.pk).values_list("pk").get()  # lock the row
    dispute = Dispute.objects.select_related("expert__user", "raised_by", "slash", "judgment__task").get(pk=dispute.pk)
    if dispute.state == Dispute.State.ESCALATED:
        return dispute
    if dispute.state == Dispute.State.RESOLVED:
        raise ServiceError("this dispute is resolved; its outcome is final.", status=409)
    dispute.state = Dispute.State.ESCALATED
    dispute.escalated_by = moderator
    dispute.escalated_at = _now(now)
    dispute.escalation_note = note
    dispute.save(update_fields=["state", "escalated_by", "escalated_at", "escalation_note"])
    _notify(dispute, kind="dispute.escalated", title="Escalated: {subject}",
            body="A senior moderator will decide this dispute.")
    audit_record(action="dispute.escalate", actor=moderator, obj=dispute, details={"note": note})
    return dispute


def _void(judgment: Judgment, reason: str, now: datetime | None = None) -> bool:
    return bool(Judgment.objects.filter(pk=judgment.pk, voided=False).update(
        voided=True, voided_reason=reason[:2000], voided_at=_now(now)))


def _recompute_consensus(task_id: int) -> None:
    consensus_request(task_id=task_id)  # marked in this transaction, so a lost job is repaired by the sweep


def _overturn_slash(dispute: Dispute, moderator) -> dict:
    return corrections.slash_give_back(slash=dispute.slash, dispute_id=dispute.pk, moderator=moderator)


def _overturn_gold(dispute: Dispute) -> dict:
    Judgment.objects.filter(pk=dispute.judgment_id).update(gold_correct=True)
    return {"judgment": dispute.judgment_id, "gold_correct": True}


def _overturn_voided(dispute: Dispute, moderator) -> dict:
    """Restore a voided judgment; pay what it lost: what was clawed back when it was voided after its epoch
    was planned, or its per-judgment share when the plan left it out."""
    judgment = Judgment.objects.select_for_update(of=("self",)).select_related("campaign", "task").get(pk=dispute.judgment_id)
    outcome: dict = {"judgment": judgment.pk, "restored": True, "reward_restored": 0}
    if not judgment.voided:
        return {**outcome, "note": "the judgment was restored already"}
    outcome.update(corrections.judgment_reward_restore(judgment=judgment, dispute_id=dispute.pk, moderator=moderator))
    Judgment.objects.filter(pk=judgment.pk).update(voided=False, voided_reason="", voided_at=None)
    _recompute_consensus(judgment.task_id)
    return outcome


def _overturn_lab(dispute: Dispute, moderator, reason: str, fraud_slash: bool) -> dict:
    money = corrections
    judgment = Judgment.objects.select_for_update(of=("self",)).select_related("campaign", "task", "expert").get(
        pk=dispute.judgment_id)
    outcome: dict = {"judgment": judgment.pk, "voided": True}
    outcome.update(money.judgment_reward_claw_back(
        judgment=judgment, key_prefix=f"dispute:{dispute.pk}:clawback", moderator=moderator,
        memo=f"Reward of a judgment on task {judgment.task.external_id} clawed back (dispute {dispute.pk})",
    ))
    _void(judgment, f"Dispute {dispute.pk} (lab): {reason}")
    if fraud_slash:
        outcome["fraud_slash"] = money.fraud_slash(judgment=judgment, dispute_id=dispute.pk, moderator=moderator)
    _recompute_consensus(judgment.task_id)
    return outcome


@transaction.atomic
def dispute_resolve(
    *, dispute: Dispute, moderator, resolution: str, reason: str, fraud_slash: bool = False,
    now: datetime | None = None,
) -> Dispute:
    """Settle a dispute: final, with the reason recorded; overturning posts the ledger corrections.

    Resolving again with the same resolution returns the dispute unchanged
    (nothing posts twice); a different resolution is refused. ``fraud_slash``
    (lab disputes, overturned) also slashes the expert's stake.
    """
    _require_moderator(moderator)
    if resolution not in Dispute.Resolution.values:
        raise ServiceError("resolve as upheld or overturned.", field="resolution")
    reason = (reason or "").strip()
    if len(reason) < REASON_MIN:
        raise ServiceError(f"give the parties the reason (at least {REASON_MIN} characters).", field="reason")
    dispute = Dispute.objects.select_for_update().get(pk=dispute.pk)
    if fraud_slash and not (dispute.kind == Dispute.Kind.JUDGMENT_QUALITY
                            and resolution == Dispute.Resolution.OVERTURNED):
        raise ServiceError("a fraud slash goes only with overturning a lab's dispute.", field="fraud_slash")
    if dispute.state == Dispute.State.RESOLVED:
        if dispute.resolution == resolution:
            return dispute
        raise ServiceError(f"this dispute was resolved as {dispute.resolution}; the outcome is final.", status=409)
    if dispute.state == Dispute.State.ESCALATED and not (
        moderator.is_superuser or moderator.has_perm("moderation.resolve_escalated_dispute")
    ):
        raise ServiceError("an escalated dispute is decided by a senior moderator.", status=403)
    dispute = Dispute.objects.select_related("expert__user", "raised_by", "slash", "judgment__task").get(pk=dispute.pk)
    outcome: dict = {}
    if resolution == Dispute.Resolution.OVERTURNED:
        if dispute.kind == Dispute.Kind.SLASH:
            outcome = _overturn_slash(dispute, moderator)
        elif dispute.kind == Dispute.Kind.GOLD_VERDICT:
            outcome = _overturn_gold(dispute)
        elif dispute.kind == Dispute.Kind.VOIDED_JUDGMENT:
            outcome = _overturn_voided(dispute, moderator)
        else:
            outcome = _overturn_lab(dispute, moderator, reason, fraud_slash)
    dispute.state = Dispute.State.RESOLVED
    dispute.resolution = resolution
    dispute.resolution_reason = reason
    dispute.resolved_by = moderator
    dispute.resolved_at = _now(now)
    dispute.outcome = _jsonable(outcome)
    dispute.save(update_fields=["state", "resolution", "resolution_reason", "resolved_by", "resolved_at", "outcome"])
    words = outcome_words(dispute.kind, resolution)
    _notify(dispute, kind="dispute.resolved",
            title=f"{words.title}: {{subject}}", body=f"{words.text} Moderator's reason: {reason}")
    audit_record(action="dispute.resolve", actor=moderator, obj=dispute,
                 details={"resolution": resolution, "reason": reason, "outcome": dispute.outcome,
                          "fraud_slash": fraud_slash})
    return dispute


@transaction.atomic
def judgment_void(*, judgment: Judgment, moderator, reason: str, now: datetime | None = None) -> bool:
    """A moderator voids a judgment: it leaves consensus and earns nothing (a reward already paid for it is
    clawed back); the expert is told and may dispute. Returns False if it was voided already."""
    _require_moderator(moderator)
    reason = (reason or "").strip()
    if len(reason) < REASON_MIN:
        raise ServiceError(f"give the reason (at least {REASON_MIN} characters).", field="reason")
    judgment = Judgment.objects.select_for_update(of=("self",)).select_related("task", "campaign", "expert__user").get(
        pk=judgment.pk)
    if judgment.voided:
        return False
    now = _now(now)
    clawed = corrections.judgment_reward_claw_back(
        judgment=judgment, key_prefix=f"void:{int(now.timestamp() * 1_000_000)}", moderator=moderator,
        memo=f"Reward of a voided judgment on task {judgment.task.external_id} clawed back",
    )
    _void(judgment, reason, now)
    notification_send(
        user=judgment.expert.user, kind="judgment.voided", title=f"Judgment voided: task {judgment.task.external_id}",
        body=f"A moderator voided your judgment: {reason} It earns nothing. You may dispute this.",
        url=disputes_url(),
    )
    audit_record(action="judgment.void", actor=moderator, obj=judgment, details={"reason": reason, **clawed})
    _recompute_consensus(judgment.task_id)
    return True
