"""Rating work: the flags an expert can raise, leases of tasks to experts, and the judgments they submit."""
from __future__ import annotations

from django.db import models
from django.db.models import Q

from annotations.models.campaigns import Campaign, Task
from annotations.models.experts import Expert


class Flag(models.TextChoices):
    UNSAFE = "unsafe", "Unsafe content"
    PERSONAL_DATA = "personal_data", "Contains personal data"
    OUTSIDE_EXPERTISE = "outside_expertise", "Outside my expertise"


class Assignment(models.Model):
    """A lease of one task to one expert, with an expiry."""

    class State(models.TextChoices):
        LEASED = "leased", "Leased"
        SUBMITTED = "submitted", "Submitted"
        SKIPPED = "skipped", "Skipped"
        EXPIRED = "expired", "Expired"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="assignments")
    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="assignments")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="assignments")
    state = models.CharField(max_length=16, choices=State.choices, default=State.LEASED)
    display_order = models.JSONField(
        help_text="Response positions in the order shown as slots A, B, ...: randomised per expert.",
    )
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-leased_at"]
        constraints = [
            # An expert never gets the same task twice.
            models.UniqueConstraint(fields=["task", "expert"], name="assignment_task_expert_unique"),
            # At most one live lease per expert and campaign.
            models.UniqueConstraint(
                fields=["expert", "campaign"], condition=Q(state="leased"), name="assignment_one_live_lease",
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "state", "expires_at"], name="assignment_expiry_idx"),
            models.Index(fields=["expert", "state"], name="assignment_expert_state_idx"),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} ({self.state})"


class Judgment(models.Model):
    """An expert's ranking of a task's responses, mapped back to response positions."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="judgment")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="judgments")
    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="judgments")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="judgments")
    ranks = models.JSONField(help_text="Rank per response position (1 = best; ties share a rank).")
    strength = models.SmallIntegerField(
        null=True, blank=True,
        help_text="K=2 only: -3 (first response much better) .. 0 (tie) .. +3 (second much better), in upload order.",
    )
    ratings = models.JSONField(default=dict, blank=True, help_text="Attribute -> Likert 1..5 per response position.")
    rationale = models.TextField(blank=True)
    flags = models.JSONField(default=list, blank=True)
    display_order = models.JSONField(help_text="Response positions as shown in slots A, B, ...")
    time_spent_ms = models.PositiveIntegerField(help_text="Measured by the server from lease start to submission.")
    submitted_at = models.DateTimeField()
    is_gold = models.BooleanField(default=False)
    gold_correct = models.BooleanField(null=True, blank=True, help_text="For gold tasks: did the top choice match gold?")
    voided = models.BooleanField(default=False, help_text="Voided by moderation: earns nothing, excluded from consensus.")
    voided_reason = models.TextField(blank=True)
    voided_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was last voided; decides whether its epoch's plan counted it.",
    )

    class Meta:
        ordering = ["-submitted_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(strength__isnull=True) | (Q(strength__gte=-3) & Q(strength__lte=3)),
                name="judgment_strength_range",
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "submitted_at"], name="judgment_campaign_time_idx"),
            models.Index(fields=["expert", "campaign"], name="judgment_expert_campaign_idx"),
            models.Index(fields=["task"], name="judgment_task_idx"),
            # A person's gold record: the assignment's "new account?" count on every Next and settlement's
            # rolling window read only scored gold answers.
            models.Index(
                fields=["expert", "submitted_at"], name="judgment_gold_verdict_idx",
                condition=Q(is_gold=True, gold_correct__isnull=False, voided=False),
            ),
        ]

    def __str__(self) -> str:
        return f"judgment {self.pk} on {self.task_id}"
