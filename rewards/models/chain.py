"""On-chain payouts: Merkle claims, indexed ``Claimed`` events, the indexer's cursor and claim adjustments.

``rewards.chain`` publishes each epoch's ``EpochClaim`` rows (adjusted by
``ClaimAdjustment``) as a cumulative Merkle root; ``rewards.chain_claims``
reads the distributor's ``Claimed`` events back into the ledger
(``ChainClaim``), as far as its ``ChainCursor`` says.
"""
from __future__ import annotations

from django.db import models
from django.db.models import Q

from annotations.models import Campaign
from rewards.models.epochs import Epoch
from rewards.models.ledger import LedgerTransaction


class EpochClaim(models.Model):
    """A Merkle claim: what the claim contract pays ``address`` for an epoch, with its proof."""

    epoch = models.ForeignKey(Epoch, on_delete=models.PROTECT, related_name="claims")
    address = models.CharField(max_length=42, help_text="EIP-55 checksummed.")
    index = models.PositiveIntegerField()
    amount = models.BigIntegerField()
    proof = models.BinaryField(help_text="Concatenated 32-byte sibling hashes, leaf to root.")

    class Meta:
        ordering = ["epoch_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["epoch", "address"], name="epochclaim_address_unique"),
            models.UniqueConstraint(fields=["epoch", "index"], name="epochclaim_index_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="epochclaim_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.epoch_id}:{self.address}"

    @property
    def proof_hex(self) -> list[str]:
        raw = bytes(self.proof)
        return ["0x" + raw[i : i + 32].hex() for i in range(0, len(raw), 32)]


class ChainCursor(models.Model):
    """How far a chain job has read a contract's events: blocks up to ``last_block`` are in the database.

    Advanced in the same database transaction as what the job wrote for those blocks, so a crash
    re-reads them and the writes' own keys make the re-read post nothing twice."""

    name = models.CharField(max_length=100, unique=True, help_text='The job and contract, e.g. "claimed:0xAbc...".')
    last_block = models.BigIntegerField(help_text="Last block whose events are indexed; -1 before the first run.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_block}"


class ChainClaim(models.Model):
    """A ``Claimed`` event of the cumulative distributor, indexed into the ledger (``rewards.chain_claims``)."""

    distributor = models.CharField(max_length=42, help_text="The distributor contract that paid, EIP-55.")
    tx_hash = models.CharField(max_length=66, help_text="The claim's transaction, 0x-prefixed.")
    log_index = models.PositiveIntegerField(help_text="The event's position in its block.")
    block_number = models.BigIntegerField()
    address = models.CharField(max_length=42, db_index=True, help_text="The wallet that claimed, EIP-55.")
    amount = models.BigIntegerField(help_text="Base units this claim paid.")
    cumulative = models.DecimalField(max_digits=78, decimal_places=0, help_text="The leaf's cumulative amount.")
    transaction = models.OneToOneField(
        LedgerTransaction, on_delete=models.PROTECT, related_name="chain_claim",
        help_text="The ledger transaction that moved the amount to the experts' claimed-on-chain accounts.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["block_number", "log_index"]
        constraints = [
            models.UniqueConstraint(fields=["tx_hash", "log_index"], name="chainclaim_one_per_event"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="chainclaim_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.address} {self.amount} ({self.tx_hash}:{self.log_index})"


class ClaimAdjustment(models.Model):
    """A change to an address's cumulative on-chain leaf besides its epochs' claims: a dispute clawing back
    a reward still awaiting claim in the distributor (``rewards.corrections``). ``rewards.chain`` adds
    these to the ``EpochClaim`` rows (a pending one at its full amount, an applied one at what it
    recovered), so the next root promises that much less. With a chain, the claw-back records it
    pending and ``publish_root`` applies it: posts what the address had not claimed (external -> escrow)."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for the next root"
        APPLIED = "applied", "In a published root"
        CANCELLED = "cancelled", "Cancelled before any root (judgment restored)"

    key = models.CharField(max_length=200, unique=True, help_text="The ledger posting's key; one row per claw-back.")
    address = models.CharField(max_length=42, db_index=True, help_text="The leaf's address, EIP-55.")
    amount = models.BigIntegerField(help_text="Base units added to the leaf; negative: clawed back.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="+", help_text="Whose escrow gets the recovered tokens.")
    memo = models.CharField(max_length=500, blank=True, default="", help_text="The posting's memo.")
    recovered = models.BigIntegerField(null=True, blank=True,
                                       help_text="Applied: what went back to the escrow (at most -amount).")
    not_recovered = models.BigIntegerField(default=0, help_text="Applied: what the wallet claimed first.")
    root = models.CharField(max_length=66, blank=True, default="", help_text="Applied: the root it went into.")
    applied_at = models.DateTimeField(null=True, blank=True)
    transaction = models.OneToOneField(
        LedgerTransaction, on_delete=models.PROTECT, related_name="claim_adjustment", null=True, blank=True,
        help_text="The posting that moved the recovered amount from the external account back into the platform.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="claimadjustment_amount_nonzero")]

    def __str__(self) -> str:
        return f"{self.address} {self.amount} ({self.key}, {self.state})"
