"""Moderator admin for self-service API tokens: read-only (no key is stored to show), with a revoke action."""
from django.contrib import admin, messages

from annotations import tokens_service
from annotations.admin_access import ReadOnly
from annotations.models import ApiToken


class TokenStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["user", "name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = [TokenStateFilter]
    search_fields = ["user__username", "user__email", "name", "prefix"]
    list_select_related = ["user"]
    exclude = ["key_hash"]
    date_hierarchy = "created_at"
    actions = ["revoke"]

    @admin.action(description="Revoke: the keys stop working at once; the owners are notified")
    def revoke(self, request, queryset):
        revoked = tokens_service.api_tokens_revoke(token_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)
