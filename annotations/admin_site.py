"""The admin site: moderators only, and every change it makes goes to the audit trail.

Installed as the default admin site (``annotations.apps.ModeratorAdminConfig``
in ``INSTALLED_APPS``), so every ``admin.site.register`` lands here.
"""
from __future__ import annotations

from functools import wraps

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from annotations import roles


def can_use_admin(user) -> bool:
    """Moderators (staff status and the moderator group) and superusers; staff alone is not enough."""
    if not (user and user.is_active and user.is_authenticated):
        return False
    return bool((user.is_superuser and user.is_staff) or roles.is_moderator(user))


class ModeratorAdminSite(admin.AdminSite):
    site_header = "DataDAO Feedback moderation"
    site_title = "DataDAO moderation"
    index_title = "Moderation"

    def has_permission(self, request) -> bool:
        return can_use_admin(request.user)

    def admin_view(self, view, cacheable=False):
        wrapped = super().admin_view(view, cacheable)

        @wraps(view)
        def audited(request, *args, **kwargs):
            # Signed in but not a moderator: a plain 403, not the login page again.
            if (request.user.is_authenticated and not self.has_permission(request)
                    and request.path != reverse("admin:logout", current_app=self.name)):
                raise PermissionDenied
            response = wrapped(request, *args, **kwargs)
            if request.method not in ("GET", "HEAD", "OPTIONS") and can_use_admin(request.user):
                from annotations.audit import audit_admin_request

                audit_admin_request(request, response, kwargs)
            return response

        return audited
