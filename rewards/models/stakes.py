"""Stake leaving and stake taken: unbonding cooldowns and slashes.

Bonded stake itself is a ledger account (``Account.Kind.BONDED``); these rows
record what the ledger postings alone cannot: a cooldown still slashable until
it is released, and why and when a slash cut an expert's stake.
"""
from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from annotations.models import Campaign, Expert
from rewards.models.ledger import LedgerTransaction


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
