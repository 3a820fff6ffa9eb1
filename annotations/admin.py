"""Moderator admin for labs, campaigns, tasks and experts."""
from django.contrib import admin

from annotations.models import Campaign, Expert, ExpertDomain, Lab, Response, Task


@admin.register(Lab)
class LabAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug", "members__username", "members__email"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["members"]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "lab", "domain", "status", "responses_per_task", "overlap", "task_count", "created_at"]
    list_filter = ["status", "domain", "lab"]
    search_fields = ["name", "lab__name"]
    date_hierarchy = "created_at"
    list_select_related = ["lab"]
    readonly_fields = ["task_count", "created_at", "updated_at", "opened_at", "closed_at"]


class ResponseInline(admin.TabularInline):
    model = Response
    extra = 0
    fields = ["position", "model_name", "text"]
    readonly_fields = ["position"]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["external_id", "campaign", "state", "is_gold", "filled", "target_overlap", "judgment_count", "created_at"]
    list_filter = ["state", "is_gold", "campaign__domain", "campaign"]
    search_fields = ["external_id", "campaign__name"]
    list_select_related = ["campaign"]
    raw_id_fields = ["campaign"]
    inlines = [ResponseInline]
    show_full_result_count = False  # campaigns hold hundreds of thousands of tasks


class ExpertDomainInline(admin.TabularInline):
    model = ExpertDomain
    extra = 0


@admin.register(Expert)
class ExpertAdmin(admin.ModelAdmin):
    list_display = ["user", "state", "domains", "reputation", "applied_at", "reviewed_at"]
    list_filter = ["state", "domain_vettings__domain", "domain_vettings__state"]
    search_fields = ["user__username", "user__email", "wallet_address", "credentials"]
    raw_id_fields = ["user", "reviewed_by"]
    readonly_fields = ["applied_at", "reviewed_at", "reviewed_by"]
    inlines = [ExpertDomainInline]
