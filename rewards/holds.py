"""Payout holds: a quality flag stops an expert's epoch reward until a moderator decides.

The quality jobs flag raters per campaign (``annotations.models.RaterQuality``).
Four flags are reasons to hold pay: collusion, position bias, speed and
copied rationales. Gold failure is not one (it slashes, in settlement), nor
is "outside my expertise" (honest, and costs the expert nothing but work).

Life of a held reward (``EpochReward.hold_state``)::

    none                                 (paid by settlement)
    held --release--> released           (paid now, under settlement's own ledger key)
      |
      +----forfeit--> forfeited          (never paid: stays in the campaign escrow for the lab)

Settlement plans a held reward like any other but does not pay it; it stays
in escrow, reserved (``selectors.held_outstanding``), so neither a later
epoch nor the escrow refund can spend it. Release posts the reward under
``rewards.keys.reward_key``, the key settlement would have used, so it is paid
once whatever runs again. Each decision is a conditional update of one row
(``WHERE hold_state = 'held'``): of two moderators deciding at once, one
wins and the other gets a 409.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from annotations import roles
from annotations.audit import audit_record
from annotations.notifications import notification_send
from annotations.models import RaterQuality
from annotations.services import ServiceError
from rewards import ledger, services
from rewards.amounts import format_amount
from rewards.keys import reward_key
from rewards.ledger import InsufficientFunds
from rewards.models import Account, EpochReward, LedgerEntry, LedgerTransaction

# RaterQuality flag field -> hold reason (the key of its statistics in ``RaterQuality.evidence``).
HOLD_FLAGS = {
    "flag_collusion": "collusion",
    "flag_position_bias": "position_bias",
    "flag_speed": "speed",
    "flag_copied_rationale": "copied_rationale",
}
HOLD_REASONS = tuple(HOLD_FLAGS.values())

HoldState = EpochReward.HoldState


def hold_reasons_for(*, campaign_id: int, expert_ids: list[int]) -> dict[int, list[str]]:
    """expert id -> the hold reasons the campaign's quality figures raise for them now (flagged experts only)."""
    wanted = set(expert_ids)
    if not wanted:
        return {}
    out: dict[int, list[str]] = {}
    any_flag = Q()
    for field in HOLD_FLAGS:
        any_flag |= Q(**{field: True})
    rows = RaterQuality.objects.filter(any_flag, campaign_id=campaign_id).values_list("expert_id", *HOLD_FLAGS)
    for expert_id, *flags in rows:
        reasons = [reason for reason, raised in zip(HOLD_FLAGS.values(), flags) if raised]
        if reasons and expert_id in wanted:
            out[expert_id] = reasons
    return out


@dataclass(frozen=True)
class HoldDecision:
    reward: EpochReward
    transaction_id: int | None = None  # the reward's posting (release)
    refunded: int = 0  # returned to the lab with the forfeit (a closed, fully settled campaign)


def _require_moderator(user) -> None:
    if not (user and user.is_authenticated and (user.is_superuser or roles.is_moderator(user))):
        raise ServiceError("only moderators may release or forfeit held payouts.", status=403)


def _reward(reward_id: int) -> EpochReward:
    reward = (
        EpochReward.objects.select_related("epoch", "epoch__campaign", "expert").filter(pk=reward_id).first()
    )
    if reward is None:
        raise ServiceError("no such epoch reward.", status=404)
    return reward


def _decide(reward: EpochReward, *, state: str, moderator, note: str, now: datetime, **extra) -> None:
    """Move one held reward to ``state``; exactly one row changes, or someone decided first (409)."""
    changed = EpochReward.objects.filter(pk=reward.pk, hold_state=HoldState.HELD).update(
        hold_state=state, hold_resolved_by=moderator, hold_resolved_at=now, hold_note=note, **extra,
    )
    if changed != 1:
        current = EpochReward.objects.filter(pk=reward.pk).values_list("hold_state", flat=True).first()
        if current == HoldState.NONE:
            raise ServiceError("this reward was never on hold.", status=409)
        raise ServiceError(f"already resolved: the payout was {HoldState(current).name.lower()}.", status=409)
    reward.refresh_from_db()


def _wallet_url() -> str:
    return reverse("rewards_pages:wallet")


def _label(reward: EpochReward) -> str:
    return f"epoch {reward.epoch.index} of {reward.epoch.campaign.name}"


