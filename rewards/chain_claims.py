"""The distributor's ``Claimed`` events, indexed into the ledger, and what they say was claimed on-chain.

Accounting. Settlement already takes a reward paid through a Merkle claim
out of the platform: ``epoch:<id>:claim:<expert>`` moves it from the
expert's available balance to the external account (the claim contract),
so what an expert may still claim on-chain is that part of the external
account. A ``Claimed`` event moves tokens from the distributor to the
wallet, both outside the platform; :func:`claims_index` records it by
moving the claimed amount from the external account to the expert's
``claimed`` account ("Expert claimed on-chain"). That account, like the
external one, is outside the platform: nothing is ever spent from it, and
the external balance plus every ``claimed`` balance is still exactly what
left the platform. So the ledger says, per expert, how much of what was sent
to the claim contract the expert's wallet has actually taken, and the
dispute claw-back (``rewards.corrections``) reads it from there.

Each event is one transaction keyed ``chain:claimed:<tx hash>:<log index>``
with a ``ChainClaim`` row; the cursor (``ChainCursor``, one per distributor)
moves in the same database transaction, so a re-run, a crash or a second
worker posts nothing twice and resumes after the last indexed block.

An address is ours when rewards were sent to its claim (``EpochReward``
rows with that wallet address; a claim is split among them by what each
still had unclaimed there, in expert order) or, failing that, when an expert
registered it. Events of other addresses are skipped; the cursor still
passes them.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from annotations.models import Expert
from rewards import ledger
from rewards.models import (
    Account, ChainClaim, ChainCursor, ClaimAdjustment, Epoch, EpochClaim, EpochReward, LedgerEntry, LedgerTransaction,
)

BLOCK_RANGE = 2000  # blocks per eth_getLogs call: public nodes refuse wide ranges


def claim_event_key(tx_hash: str, log_index: int) -> str:
    return f"chain:claimed:{tx_hash}:{log_index}"


def _hex(value) -> str:
    raw = bytes(value)
    return "0x" + raw.hex()


def claims_index(chain, *, confirmations: int | None = None, block_range: int = BLOCK_RANGE) -> dict[str, Any]:
    """Index ``Claimed`` events from the block after the cursor up to the latest block less ``confirmations``
    (``CHAIN_CONFIRMATIONS``); one database transaction per range of blocks. Safe to run twice."""
    confirmations = settings.CHAIN_CONFIRMATIONS if confirmations is None else confirmations
    distributor = chain.distributor
    name = f"claimed:{distributor.address}"
    cursor, _ = ChainCursor.objects.get_or_create(
        name=name, defaults={"last_block": settings.CHAIN_CLAIMS_FROM_BLOCK - 1})
    head = chain.web3.eth.block_number - confirmations
    out = {"from_block": cursor.last_block + 1, "to_block": cursor.last_block, "events": 0, "indexed": 0,
           "skipped": 0, "amount": 0}
    start = cursor.last_block + 1
    while start <= head:
        end = min(head, start + block_range - 1)
        logs = distributor.events.Claimed().get_logs(from_block=start, to_block=end)
        with transaction.atomic():
            locked = ChainCursor.objects.select_for_update().get(name=name)
            if locked.last_block != start - 1:  # another worker indexed meanwhile: carry on after it
                start = locked.last_block + 1
                continue
            for log in sorted(logs, key=lambda log: (log["blockNumber"], log["logIndex"])):
                out["events"] += 1
                amount = _index_event(log, distributor.address)
                if amount is None:
                    out["skipped"] += 1
                elif amount:
                    out["indexed"] += 1
                    out["amount"] += amount
            locked.last_block = end
            locked.save(update_fields=["last_block", "updated_at"])
        out["to_block"] = end
        start = end + 1
    return out


def _index_event(log, distributor: str) -> int | None:
    """Post one event; its amount, 0 if it was indexed before, None if the address is not ours."""
    tx_hash, log_index = _hex(log["transactionHash"]), int(log["logIndex"])
    if ChainClaim.objects.filter(tx_hash=tx_hash, log_index=log_index).exists():
        return 0
    address, amount = log["args"]["account"], int(log["args"]["amount"])
    shares = _split(address, amount)
    if not shares:
        return None
    claimed = ledger.expert_accounts_bulk(shares, Account.Kind.CLAIMED)
    posted = ledger.ledger_post(
        key=claim_event_key(tx_hash, log_index), kind=LedgerTransaction.Kind.CLAIMED,
        entries=[(ledger.external_account(), -amount), *((claimed[e], a) for e, a in sorted(shares.items()))],
        memo=f"Claimed on-chain by {address} (transaction {tx_hash})",
    )
    ChainClaim.objects.create(
        distributor=distributor, tx_hash=tx_hash, log_index=log_index, block_number=int(log["blockNumber"]),
        address=address, amount=amount, cumulative=int(log["args"]["cumulative"]), transaction_id=posted.transaction_id,
    )
    return amount


def _sent_to_claims(address: str) -> dict[int, int]:
    """expert id -> what settlement sent to ``address``'s claim for that expert (settled, not held)."""
    rows = (EpochReward.objects.filter(wallet_address=address, amount__gt=0, hold_state=EpochReward.HoldState.NONE,
                                       epoch__state=Epoch.State.SETTLED)
            .values("expert_id").annotate(total=Sum("amount")).order_by("expert_id"))
    return {row["expert_id"]: int(row["total"]) for row in rows}


