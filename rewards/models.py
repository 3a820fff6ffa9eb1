"""The token economy: a double-entry ledger, stakes, epochs and Merkle claims.

Every token movement is a ``LedgerTransaction`` whose ``LedgerEntry`` rows sum
to zero, written only by ``rewards.ledger.ledger_post_batch``. Ledger rows are
append-only (a database trigger refuses updates, and deletes on PostgreSQL);
mistakes are corrected by reversing transactions. ``Account.balance`` is a
cache of the sum of the account's entries, kept in the same database
transaction and checked by ``manage.py ledger_reconcile``.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from annotations.models import Campaign, Expert, Lab


class Account(models.Model):
    class Kind(models.TextChoices):
        LAB = "lab", "Lab"
        ESCROW = "escrow", "Campaign escrow"
        SALES = "sales", "Campaign data-sales escrow"
        AVAILABLE = "available", "Expert available"
        BONDED = "bonded", "Expert bonded stake"
        UNBONDING = "unbonding", "Expert unbonding stake"
        CLAIMED = "claimed", "Expert claimed on-chain"
        TREASURY = "treasury", "DAO treasury"
        EXTERNAL = "external", "External (deposits and withdrawals)"

    # CLAIMED is outside the platform, like EXTERNAL: what the expert's wallets took from the distributor
    # (rewards.chain_claims). Nothing is ever spent from it.
    EXPERT_KINDS = (Kind.AVAILABLE, Kind.BONDED, Kind.UNBONDING, Kind.CLAIMED)
    SINGLETON_KINDS = (Kind.TREASURY, Kind.EXTERNAL)

    kind = models.CharField(max_length=16, choices=Kind.choices, help_text="What the account holds and for whom.")
    lab = models.ForeignKey(Lab, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts")
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts",
    )
    expert = models.ForeignKey(Expert, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts")
    balance = models.BigIntegerField(
        default=0,
        help_text="Cached sum of this account's entries, base units. Only the external account may go negative "
        "(it mirrors tokens that entered the platform).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="external") | Q(balance__gte=0), name="account_balance_nonnegative_except_external",
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind="lab", lab__isnull=False, campaign__isnull=True, expert__isnull=True)
                    | Q(kind__in=["escrow", "sales"], lab__isnull=True, campaign__isnull=False, expert__isnull=True)
                    | Q(kind__in=["available", "bonded", "unbonding", "claimed"], lab__isnull=True, campaign__isnull=True,
                        expert__isnull=False)
                    | Q(kind__in=["treasury", "external"], lab__isnull=True, campaign__isnull=True,
                        expert__isnull=True)
                ),
                name="account_owner_matches_kind",
            ),
            models.UniqueConstraint(fields=["kind", "lab"], condition=Q(lab__isnull=False), name="account_one_per_lab"),
            models.UniqueConstraint(
                fields=["kind", "campaign"], condition=Q(campaign__isnull=False), name="account_one_per_campaign",
            ),
            models.UniqueConstraint(
                fields=["kind", "expert"], condition=Q(expert__isnull=False), name="account_one_per_expert_kind",
            ),
            models.UniqueConstraint(
                fields=["kind"], condition=Q(kind__in=["treasury", "external"]), name="account_singletons",
            ),
        ]

    def __str__(self) -> str:
        owner = self.lab_id or self.campaign_id or self.expert_id
        return f"{self.kind}:{owner}" if owner else self.kind


class LedgerTransaction(models.Model):
    class Kind(models.TextChoices):
        TOPUP = "topup", "Lab top-up"
        FUND = "fund", "Campaign funding"
        REFUND = "refund", "Escrow refund"
        BOND = "bond", "Stake bonded"
        UNBOND = "unbond", "Unbonding started"
        RELEASE = "release", "Unbonded stake released"
        SLASH = "slash", "Stake slashed"
        REWARD = "reward", "Epoch reward"
        DUST = "dust", "Epoch rounding dust"
        CLAIM = "claim", "Paid out through an on-chain claim"
        CLAIMED = "claimed", "Claimed on-chain from the distributor"
        PURCHASE = "purchase", "Data purchase paid into escrow"
        REVENUE = "revenue", "Data purchase shared among contributors"
        REVERSAL = "reversal", "Reversal"

    idempotency_key = models.CharField(
        max_length=200, unique=True,
        help_text="Posting the same key again returns this transaction instead of moving money twice.",
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, db_index=True)
    memo = models.CharField(max_length=500, blank=True, help_text="Why the money moved, as people will read it.")
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_transactions",
    )
    epoch = models.ForeignKey(
        "Epoch", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_transactions",
    )
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversal",
        help_text="The transaction this one undoes; a transaction is reversed at most once.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["epoch", "kind"], name="ledgertx_epoch_kind_idx")]

    def __str__(self) -> str:
        return self.idempotency_key


class LedgerEntry(models.Model):
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    amount = models.BigIntegerField(help_text="Signed base units: positive credits the account, negative debits it.")
    created_at = models.DateTimeField(help_text="Copied from the transaction, so an account's history needs no join.")

    class Meta:
        ordering = ["-id"]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="ledgerentry_amount_nonzero")]
        indexes = [models.Index(fields=["account", "created_at"], name="ledgerentry_account_time_idx")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.amount:+d}"


class Unbonding(models.Model):
    """Stake on its way out: slashable until it is released after the cooldown."""

    class State(models.TextChoices):
        PENDING = "pending", "Cooling down"
        RELEASED = "released", "Released"

    expert = models.ForeignKey(Expert, on_delete=models.PROTECT, related_name="unbondings")
    amount = models.BigIntegerField(help_text="Base units the expert asked to unbond.")
    remaining = models.BigIntegerField(help_text="What is left after slashes; released to the available balance.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    requested_at = models.DateTimeField()
    releases_at = models.DateTimeField(db_index=True)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            # One cooldown at a time: "already unbonding" is a database fact, not a race.
            models.UniqueConstraint(fields=["expert"], condition=Q(state="pending"), name="unbonding_one_pending"),
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=F("amount")), name="unbonding_remaining_range",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="unbonding_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"unbonding {self.pk} ({self.state})"


class Slash(models.Model):
    """A cut of an expert's bonded and unbonding stake, sent to the treasury."""

    key = models.CharField(max_length=200, unique=True, help_text="Why-and-when key; slashing twice for it is a no-op.")
    expert = models.ForeignKey(Expert, on_delete=models.PROTECT, related_name="slashes")
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    epoch = models.ForeignKey("Epoch", null=True, blank=True, on_delete=models.PROTECT, related_name="slashes")
    fraction = models.DecimalField(max_digits=7, decimal_places=6, help_text="Share of the stake taken, 0..1.")
    bonded_amount = models.BigIntegerField(default=0, help_text="Base units taken from the bonded stake.")
    unbonding_amount = models.BigIntegerField(default=0, help_text="Base units taken from stake cooling down.")
    unbonding = models.ForeignKey(Unbonding, null=True, blank=True, on_delete=models.PROTECT, related_name="slashes")
    reason = models.CharField(max_length=500)
    transaction = models.OneToOneField(
        LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="slash",
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "slashes"

    def __str__(self) -> str:
        return self.key


class Epoch(models.Model):
    """A settlement period of one campaign."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        SETTLING = "settling", "Settling"
        SETTLED = "settled", "Settled"

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="epochs")
    index = models.PositiveIntegerField(help_text="0, 1, 2, ... per campaign.")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(help_text="Judgments submitted in [starts_at, ends_at) count for this epoch.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN, db_index=True)
    budget = models.BigIntegerField(
        default=0, help_text="What the epoch pays: reward per judgment x accepted judgments, capped by escrow.",
    )
    paid_total = models.BigIntegerField(
        default=0,
        help_text="Sum of the expert rewards settlement pays, as planned; rewards put on hold are not in it "
        "(see held total), nor are they added when a moderator releases them.",
    )
    held_total = models.BigIntegerField(
        default=0,
        help_text="Sum of the rewards put on hold at plan time (quality flags). They stay in the campaign escrow, "
        "reserved, until a moderator releases (pays) or forfeits (leaves to the lab) each one.",
    )
    dust = models.BigIntegerField(default=0, help_text="Rounding remainder sent to the treasury.")
    retained = models.BigIntegerField(
        default=0, help_text="Budget left in escrow because no expert cleared the quality bar.",
    )
    judgment_count = models.PositiveIntegerField(default=0)
    experts_paid = models.PositiveIntegerField(
        default=0, help_text="Experts with a positive reward that settlement pays (rewards on hold not counted).",
    )
    merkle_root = models.CharField(max_length=66, blank=True, help_text="Root of the published claim distribution.")
    claims_total = models.BigIntegerField(default=0, help_text="Sum of the on-chain claims in the distribution.")
    planned_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["campaign_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "index"], name="epoch_index_unique_per_campaign"),
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="epoch_ends_after_start"),
            models.CheckConstraint(
                condition=Q(budget=F("paid_total") + F("held_total") + F("dust") + F("retained")),
                name="epoch_budget_accounted",
            ),
            models.CheckConstraint(
                condition=Q(paid_total__gte=0, held_total__gte=0, dust__gte=0, retained__gte=0),
                name="epoch_amounts_nonnegative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}#{self.index} ({self.state})"


class EpochReward(models.Model):
    """One expert's result for an epoch: the figures behind the reward, fixed when settlement plans it.

    A reward of an expert the quality jobs flagged is planned like any other
    but put on hold: settlement does not pay it, and a moderator releases it
    (paid then, with settlement's own ledger key) or forfeits it (left in the
    campaign escrow for the lab) through ``rewards.holds``.
    """

    class HoldState(models.TextChoices):
        NONE = "none", "Not held"
        HELD = "held", "On hold: waiting for a moderator"
        RELEASED = "released", "Released by a moderator and paid"
        FORFEITED = "forfeited", "Forfeited by a moderator: left to the lab"

    epoch = models.ForeignKey(Epoch, on_delete=models.PROTECT, related_name="rewards")
    expert = models.ForeignKey(Expert, on_delete=models.PROTECT, related_name="epoch_rewards")
    judgments = models.PositiveIntegerField(help_text="n: accepted (not voided) judgments in the epoch.")
    matches = models.PositiveIntegerField(default=0)
    compared = models.PositiveIntegerField(default=0, help_text="Pair directions compared with the consensus.")
    gold_n = models.PositiveIntegerField(default=0)
    gold_correct = models.PositiveIntegerField(default=0)
    agreement = models.FloatField(help_text="Chance-corrected agreement a_i.")
    quality = models.FloatField(help_text="Shrunk quality q_i.")
    quality_low = models.FloatField(
        null=True, blank=True,
        help_text="Paid quality: q_min plus the advantage of q_i over q_min that is more than noise; pay grows "
        "with its square. Empty for rewards planned before it was stored.",
    )
    stake = models.FloatField(help_text="Time-weighted bonded stake s_i over the epoch, base units.")
    stake_factor = models.FloatField(
        default=1.0, db_default=1.0, help_text="Stake multiplier of the weight, g(s) = 1 + beta * s / (s + s_half): 1 to 1 + beta.",
    )
    weight = models.FloatField()
    value_factor = models.FloatField(
        default=1.0,
        help_text="Data-value multiplier of the weight (1 unless the campaign weights rewards by data value).",
    )
    amount = models.BigIntegerField(help_text="Reward, base units.")
    wallet_address = models.CharField(
        max_length=42, blank=True, help_text="Paid through the Merkle claim to this address; blank: paid in-platform.",
    )
    slashed = models.BooleanField(default=False, help_text="Gold accuracy below the campaign bar: stake slashed.")
    hold_state = models.CharField(
        max_length=16, choices=HoldState.choices, default=HoldState.NONE, db_default=HoldState.NONE, db_index=True,
        help_text="Held: a quality flag stopped settlement from paying this reward until a moderator releases it "
        "(paid then) or forfeits it (it stays in the campaign escrow for the lab).",
    )
    hold_reasons = models.JSONField(
        default=list, db_default=[], blank=True,
        help_text='Quality flags that put the reward on hold when it was planned, e.g. ["collusion"]; '
        "the statistics behind them are the rater's quality evidence in the campaign.",
    )
    hold_resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The moderator who released or forfeited the held reward.",
    )
    hold_resolved_at = models.DateTimeField(null=True, blank=True, help_text="When the hold was released or forfeited.")
    hold_note = models.TextField(
        blank=True, default="", db_default="", help_text="The moderator's reason for releasing or forfeiting the hold.",
    )

    class Meta:
        ordering = ["epoch_id", "expert_id"]
        constraints = [
            models.UniqueConstraint(fields=["epoch", "expert"], name="epochreward_one_per_expert"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="epochreward_amount_nonnegative"),
            # Only a positive reward is held, and a decided hold says when it was decided.
            models.CheckConstraint(
                condition=Q(hold_state="none") | Q(amount__gt=0), name="epochreward_hold_needs_amount",
            ),
            models.CheckConstraint(
                condition=Q(hold_state__in=["none", "held"]) | Q(hold_resolved_at__isnull=False),
                name="epochreward_hold_resolved_at",
            ),
        ]
        indexes = [models.Index(fields=["expert", "epoch"], name="epochreward_expert_idx")]

    def __str__(self) -> str:
        return f"{self.epoch_id}:{self.expert_id} {self.amount}"


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


class DataPurchase(models.Model):
    """A lab buying an export of another lab's campaign: the price waits in the campaign's sales escrow
    until the export is built, then goes to the contributors of the exported rows by data value, less
    the treasury fee (or back to the buyer if the export fails). Written only by ``rewards.revenue``."""

    class State(models.TextChoices):
        ESCROWED = "escrowed", "Paid into escrow; export building"
        SETTLED = "settled", "Shared among the contributors"
        REFUNDED = "refunded", "Refunded to the buyer (the export failed)"

    class Basis(models.TextChoices):
        DATA_VALUE = "data_value", "Data value of the exported judgments"
        WORK = "work", "Exported judgments (no data value computed yet)"
        NONE = "none", "No contributor with positive value: all to the treasury"

    buyer = models.ForeignKey(Lab, on_delete=models.PROTECT, related_name="data_purchases", help_text="The paying lab.")
    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, related_name="data_sales", help_text="The campaign whose data was bought.",
    )
    export = models.OneToOneField(
        "annotations.Export", on_delete=models.PROTECT, related_name="purchase",
        help_text="The export built for the buyer.",
    )
    bought_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The buyer's member who placed the order.",
    )
    client_key = models.CharField(
        max_length=100, blank=True, help_text="The buyer's Idempotency-Key: the same key never buys twice.",
    )
    price = models.BigIntegerField(help_text="What the buyer paid, base units (the campaign's price then).")
    fee_bps = models.PositiveIntegerField(help_text="Treasury fee in basis points, fixed at purchase.")
    use = models.CharField(max_length=100, help_text="The use the buyer declared; the licence allowed it.")
    licence = models.CharField(max_length=64, help_text="The campaign's licence at purchase.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.ESCROWED, db_index=True)
    basis = models.CharField(max_length=16, choices=Basis.choices, blank=True, help_text="How the price was split.")
    fee = models.BigIntegerField(default=0, help_text="Sent to the treasury (fee, or everything with no contributor).")
    paid_total = models.BigIntegerField(default=0, help_text="Shared among contributors.")
    contributors = models.PositiveIntegerField(default=0, help_text="Experts paid a share.")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When the price was shared or refunded.")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["buyer", "client_key"], condition=~Q(client_key=""), name="datapurchase_client_key_unique",
            ),
            models.CheckConstraint(condition=Q(price__gt=0), name="datapurchase_price_positive"),
            models.CheckConstraint(
                condition=Q(state="escrowed") | Q(state="refunded") | Q(fee=F("price") - F("paid_total")),
                name="datapurchase_settled_adds_up",
            ),
        ]

    def __str__(self) -> str:
        return f"purchase {self.pk} of campaign {self.campaign_id} ({self.state})"


class LabBalance(Lab):
    """Labs as the treasury desk sees them: for top-ups in admin."""

    class Meta:
        proxy = True
        verbose_name = "lab balance"



class HeldPayout(EpochReward):
    """Epoch rewards put on hold by quality flags, as moderators review them in admin."""

    class Meta:
        proxy = True
        verbose_name = "payout on hold"
        verbose_name_plural = "payouts on hold"


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
