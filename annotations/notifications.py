"""In-app notifications: every app sends through here (dispute outcomes, payout holds, revoked tokens)."""
from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from annotations.models import Notification


def notification_send(*, user, kind: str, title: str, body: str = "", url: str = "",
                      subject: str = "") -> Notification:
    """One message to one user; ``subject`` is a key of what it is about (e.g. ``dispute:12``)."""
    return Notification.objects.create(
        user=user, kind=kind[:40], title=title[:200], body=body, url=url[:300], subject=subject[:100],
    )


def notifications_mark_read(*, user, ids: list[int] | None = None, now: datetime | None = None) -> int:
    """Mark the user's unread notifications (all, or those ids) read; returns how many changed."""
    queryset = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        queryset = queryset.filter(pk__in=ids)
    return queryset.update(read_at=now or timezone.now())
