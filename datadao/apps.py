from django.contrib.admin.apps import AdminConfig


class ModeratorAdminConfig(AdminConfig):
    """Django admin on a site that only moderators (staff in the moderator group) and superusers may enter."""

    default_site = "moderation.admin_site.ModeratorAdminSite"
