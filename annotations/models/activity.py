"""In-app notifications and the append-only audit trail (disputes live in the ``moderation`` app)."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class Notification(models.Model):
    """An in-app message to one user (dispute outcomes and the like)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=40, help_text="e.g. dispute.resolved, dispute.escalated.")
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=300, blank=True, help_text="Where to read more, a path on this site.")
    subject = models.CharField(
        max_length=100, blank=True, db_index=True,
        help_text="What it is about, as a key (e.g. dispute:12), so a sender can find its notifications.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at", "-created_at"], name="notification_inbox_idx")]

    def __str__(self) -> str:
        return f"to {self.user_id}: {self.title}"


class AuditEvent(models.Model):
    """Who did what, when, from where: append-only (a database trigger refuses edits).

    Written by ``annotations.audit``: admin requests that change something,
    moderation services, every ledger posting, logins and failed logins,
    export downloads.
    """

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The signed-in user; empty for jobs and anonymous requests.",
    )
    actor_label = models.CharField(
        max_length=150, blank=True, help_text="User name at the time (failed logins: the name that was tried).",
    )
    action = models.CharField(max_length=64, db_index=True, help_text="e.g. login.failed, dispute.resolve.")
    object_type = models.CharField(max_length=100, blank=True, help_text="app_label.model of the object acted on.")
    object_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True, help_text="Client address (behind trusted proxies).")
    user_agent = models.CharField(max_length=500, blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="What the action carried; never passwords.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["actor", "-created_at"], name="audit_actor_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label or '-'} {self.action}"
