"""The site menu: which pages the signed-in user's roles reach, and the unread notifications."""
from __future__ import annotations

from django import template

from annotations import roles
from annotations.models import Expert, Notification

register = template.Library()


@register.simple_tag(takes_context=True)
def main_menu(context) -> dict:
    """What base.html's header links to, by role (one user may hold several roles)."""
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return {}
    return {
        "is_expert": roles.has_role(user, roles.EXPERT) and Expert.objects.filter(user=user).exists(),
        "is_lab": roles.has_role(user, roles.LAB),
        "is_moderator": roles.is_moderator(user),
        "unread": Notification.objects.filter(user=user, read_at__isnull=True).count(),
    }
