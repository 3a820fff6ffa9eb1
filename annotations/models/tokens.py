"""Self-service API tokens: named, expiring keys of which only a hash is stored."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A self-service API key: several per user, named, with an optional expiry; the key itself is never stored.

    The key (``dd_`` and 43 URL-safe characters) is shown once when made; the database keeps its SHA-256 and
    its first characters, so the owner and moderators can tell tokens apart. Revoking keeps the row (the audit
    trail and the admin show when), but the key stops working at once.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens",
        help_text="Whose requests the key authenticates.",
    )
    name = models.CharField(max_length=100, help_text="What the owner called it (e.g. the script that uses it).")
    prefix = models.CharField(max_length=8, db_index=True, help_text="The key's first characters, kept in clear.")
    key_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the key (hex); the key is not kept.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="After this the key is refused (empty: never).")
    last_used_at = models.DateTimeField(
        null=True, blank=True, help_text="Last authenticated request, to the minute (not rewritten more often).",
    )
    revoked_at = models.DateTimeField(null=True, blank=True, help_text="When the owner or a moderator revoked it.")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
