"""Moderation's model: disputes over decisions.

The table predates the app (``annotations_dispute``, pinned by ``db_table``). Notifications and the
audit trail stay in ``annotations``: every app below writes them.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotations.models import Campaign, Expert, Judgment, Lab


class Dispute(models.Model):
    """A party contests a decision; a moderator settles it in admin, and the outcome is final.

    The disputed decision depends on the kind: an expert contests a slash,
    a gold verdict (their gold answer scored wrong) or a voided judgment; a
    lab contests a judgment it was charged for (low quality or fraud).
    Resolutions name what happens to that decision: *upheld* (it stands,
    nothing moves) or *overturned* (it is reversed: the slash is given
    back, the gold answer counts as right, the judgment is restored and
    paid, or the lab's judgment is voided and its reward clawed back).
    Written only by ``moderation.services``.
    """

    class Kind(models.TextChoices):
        SLASH = "slash", "Expert: a slash of my stake"
        GOLD_VERDICT = "gold_verdict", "Expert: a gold answer scored wrong"
        VOIDED_JUDGMENT = "voided_judgment", "Expert: a voided judgment"
        JUDGMENT_QUALITY = "judgment_quality", "Lab: a judgment's quality (low effort or fraud)"

    EXPERT_KINDS = (Kind.SLASH, Kind.GOLD_VERDICT, Kind.VOIDED_JUDGMENT)

    class State(models.TextChoices):
        OPEN = "open", "Open"
        ESCALATED = "escalated", "Escalated"
        RESOLVED = "resolved", "Resolved"

    class Resolution(models.TextChoices):
        UPHELD = "upheld", "Upheld: the decision stands"
        OVERTURNED = "overturned", "Overturned: the decision is reversed"

    kind = models.CharField(max_length=24, choices=Kind.choices, db_index=True, help_text="What is disputed.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN, db_index=True)
    subject_key = models.CharField(
        max_length=100, unique=True,
        help_text="One dispute per disputed decision (e.g. slash:12, lab:3:judgment:45); a repeat returns it.",
    )
    expert = models.ForeignKey(
        Expert, on_delete=models.PROTECT, related_name="disputes",
        help_text="The expert concerned: the disputant, or whose judgment a lab disputes.",
    )
    lab = models.ForeignKey(
        Lab, null=True, blank=True, on_delete=models.PROTECT, related_name="disputes",
        help_text="The disputing lab (lab disputes only).",
    )
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="disputes_raised",
        help_text="The user who opened the dispute.",
    )
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.PROTECT, related_name="disputes")
    slash = models.ForeignKey(
        "rewards.Slash", null=True, blank=True, on_delete=models.PROTECT, related_name="disputes",
    )
    judgment = models.ForeignKey(Judgment, null=True, blank=True, on_delete=models.PROTECT, related_name="disputes")
    statement = models.TextField(help_text="The disputant's case, as they wrote it.")
    evidence = models.JSONField(
        default=dict, blank=True,
        help_text="Frozen when the dispute was opened: task, judgment, gold answer, consensus, the rater's "
        "signals, the slash. Later changes to those rows do not change it.",
    )
    resolution = models.CharField(max_length=16, choices=Resolution.choices, blank=True)
    resolution_reason = models.TextField(blank=True, help_text="Why the moderator decided so; shown to the parties.")
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    escalated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )
    escalated_at = models.DateTimeField(null=True, blank=True)
    escalation_note = models.TextField(blank=True, help_text="Why the dispute went to a senior moderator.")
    outcome = models.JSONField(
        default=dict, blank=True,
        help_text="What resolving did: ledger transactions posted (ids, amounts), judgment changes.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "annotations_dispute"  # the table from before the app's split, rows kept
        ordering = ["-created_at", "-id"]
        permissions = [("resolve_escalated_dispute", "Can resolve escalated disputes")]
        indexes = [models.Index(fields=["state", "kind", "created_at"], name="dispute_queue_idx")]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(state="resolved", resolution__in=["upheld", "overturned"], resolved_at__isnull=False)
                    & ~Q(resolution_reason="")
                ) | (~Q(state="resolved") & Q(resolution="")),
                name="dispute_resolved_has_resolution_and_reason",
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind="slash", slash__isnull=False)
                    | Q(kind__in=["gold_verdict", "voided_judgment"], judgment__isnull=False)
                    | Q(kind="judgment_quality", judgment__isnull=False, lab__isnull=False)
                ),
                name="dispute_kind_has_subject",
            ),
            models.CheckConstraint(condition=~Q(statement=""), name="dispute_has_statement"),
        ]

    def __str__(self) -> str:
        return f"dispute {self.pk} ({self.get_kind_display()}, {self.state})"

    @property
    def is_final(self) -> bool:
        return self.state == self.State.RESOLVED
