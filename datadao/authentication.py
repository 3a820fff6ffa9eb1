"""API token authentication in one database round trip.

DRF's ``TokenAuthentication`` reads the token with its user, and then every
expert endpoint reads the user's groups (for the role check) and the user's
expert profile: three queries before the view starts, on the two requests an
expert makes per judgment. This class reads all of it in one statement and
hands the view a user whose ``expert`` and role cache are already filled, so
the permission classes and views ask the database nothing more.

The rules are DRF's: an unknown key or an inactive user is refused with the
same messages.
"""
from __future__ import annotations

from functools import cache

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from annotations import roles
from datadao.rows import Columns, fetch


@cache
def _statement() -> tuple[str, Columns, Columns]:
    from annotations.models import Expert

    user_model = get_user_model()
    user, expert = Columns(user_model, "u"), Columns(Expert, "e")
    groups = user_model.groups.field.related_model._meta.db_table
    through = user_model.groups.through._meta.db_table
    role_checks = ", ".join(
        f"EXISTS (SELECT 1 FROM {through} ug JOIN {groups} g ON g.id = ug.group_id "
        "WHERE ug.user_id = u.id AND g.name = %s)"
        for _role in roles.ALL_ROLES
    )
    sql = (
        f"SELECT {user.sql}, {expert.sql}, {role_checks} "
        f"FROM {Token._meta.db_table} t JOIN {user_model._meta.db_table} u ON u.id = t.user_id "
        f"LEFT JOIN {Expert._meta.db_table} e ON e.user_id = u.id WHERE t.key = %s"
    )
    return sql, user, expert


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
        sql, user_columns, expert_columns = _statement()
        row = fetch(sql, [*roles.ALL_ROLES, key], one=True)
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = user_columns.load(row[:user_columns.width])
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        rest = row[user_columns.width:]
        expert = expert_columns.load(rest[:expert_columns.width])
        if expert is not None:
            user.expert = expert  # fills both sides of the one-to-one cache
        else:
            # Cache the absence too, so ``hasattr(user, "expert")`` asks nothing.
            type(user)._meta.get_field("expert").set_cached_value(user, None)
        user._datadao_roles = {role for role, held in zip(roles.ALL_ROLES, rest[expert_columns.width:]) if held}
        token = Token(key=key, user=user)
        token._state.adding = False
        return user, token