def _claimed_at(address: str, expert_ids) -> dict[int, int]:
    rows = (LedgerEntry.objects.filter(account__kind=Account.Kind.CLAIMED, account__expert_id__in=list(expert_ids),
                                       transaction__chain_claim__address=address)
            .values("account__expert_id").annotate(total=Sum("amount")).order_by())
    return {row["account__expert_id"]: int(row["total"]) for row in rows}


def _split(address: str, amount: int) -> dict[int, int]:
    """Who of ours claimed ``amount`` at ``address``: expert id -> share (empty: not ours)."""
    sent = _sent_to_claims(address)
    if not sent:
        expert_id = Expert.objects.filter(wallet_address=address).values_list("pk", flat=True).first()
        return {expert_id: amount} if expert_id else {}
    claimed = _claimed_at(address, sent)
    shares: dict[int, int] = {}
    left = amount
    for expert_id, total in sent.items():
        take = min(left, max(0, total - claimed.get(expert_id, 0)))
        if take:
            shares[expert_id] = take
            left -= take
    if left:  # more than the platform sent there (a root from elsewhere): the last of them holds the rest
        last = list(sent)[-1]
        shares[last] = shares.get(last, 0) + left
    return shares


# --------------------------------------------------------------------------
# Claw-backs off leaves, applied when their root is on chain
# --------------------------------------------------------------------------


def _leaf_base(addresses) -> dict[str, int]:
    """address -> its settled earnings plus what applied claw-backs recovered (negative): its leaf
    before the pending claw-backs."""
    out = dict.fromkeys(addresses, 0)
    for address, total in (EpochClaim.objects.filter(epoch__state=Epoch.State.SETTLED, address__in=addresses)
                           .values("address").annotate(total=Sum("amount")).order_by().values_list("address", "total")):
        out[address] += int(total)
    for address, total in (ClaimAdjustment.objects.filter(state=ClaimAdjustment.State.APPLIED, address__in=addresses)
                           .values("address").annotate(total=Sum("recovered")).order_by()
                           .values_list("address", "total")):
        out[address] -= int(total or 0)
    return out


