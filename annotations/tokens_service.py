"""Self-service API tokens: make one (the key is shown once), list them, revoke them.

Any signed-in user (lab member, expert, moderator) manages their own tokens,
from the API (:mod:`annotations.api_tokens`) or the account page
(:mod:`annotations.token_views`); moderators revoke anyone's from the admin.
The key is ``dd_`` and 43 URL-safe characters from :mod:`secrets`; the
database keeps only its SHA-256 (what :mod:`datadao.authentication` looks up)
and its first 8 characters, so a leaked database holds no usable key.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from annotations.notifications import notification_send
from annotations.models import ApiToken
from datadao.errors import ServiceError
from datadao.inputs import unstorable

KEY_PREFIX = "dd_"
PREFIX_LENGTH = 8
NAME_MAX = ApiToken._meta.get_field("name").max_length
MAX_ACTIVE = 20  # per user: enough for every script and machine, few enough to keep track of
MAX_DAYS = 3650


def key_hash(key: str) -> str:
    """What the database keeps of a key (and what authentication looks up): its SHA-256, in hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def active_tokens(user) -> QuerySet[ApiToken]:
    """The user's tokens that still authenticate: not revoked, not expired."""
    return ApiToken.objects.filter(user=user, revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))


def api_tokens_of(user) -> QuerySet[ApiToken]:
    """The user's tokens, newest first: the expired ones too (marked so), not the revoked ones."""
    return ApiToken.objects.filter(user=user, revoked_at__isnull=True).order_by("-created_at", "-id")


def expiry_from_days(*, days: int | None, now: datetime | None = None) -> datetime | None:
    if days is None:
        return None
    if not 1 <= days <= MAX_DAYS:
        raise ServiceError(f"give a number of days from 1 to {MAX_DAYS}.", field="expires_in_days")
    return (now or timezone.now()) + timedelta(days=days)


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ServiceError("give the token a name (e.g. the script or machine that will use it).", field="name")
    if len(name) > NAME_MAX:
        raise ServiceError(f"keep the name to {NAME_MAX} characters or fewer (it has {len(name)}).", field="name")
    reason = unstorable(name)
    if reason is not None:
        raise ServiceError(reason, field="name")
    return name


def api_token_create(*, user, name: str, expires_at: datetime | None = None,
                     field: str = "expires_at") -> tuple[ApiToken, str]:
    """A new token for ``user``; returns it with its key, which is not stored and cannot be shown again.

    ``field`` names the input the expiry came from, for the error (``expires_at`` or ``expires_in_days``).
    """
    name = _clean_name(name)
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise ServiceError("must be in the future.", field=field)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        # The owner's row is the lock: two creates at once cannot both take the last place.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        if active_tokens(user).count() >= MAX_ACTIVE:
            raise ServiceError(f"you have {MAX_ACTIVE} active tokens already; revoke one you no longer use.")
        token = ApiToken.objects.create(user=user, name=name, prefix=key[:PREFIX_LENGTH], key_hash=key_hash(key),
                                        expires_at=expires_at)
    return token, key


def api_token_revoke(*, user, token_id: int) -> ApiToken:
    """Revoke one of ``user``'s tokens; its key is refused from the next request on. Another user's token, or
    one revoked already, is a 404."""
    now = timezone.now()
    changed = ApiToken.objects.filter(pk=token_id, user=user, revoked_at__isnull=True).update(revoked_at=now)
    if not changed:
        raise ServiceError("no such token of yours.", field="id", status=404)
    return ApiToken.objects.get(pk=token_id)


def api_tokens_revoke(*, token_ids: list[int]) -> int:
    """A moderator revokes tokens (a leaked key, a departed member); each owner is told. Returns how many."""
    now = timezone.now()
    revoked = 0
    with transaction.atomic():
        for token in ApiToken.objects.select_for_update().filter(pk__in=token_ids, revoked_at__isnull=True):
            token.revoked_at = now
            token.save(update_fields=["revoked_at"])
            notification_send(user=token.user, kind="api_token_revoked",
                              title=f"A moderator revoked your API token \u201c{token.name}\u201d",
                              body=f"The key starting {token.prefix} no longer works; make a new one if you "
                                   "still need it.", url="/account/tokens/")
            revoked += 1
    return revoked
