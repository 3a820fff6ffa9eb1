"""The double-entry ledger: accounts, transactions and their entries.

Every token movement is a ``LedgerTransaction`` whose ``LedgerEntry`` rows sum
to zero, written only by ``rewards.ledger.ledger_post_batch``. Ledger rows are
append-only (a database trigger refuses updates, and deletes on PostgreSQL);
mistakes are corrected by reversing transactions. ``Account.balance`` is a
cache of the sum of the account's entries, kept in the same database
transaction and checked by ``manage.py ledger_reconcile``. ``LabBalance`` is
the admin's view of labs for top-ups.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

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


class LabBalance(Lab):
    """Labs as the treasury desk sees them: for top-ups in admin."""

    class Meta:
        proxy = True
        verbose_name = "lab balance"