def claim_adjustments_apply(chain, root: str) -> dict[str, Any]:
    """Apply every pending claw-back off a leaf, now that ``root`` (which holds it) is on chain.

    Each takes back what its address had not claimed: with the new root on chain the old proof is
    dead, so what the distributor says the address claimed (never less than what the indexer
    recorded) is final for the old root. That part goes from the external account to the campaign
    escrow (one posting keyed as the adjustment, then on to the lab if the campaign is closed); the
    rest, claimed first with an older proof, is recorded on the row as ``not_recovered`` (the DAO
    bears it). All of it, rows and postings, in one database transaction on the locked rows: a rerun
    or a second worker finds them applied and posts nothing twice. Empty when nothing was pending."""
    from rewards import services as reward_services

    addresses = sorted(set(ClaimAdjustment.objects.filter(state=ClaimAdjustment.State.PENDING)
                           .values_list("address", flat=True)))
    if not addresses:
        return {}
    on_chain = {a: int(chain.distributor.functions.claimed(a).call()) for a in addresses}
    indexed = claimed_by_address(addresses)
    out: dict[str, Any] = {"adjustments": []}
    short: dict[str, int] = {}
    with transaction.atomic():
        pending = list(ClaimAdjustment.objects.select_for_update(of=("self",)).select_related("campaign")
                       .filter(state=ClaimAdjustment.State.PENDING, address__in=addresses).order_by("id"))
        room = {a: max(0, b - max(on_chain[a], indexed[a])) for a, b in _leaf_base(addresses).items()}
        campaigns = {}
        now = timezone.now()
        for row in pending:
            wanted = -row.amount
            taken = min(wanted, room[row.address])
            room[row.address] -= taken
            if taken:
                posted = ledger.ledger_post(
                    key=row.key, kind=LedgerTransaction.Kind.REVERSAL,
                    entries=[(ledger.external_account(), -taken), (ledger.escrow_account(row.campaign), taken)],
                    memo=row.memo or f"Clawed back off the on-chain claim of {row.address}", campaign=row.campaign)
                row.transaction_id = posted.transaction_id
                campaigns[row.campaign_id] = row.campaign
            row.state, row.recovered, row.not_recovered = ClaimAdjustment.State.APPLIED, taken, wanted - taken
            row.root, row.applied_at = root, now
            row.save(update_fields=["state", "recovered", "not_recovered", "root", "applied_at", "transaction"])
            if wanted > taken:
                short[row.address] = short.get(row.address, 0) + wanted - taken
            out["adjustments"].append({"key": row.key, "address": row.address, "recovered": taken,
                                       "not_recovered": wanted - taken})
        for campaign in campaigns.values():
            reward_services.campaign_escrow_sweep(campaign=campaign)
    if short:
        out["not_recovered"] = short
    return out if out["adjustments"] else {}


# --------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------


def claimed_by_address(addresses) -> dict[str, int]:
    """address -> what it claimed on-chain, as indexed (0 for an address with no indexed claim)."""
    wanted = list(addresses)
    out = dict.fromkeys(wanted, 0)
    for address, total in (ChainClaim.objects.filter(address__in=wanted).values("address")
                           .annotate(total=Sum("amount")).order_by().values_list("address", "total")):
        out[address] = int(total)
    return out


def epoch_claimed_on_chain(*, expert_id: int, epoch_id: int) -> int:
    """Of what settlement sent to the expert's claim for ``epoch_id``, how much the wallet has claimed.

    A claim is cumulative over the address's epochs; the indexed claims of
    the expert at that address are counted against its epochs in the order
    they settled (the order roots include them), so the earliest epoch is
    claimed first."""
    reward = EpochReward.objects.filter(epoch_id=epoch_id, expert_id=expert_id).exclude(wallet_address="").first()
    if reward is None or reward.hold_state != EpochReward.HoldState.NONE:
        return 0
    address = reward.wallet_address
    left = _claimed_at(address, [expert_id]).get(expert_id, 0)
    ordered = (EpochReward.objects.filter(expert_id=expert_id, wallet_address=address, amount__gt=0,
                                          hold_state=EpochReward.HoldState.NONE, epoch__state=Epoch.State.SETTLED)
               .order_by("epoch__settled_at", "epoch_id").values_list("epoch_id", "amount"))
    for other_epoch, amount in ordered:
        take = min(left, amount)
        if other_epoch == epoch_id:
            return take
        left -= take
    return 0
