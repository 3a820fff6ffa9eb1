"""Moderator admin for exports: read-only (exports change only through their services)."""
from django.contrib import admin

from annotations.admin import ReadOnlyAdmin
from exports.models import Export


@admin.register(Export)
class ExportAdmin(ReadOnlyAdmin):
    list_display = ["id", "campaign", "format", "file_format", "state", "rows_train", "rows_test",
                    "consensus_version", "created_at", "finished_at"]
    list_filter = ["state", "format", "file_format"]
    search_fields = ["campaign__name", "sha256_train", "sha256_test"]
    list_select_related = ["campaign"]
    date_hierarchy = "created_at"
