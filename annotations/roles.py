"""Roles are Django groups; a user may hold several."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

LAB = "lab"
EXPERT = "expert"
MODERATOR = "moderator"
ALL_ROLES = (LAB, EXPERT, MODERATOR)


def has_role(user: AbstractBaseUser | AnonymousUser, role: str) -> bool:
    if not user or not user.is_authenticated:
        return False
    cache = getattr(user, "_datadao_roles", None)
    if cache is None:
        cache = set(user.groups.values_list("name", flat=True))
        user._datadao_roles = cache
    return role in cache


def is_moderator(user) -> bool:
    # Moderators work in Django admin, so they need staff status as well.
    return bool(user and user.is_authenticated and user.is_staff and has_role(user, MODERATOR))
