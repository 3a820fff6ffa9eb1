"""Who may use the admin, and the mixins every app's admin shares (the site itself is ``moderation.admin_site``)."""
from __future__ import annotations

from django.http import HttpRequest

from annotations import roles

# Confirmed admin actions carry one of these: Django's own ("post", delete_selected) and ours ("apply").
CONFIRMED = ("apply", "post")


def can_use_admin(user) -> bool:
    """Moderators (staff status and the moderator group) and superusers; staff alone is not enough."""
    if not (user and user.is_active and user.is_authenticated):
        return False
    return bool((user.is_superuser and user.is_staff) or roles.is_moderator(user))


def leave_unaudited(request: HttpRequest) -> None:
    """Say that this admin request changed nothing (a repeated submit of a decision already taken), so the
    site records no audit row for it."""
    request.datadao_unchanged = True


class ModeratorAccess:
    """Moderators see these models without per-model Django permissions (the site already checked the role)."""

    def has_module_permission(self, request) -> bool:
        return can_use_admin(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return can_use_admin(request.user)

    def has_moderate_permission(self, request) -> bool:
        return can_use_admin(request.user)


class ReadOnly(ModeratorAccess):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
