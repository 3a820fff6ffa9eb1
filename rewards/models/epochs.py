"""Settlement periods and their results: epochs, each expert's reward, and rewards on hold.

An ``Epoch`` accounts for its whole budget (paid, held, dust, retained); an
``EpochReward`` keeps the figures behind one expert's reward, fixed when
settlement plans it; ``HeldPayout`` is the admin's view of rewards a quality
flag put on hold for a moderator.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from annotations.models import Campaign, Expert


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


class HeldPayout(EpochReward):
    """Epoch rewards put on hold by quality flags, as moderators review them in admin."""

    class Meta:
        proxy = True
        verbose_name = "payout on hold"
        verbose_name_plural = "payouts on hold"
