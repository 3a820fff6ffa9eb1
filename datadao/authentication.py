"""API token authentication in one database round trip.

DRF's ``TokenAuthentication`` reads the token with its user, and then every
expert endpoint reads the user's groups (for the role check) and the user's
expert profile: three queries before the view starts, on the two requests an
expert makes per judgment. This class reads all of it in one statement and
hands the view a user whose ``expert`` and role cache are already filled, so
the permission classes and views ask the database nothing more.

The rules are DRF's: an unknown key or an inactive user is refused with the
same messages.

Two kinds of key work: DRF's ``Token`` (one per user, issued by an admin) and
the self-service :class:`~annotations.models.ApiToken` (several per user,
kept as a SHA-256, with an expiry and a revocation). The same statement looks
the key up in both tables, so neither costs a second round trip; a revoked or
expired ``ApiToken`` is refused on the next request, on both lanes (the
experts' fast lane calls :meth:`ApiTokenAuthentication.authenticate_credentials`
too). Its ``last_used_at`` is written at most once a minute, and only when the
row just read shows it stale: the rating loop pays one UPDATE a minute at most.
"""
from __future__ import annotations

import hashlib
from datetime import timedelta
from functools import cache

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from annotations import roles
from datadao.rows import Columns, fetch


# ``last_used_at`` is rewritten only when older than this.
LAST_USED_EVERY = timedelta(minutes=1)
_API_TOKEN_FIELDS = ("user", "prefix", "expires_at", "revoked_at", "last_used_at")


@cache
def _statement() -> tuple[str, Columns, Columns, Columns]:
    from annotations.models import ApiToken, Expert

    user_model = get_user_model()
    user, expert = Columns(user_model, "u"), Columns(Expert, "e")
    api_token = Columns(ApiToken, "k", _API_TOKEN_FIELDS)
    columns = [f.column for f in api_token.fields]
    # The key's row: DRF's Token (by the key itself; the ApiToken columns NULL) or an ApiToken (by the key's
    # SHA-256). A NULL id marks DRF's Token, as a NULL key marks the missing side of an outer join.
    legacy = ", ".join(("t.user_id" if c == "user_id" else "NULL") + f" AS {c}" for c in columns)
    keys = (
        f"SELECT {legacy} FROM {Token._meta.db_table} t WHERE t.key = %s "
        f"UNION ALL SELECT {', '.join('a.' + c for c in columns)} FROM {ApiToken._meta.db_table} a "
        "WHERE a.key_hash = %s"
    )
    groups = user_model.groups.field.related_model._meta.db_table
    through = user_model.groups.through._meta.db_table
    role_checks = ", ".join(
        f"EXISTS (SELECT 1 FROM {through} ug JOIN {groups} g ON g.id = ug.group_id "
        "WHERE ug.user_id = u.id AND g.name = %s)"
        for _role in roles.ALL_ROLES
    )
    sql = (
        f"SELECT {user.sql}, {expert.sql}, {role_checks}, {api_token.sql} "
        f"FROM ({keys}) k JOIN {user_model._meta.db_table} u ON u.id = k.user_id "
        f"LEFT JOIN {Expert._meta.db_table} e ON e.user_id = u.id"
    )
    return sql, user, expert, api_token


_CHECKED = "_datadao_token_check"


def remember_token_check(request, key: str, outcome) -> None:
    """Keep a token check's outcome ((user, token), or the ``AuthenticationFailed``) on the Django request."""
    setattr(request, _CHECKED, (key, outcome))


class ApiTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>``: the user, their expert profile and their roles in one query.

    A key already checked in this request (by the experts' fast lane, :mod:`datadao.hotpath`) is not
    read again: the same user, or the same refusal.
    """

    _checked = None

    def authenticate(self, request):
        # DRF makes its authenticators per request, so this instance serves one request only.
        self._checked = getattr(getattr(request, "_request", request), _CHECKED, None)
        return super().authenticate(request)  # the header's parsing and its refusals stay DRF's

    def authenticate_credentials(self, key):
        checked = self._checked
        if checked is not None and checked[0] == key:
            if isinstance(checked[1], exceptions.AuthenticationFailed):
                raise checked[1]
            return checked[1]
        sql, user_columns, expert_columns, token_columns = _statement()
        row = fetch(sql, [*roles.ALL_ROLES, key, hashlib.sha256(key.encode()).hexdigest()], one=True)
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        api_token = token_columns.load(row[-token_columns.width:])
        if api_token is not None:
            _refuse_if_dead(api_token)
        user = user_columns.load(row[:user_columns.width])
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        if api_token is not None:
            _note_use(api_token)
        rest = row[user_columns.width:]
        expert = expert_columns.load(rest[:expert_columns.width])
        if expert is not None:
            user.expert = expert  # fills both sides of the one-to-one cache
        else:
            # Cache the absence too, so ``hasattr(user, "expert")`` asks nothing.
            type(user)._meta.get_field("expert").set_cached_value(user, None)
        held = rest[expert_columns.width:expert_columns.width + len(roles.ALL_ROLES)]
        user._datadao_roles = {role for role, has in zip(roles.ALL_ROLES, held) if has}
        if api_token is not None:
            api_token.user = user
            return user, api_token
        token = Token(key=key, user=user)
        token._state.adding = False
        return user, token


def _refuse_if_dead(api_token) -> None:
    """A revoked or expired self-service token is refused, with DRF's exception and a message that says why."""
    if api_token.revoked_at is not None:
        raise exceptions.AuthenticationFailed(_("Token has been revoked."))
    if api_token.expires_at is not None and api_token.expires_at <= timezone.now():
        raise exceptions.AuthenticationFailed(_("Token has expired."))


def _note_use(api_token) -> None:
    """Write ``last_used_at`` when the row just read shows it older than a minute (else nothing is written)."""
    now = timezone.now()
    stale = now - LAST_USED_EVERY
    if api_token.last_used_at is not None and api_token.last_used_at >= stale:
        return
    # Conditional: of concurrent requests with the same key, one writes; the others change nothing.
    type(api_token).objects.filter(pk=api_token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale)).update(last_used_at=now)
    api_token.last_used_at = now
