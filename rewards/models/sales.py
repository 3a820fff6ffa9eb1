"""Data sales: a lab buying another lab's campaign data, and how the price was shared.

Written only by ``rewards.revenue``; the price waits in the campaign's sales
escrow (``Account.Kind.SALES``) until the export is built.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from annotations.models import Campaign, Lab
from exports.models import Export


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
        Export, on_delete=models.PROTECT, related_name="purchase",
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
