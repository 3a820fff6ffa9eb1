"""Experts: applications and vetting, per-domain qualification, and the qualification tests they sit."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotations.models.campaigns import Domain, Task


class Expert(models.Model):
    class State(models.TextChoices):
        APPLIED = "applied", "Applied"
        QUALIFYING = "qualifying", "Approved, qualifying"
        VETTED = "vetted", "Vetted"
        SUSPENDED = "suspended", "Suspended"
        REJECTED = "rejected", "Rejected"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="expert")
    domains = models.JSONField(default=list, help_text="Domains the expert applied for.")
    credentials = models.TextField(blank=True, help_text="Degrees, licences, experience, as the expert wrote them.")
    wallet_address = models.CharField(max_length=42, blank=True, help_text="EIP-55 checksummed payout address.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.APPLIED, db_index=True)
    reputation = models.FloatField(default=0.5, help_text="Shrunk quality across campaigns, 0..1.")
    applied_at = models.DateTimeField(auto_now_add=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    review_note = models.TextField(blank=True, help_text="Why the moderator approved, rejected or suspended.")

    class Meta:
        ordering = ["-applied_at"]
        constraints = [
            # One payout address per expert: two accounts sharing a wallet would
            # merge their Merkle claims and hide a split identity.
            models.UniqueConstraint(
                fields=["wallet_address"], condition=~Q(wallet_address=""), name="expert_wallet_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"expert:{self.user}"


class ExpertDomain(models.Model):
    """Vetting per domain: an approved expert qualifies domain by domain."""

    class State(models.TextChoices):
        QUALIFYING = "qualifying", "Qualifying"
        VETTED = "vetted", "Vetted"
        FAILED = "failed", "Failed"

    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="domain_vettings")
    domain = models.CharField(max_length=32, choices=Domain.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUALIFYING)
    score = models.FloatField(null=True, blank=True, help_text="Qualification test accuracy.")
    qualified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["expert", "domain"], name="expert_domain_unique")]

    def __str__(self) -> str:
        return f"{self.expert_id}:{self.domain}:{self.state}"


class QualificationAttempt(models.Model):
    """One sitting of a domain's qualification test: a handful of gold tasks."""

    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="qualification_attempts")
    domain = models.CharField(max_length=32, choices=Domain.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    score = models.FloatField(null=True, blank=True, help_text="Share of items whose top choice matched gold.")
    pass_mark = models.FloatField(help_text="Score needed to pass, fixed when the attempt started.")
    passed = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["expert", "domain"], condition=Q(finished_at__isnull=True), name="qualification_one_open_attempt",
            ),
        ]

    def __str__(self) -> str:
        return f"qualification {self.pk} {self.domain} ({self.score})"


class QualificationItem(models.Model):
    """A gold task in a qualification attempt, with the expert's answer."""

    attempt = models.ForeignKey(QualificationAttempt, on_delete=models.CASCADE, related_name="items")
    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="+")
    display_order = models.JSONField(help_text="Response positions in the order shown as slots A, B, ...")
    ranks = models.JSONField(null=True, blank=True, help_text="The expert's ranks per response position.")
    correct = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["attempt_id", "id"]
        constraints = [
            # A gold task seen in a test is never served to the same expert again
            # (neither in a later test nor as a campaign honeypot).
            models.UniqueConstraint(fields=["expert", "task"], name="qualification_item_expert_task_unique"),
        ]

    def __str__(self) -> str:
        return f"qualification item {self.pk}"
