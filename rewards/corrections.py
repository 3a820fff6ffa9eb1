"""The money side of disputes: what a judgment earned, claw-backs, restorations, slashes given back.

The dispute flow (``moderation.services``) decides; these services move
the tokens, through the ledger's posting function, each posting keyed so
that resolving twice moves money once:

* ``<prefix>:judgment:<id>``: a voided judgment's reward clawed back
  (``void:<microseconds>`` or ``dispute:<id>:clawback``) or restored
  (``dispute:<id>:restore``). The ``:judgment:<id>`` suffix is the one rule
  that ties every correction to its judgment (:func:`net_corrections`);
* ``dispute:<id>:fraud``: a fraud slash upheld in a lab's dispute.

annotations reaches these through ``annotations.money`` (plugged in by
``RewardsConfig.ready``), so it never imports rewards.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from annotations.models import Judgment
from annotations.services import ServiceError
from rewards import chain, chain_claims, ledger
from rewards import services as reward_services
from rewards.keys import claim_key, reward_key
from rewards.ledger import InsufficientFunds
from rewards.models import Account, ClaimAdjustment, Epoch, EpochReward, LedgerEntry, LedgerTransaction, Slash


# --------------------------------------------------------------------------
# Reads the dispute flow shows or decides on
# --------------------------------------------------------------------------


def slashes_of(*, expert):
    return Slash.objects.filter(expert=expert).select_related("epoch")


def slashes_disputable(*, expert, now: datetime | None = None):
    since = (now or timezone.now()) - timedelta(days=settings.DATADAO_DISPUTE_WINDOW_DAYS)
    return Slash.objects.filter(expert=expert, created_at__gte=since).exclude(transaction__reversal__isnull=False)


def slashed_campaign_ids(*, expert) -> set[int]:
    return set(Slash.objects.filter(expert=expert, campaign__isnull=False).values_list("campaign_id", flat=True))


def _epoch_of(judgment: Judgment) -> Epoch | None:
    return Epoch.objects.filter(
        campaign_id=judgment.campaign_id, starts_at__lte=judgment.submitted_at, ends_at__gt=judgment.submitted_at,
    ).first()


def judgment_epoch(*, judgment: Judgment) -> dict | None:
    epoch = _epoch_of(judgment)
    return None if epoch is None else {"id": epoch.pk, "index": epoch.index, "state": epoch.state}


def epoch_reward_summary(*, epoch_id: int, expert_id: int) -> dict | None:
    reward = EpochReward.objects.filter(epoch_id=epoch_id, expert_id=expert_id).first()
    if reward is None:
        return None
    return {
        "judgments": reward.judgments, "gold_n": reward.gold_n, "gold_correct": reward.gold_correct,
        "agreement": reward.agreement, "quality": reward.quality, "amount": reward.amount,
    }


# --------------------------------------------------------------------------
# What one judgment earned
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RewardShare:
    epoch_id: int | None
    planned: bool  # the judgment's epoch has fixed its rewards
    counted: bool  # ... and counted this judgment in them
    amount: int  # what one judgment of this expert earns in that epoch
    paid: bool  # the epoch's reward to this expert has been posted
    claimed: int = 0  # of ``amount``, what the reward's on-chain claim took out of the platform
    claimed_on_chain: int = 0  # of ``claimed``, what the expert's wallet has taken from the distributor (indexed)


def judgment_reward_share(judgment: Judgment) -> RewardShare:
    """What one judgment earns: the expert's epoch reward divided by the judgments it counted.

    Nothing while its epoch is open (settlement will decide). A judgment
    voided before its epoch was planned was left out of the reward; its
    worth is then the same per-judgment rate (or the campaign's reward per
    judgment when it was the expert's only one). An expert with a wallet was
    paid through a Merkle claim (``epoch:<id>:claim:<expert id>``): that part
    of the share is ``claimed``, in proportion to the reward it moved, and
    of that, ``claimed_on_chain`` is what the wallet has claimed from the
    distributor as the claims indexer recorded it (``rewards.chain_claims``).
    A reward on hold or forfeited paid nothing: its share is 0.
    """
    epoch = _epoch_of(judgment)
    if epoch is None or epoch.state == Epoch.State.OPEN or epoch.planned_at is None:
        return RewardShare(epoch.pk if epoch else None, False, False, 0, False)
    counted = not judgment.voided or (judgment.voided_at is not None and judgment.voided_at >= epoch.planned_at)
    reward = EpochReward.objects.filter(epoch=epoch, expert_id=judgment.expert_id).first()
    paid = LedgerTransaction.objects.filter(idempotency_key=reward_key(epoch.pk, judgment.expert_id)).exists()
    if reward is None or reward.judgments <= 0:
        amount = 0 if counted else judgment.campaign.reward_per_judgment
        return RewardShare(epoch.pk, True, counted, amount, paid)
    if reward.hold_state in (EpochReward.HoldState.HELD, EpochReward.HoldState.FORFEITED):
        # Held for a moderator, or forfeited: nothing of it reached the expert, so nothing to take back or
        # restore (the moderator deciding the hold sees the dispute).
        return RewardShare(epoch.pk, True, counted, 0, False)
    amount = reward.amount // reward.judgments
    sent = LedgerEntry.objects.filter(
        transaction__idempotency_key=claim_key(epoch.pk, judgment.expert_id), amount__gt=0,
    ).values_list("amount", flat=True).first() or 0
    kept = amount * (reward.amount - min(sent, reward.amount)) // reward.amount if reward.amount > 0 else amount
    claimed = amount - kept
    on_chain = 0
    if claimed and sent:
        taken = chain_claims.epoch_claimed_on_chain(expert_id=judgment.expert_id, epoch_id=epoch.pk)
        on_chain = claimed * min(taken, sent) // sent
    return RewardShare(epoch.pk, True, counted, amount, paid, claimed=claimed, claimed_on_chain=on_chain)


def judgment_key_suffix(judgment_id: int) -> str:
    """The end of every correction's idempotency key for this judgment."""
    return f":judgment:{judgment_id}"


def net_corrections(judgment_id: int, account_id: int) -> int:
    """What claw-backs and restorations of this judgment's reward did to the expert's available balance."""
    total = LedgerEntry.objects.filter(
        account_id=account_id, transaction__idempotency_key__endswith=judgment_key_suffix(judgment_id),
    ).aggregate(s=Sum("amount"))["s"]
    return int(total or 0)


def _post(**kwargs):
    try:
        return ledger.ledger_post(**kwargs)
    except InsufficientFunds as exc:
        raise ServiceError(f"the ledger refused: {exc}", status=409) from exc


def _settling_guard(share: RewardShare) -> None:
    if share.planned and share.counted and not share.paid and share.amount > 0:
        raise ServiceError("the judgment's epoch is being paid out right now; try again in a few minutes.",
                           status=409)


# --------------------------------------------------------------------------
# Corrections
# --------------------------------------------------------------------------


def root_claw_back_amount(*, awaiting: int, leaf: int, claimed: int) -> int:
    """What a claw-back takes off an address's cumulative leaf: what of the reward still awaits claim,
    never taking the leaf below what the address already claimed on-chain (the contract paid that)."""
    return max(0, min(awaiting, leaf - claimed))


def judgment_reward_claw_back(*, judgment: Judgment, key_prefix: str, moderator, memo: str) -> dict:
    """Take a voided judgment's reward back to the campaign escrow if it was paid.

    What the reward left in the platform comes from the expert's available
    balance, only what is there (tokens already withdrawn are not taken).
    The part sent to an on-chain claim is never taken from the expert's own
    tokens (available balance or stake): what of it still waits in the
    distributor is taken off the address's cumulative leaf instead: a
    ``ClaimAdjustment`` row keyed ``<prefix>:root:judgment:<id>`` that the
    next root reads, never below what the address has claimed on-chain as
    indexed; what the wallet already claimed is reported as not recovered.
    With a chain (``CHAIN_RPC_URL``) the row is pending and the outcome
    reports it as ``pending_root``: until the lower root is on chain the
    wallet may still claim it with its old proof, so ``publish_root`` posts
    what was really recovered (external account -> escrow, same key) and
    records the rest on the row. Without a chain no on-chain claim can race
    it: the posting is made now and reported as ``from_claim`` (included in
    ``clawed_back``). On a closed campaign with every epoch
    settled the clawed-back tokens go on to the lab
    (``rewards.services.campaign_escrow_sweep``), in this transaction.
    Refused while the judgment's epoch is being paid out."""
    share = judgment_reward_share(judgment)
    _settling_guard(share)
    if not (share.counted and share.paid and share.amount > 0):
        return {"clawed_back": 0}
    available = ledger.expert_account(judgment.expert_id, Account.Kind.AVAILABLE)
    escrow = ledger.escrow_account(judgment.campaign)
    # The lab's account too: the sweep may refund to it, and the external account when part of the reward
    # went to an on-chain claim; locks are taken in one pk-ordered go.
    lab_account = ledger.lab_account(judgment.campaign.lab_id)
    external = ledger.external_account() if share.claimed else None
    locked = ledger.lock_accounts([available.pk, escrow.pk, lab_account.pk, *([external.pk] if external else [])])
    key = f"{key_prefix}{judgment_key_suffix(judgment.pk)}"
    prior = LedgerTransaction.objects.filter(idempotency_key=key).first()
    if prior is not None:
        amount = prior.entries.filter(amount__gt=0).values_list("amount", flat=True).first() or 0
    else:
        # What a restoration paid back into the available balance for an earlier claw-back off the leaf.
        restored = max(0, net_corrections(judgment.pk, available.pk))
        amount = min(share.amount - share.claimed + restored, locked[available.pk].balance)
    out: dict = {"clawed_back": amount}
    if amount:
        posted = _post(key=key, kind=LedgerTransaction.Kind.REVERSAL, entries=[(available, -amount), (escrow, amount)],
                       memo=memo, campaign=judgment.campaign, created_by=moderator)
        out["transaction"] = posted.transaction_id
    root_key = f"{key_prefix}:root{judgment_key_suffix(judgment.pk)}"
    from_claim = external and _claw_back_from_claim(judgment, share, root_key, external=external, escrow=escrow,
                                                    moderator=moderator, memo=memo)
    if from_claim and "pending" in from_claim:
        out["pending_root"] = from_claim["pending"]
    elif from_claim:
        out["clawed_back"] = amount + from_claim["amount"]
        out["from_claim"], out["claim_transaction"] = from_claim["amount"], from_claim["transaction"]
    if amount or (from_claim and from_claim.get("transaction")):
        refund = reward_services.campaign_escrow_sweep(campaign=judgment.campaign)
        if refund is not None:
            out["refunded_to_lab"] = refund.transaction_id
    if out["clawed_back"] + out.get("pending_root", 0) < share.amount:
        out["not_recovered"] = share.amount - out["clawed_back"] - out.get("pending_root", 0)
    if share.claimed:
        out["claimed_on_chain"] = share.claimed_on_chain
        out["awaiting_claim"] = share.claimed - share.claimed_on_chain
        out["note"] = ("the reward was sent to the expert's on-chain claim; that part is not taken from their "
                       "balance or stake: what still awaited claim is taken off their address's next root"
                       + (", and recovered when that root is published" if "pending_root" in out else ""))
    return out


def _leaf_taken(judgment_id: int) -> int:
    """What earlier claw-backs of this judgment take off its address's leaf (pending: their amount;
    applied: what they recovered)."""
    rows = ClaimAdjustment.objects.filter(key__endswith=judgment_key_suffix(judgment_id)).exclude(
        state=ClaimAdjustment.State.CANCELLED)
    return -int(rows.aggregate(s=Sum(chain.leaf_adjustment()))["s"] or 0)


def _claw_back_from_claim(judgment: Judgment, share: RewardShare, key: str, *, external, escrow, moderator,
                          memo: str) -> dict | None:
    """Take what of the judgment's claimed share still waits in the distributor off the address's leaf:
    one ``ClaimAdjustment`` keyed ``key``, pending until ``publish_root`` applies it when a chain is
    configured (``{"pending": amount}``), else applied now with its posting (external account -> escrow,
    same key)."""
    prior = ClaimAdjustment.objects.filter(key=key).first()
    if prior is not None:
        if prior.state == ClaimAdjustment.State.PENDING:
            return {"pending": -prior.amount}
        if prior.state == ClaimAdjustment.State.APPLIED and prior.recovered:
            return {"amount": prior.recovered, "transaction": prior.transaction_id}
        return None
    awaiting = share.claimed - share.claimed_on_chain
    if awaiting <= 0:
        return None
    address = EpochReward.objects.filter(epoch_id=share.epoch_id, expert_id=judgment.expert_id).values_list(
        "wallet_address", flat=True).first()
    if not address:
        return None
    taken = root_claw_back_amount(awaiting=awaiting - _leaf_taken(judgment.pk),
                                  leaf=chain.cumulative_earnings([address]).get(address, 0),
                                  claimed=chain_claims.claimed_by_address([address])[address])
    if taken <= 0:
        return None
    memo = f"{memo}, off the on-chain claim of {address}"
    if chain.chain_configured():
        ClaimAdjustment.objects.create(key=key, address=address, amount=-taken, campaign=judgment.campaign, memo=memo)
        return {"pending": taken}
    posted = _post(key=key, kind=LedgerTransaction.Kind.REVERSAL, entries=[(external, -taken), (escrow, taken)],
                   memo=memo, campaign=judgment.campaign, created_by=moderator)
    ClaimAdjustment.objects.create(key=key, address=address, amount=-taken, campaign=judgment.campaign, memo=memo,
                                   state=ClaimAdjustment.State.APPLIED, recovered=taken, applied_at=timezone.now(),
                                   transaction_id=posted.transaction_id)
    return {"amount": taken, "transaction": posted.transaction_id}


def judgment_reward_restore(*, judgment: Judgment, dispute_id: int, moderator) -> dict:
    """Pay a voided judgment being restored what it lost: what was clawed back when it was voided after
    its epoch was planned (what a published root took off its address's on-chain claim is paid back to the
    available balance; a claw-back still waiting for its root is cancelled instead), or its per-judgment
    share when the plan left it out. ``judgment`` is read (and locked) while still voided."""
    share = judgment_reward_share(judgment)
    available = ledger.expert_account(judgment.expert_id, Account.Kind.AVAILABLE)
    key = f"dispute:{dispute_id}:restore{judgment_key_suffix(judgment.pk)}"
    prior = LedgerTransaction.objects.filter(idempotency_key=key).first()
    if prior is not None:
        owed = prior.entries.filter(amount__gt=0).values_list("amount", flat=True).first() or 0
    elif share.counted:
        adjustments = ClaimAdjustment.objects.select_for_update().filter(key__endswith=judgment_key_suffix(judgment.pk))
        list(adjustments)  # locked: a root being published waits, or has applied them
        adjustments.filter(state=ClaimAdjustment.State.PENDING).update(state=ClaimAdjustment.State.CANCELLED)
        # What a published root took off an on-chain claim: paid back in-platform.
        off_leaf = int(adjustments.filter(state=ClaimAdjustment.State.APPLIED)
                       .aggregate(s=Sum("recovered"))["s"] or 0)
        owed = max(0, off_leaf - net_corrections(judgment.pk, available.pk))
    else:
        owed = share.amount
    if owed <= 0:
        return {} if share.planned else {"note": "its epoch is not settled yet: settlement will count it"}
    escrow = ledger.escrow_account(judgment.campaign)
    treasury = ledger.treasury_account()
    locked = ledger.lock_accounts([escrow.pk, treasury.pk, available.pk])
    if prior is not None:
        source = prior.entries.filter(amount__lt=0).values_list("account_id", flat=True).first()
    else:
        # The lab funded the work; when its escrow is spent the DAO pays for its moderation mistake.
        source = escrow.pk if locked[escrow.pk].balance >= owed else treasury.pk
    posted = _post(
        key=key, kind=LedgerTransaction.Kind.REWARD, entries=[(source, -owed), (available, owed)],
        memo=f"Reward restored for a judgment on task {judgment.task.external_id} (dispute {dispute_id})",
        campaign=judgment.campaign, created_by=moderator,
    )
    return {"reward_restored": owed, "transaction": posted.transaction_id,
            "paid_from": "escrow" if source == escrow.pk else "treasury", "epoch": share.epoch_id}


def slash_give_back(*, slash: Slash, dispute_id: int, moderator) -> dict:
    posted = reward_services.slash_reverse(
        slash=slash, actor=moderator, memo=f"Slash given back: dispute {dispute_id} overturned it",
    )
    if posted is None:
        return {"slash_reversal": None, "note": "the slash moved nothing"}
    return {"slash_reversal": posted.transaction_id, "created": posted.created,
            "returned": slash.bonded_amount + slash.unbonding_amount}


def fraud_slash(*, judgment: Judgment, dispute_id: int, moderator) -> dict:
    slash = reward_services.stake_slash(
        expert=judgment.expert, fraction=judgment.campaign.slash_fraction, key=f"dispute:{dispute_id}:fraud",
        reason=f"fraud finding upheld in dispute {dispute_id}", campaign=judgment.campaign, actor=moderator,
    )
    return {"slash": slash.pk, "transaction": slash.transaction_id,
            "amount": slash.bonded_amount + slash.unbonding_amount}