def epoch_reward_release(*, reward_id: int, moderator, note: str = "", now: datetime | None = None) -> HoldDecision:
    """Pay a held reward as settlement would have (escrow -> the expert's available balance), once.

    The epoch's Merkle distribution was published without the held reward,
    so a released reward is paid in-platform even when the expert has a
    wallet address (it is cleared on the row): sending it to the claim
    contract would move tokens no proof can claim.
    """
    _require_moderator(moderator)
    now = now or timezone.now()
    note = (note or "").strip()
    reward = _reward(reward_id)
    epoch, campaign = reward.epoch, reward.epoch.campaign
    with transaction.atomic():
        escrow = ledger.escrow_account(campaign)
        available = ledger.expert_account(reward.expert_id, Account.Kind.AVAILABLE)
        # Locked first, in pk order: a plan or refund reading the escrow waits for this decision whole.
        ledger.lock_accounts([escrow.pk, available.pk])
        _decide(reward, state=HoldState.RELEASED, moderator=moderator, note=note, now=now, wallet_address="")
        try:
            posted = ledger.ledger_post(
                key=reward_key(epoch.pk, reward.expert_id), kind=LedgerTransaction.Kind.REWARD,
                entries=[(escrow, -reward.amount), (available, reward.amount)],
                memo=f"Epoch {epoch.index} reward, {campaign.name} (released after review)"[:500],
                campaign=campaign, epoch=epoch, created_by=moderator,
            )
        except InsufficientFunds as exc:
            raise ServiceError(f"the campaign escrow cannot pay this reward: {exc}", status=409) from exc
        audit_record(
            action="payout.release", actor=moderator, obj=reward,
            details={"epoch": epoch.pk, "campaign": campaign.pk, "expert": reward.expert_id,
                     "amount": reward.amount, "reasons": reward.hold_reasons, "note": note,
                     "transaction": posted.transaction_id},
        )
        notification_send(
            user=reward.expert.user, kind="payout.released",
            title=f"Payout released: {format_amount(reward.amount)} for {_label(reward)}",
            body="A moderator reviewed the quality flags on this payout and released it; "
            "it is in your available balance." + (f"\n\n{note}" if note else ""),
            url=_wallet_url(),
        )
    return HoldDecision(reward, transaction_id=posted.transaction_id)


def epoch_reward_forfeit(*, reward_id: int, moderator, note: str = "", now: datetime | None = None) -> HoldDecision:
    """Never pay a held reward: it stays in the campaign escrow, which the lab keeps.

    On a closed campaign with every epoch settled the escrow has no
    settlement left to spend it, so it is returned to the lab at once
    (``services.campaign_escrow_sweep``), in this transaction.
    """
    _require_moderator(moderator)
    now = now or timezone.now()
    note = (note or "").strip()
    reward = _reward(reward_id)
    epoch, campaign = reward.epoch, reward.epoch.campaign
    with transaction.atomic():
        escrow = ledger.escrow_account(campaign)
        lab_account = ledger.lab_account(campaign.lab_id)
        ledger.lock_accounts([escrow.pk, lab_account.pk])
        _decide(reward, state=HoldState.FORFEITED, moderator=moderator, note=note, now=now)
        refund = services.campaign_escrow_sweep(campaign=campaign)
        refunded = 0
        if refund is not None:
            refunded = int(LedgerEntry.objects.filter(
                transaction_id=refund.transaction_id, account=lab_account,
            ).values_list("amount", flat=True).first() or 0)
        audit_record(
            action="payout.forfeit", actor=moderator, obj=reward,
            details={"epoch": epoch.pk, "campaign": campaign.pk, "expert": reward.expert_id,
                     "amount": reward.amount, "reasons": reward.hold_reasons, "note": note,
                     "refund_transaction": refund.transaction_id if refund else None, "refunded": refunded},
        )
        notification_send(
            user=reward.expert.user, kind="payout.forfeited",
            title=f"Payout forfeited: {format_amount(reward.amount)} for {_label(reward)}",
            body="A moderator reviewed the quality flags on this payout "
            f"({', '.join(reward.hold_reasons) or 'flagged'}) and forfeited it; it is not paid."
            + (f"\n\n{note}" if note else ""),
            url=_wallet_url(),
        )
    return HoldDecision(reward, refunded=refunded)
