"""Moderator admin for the data-value app: data values, their runs, candidate-generation jobs. Read-only:
these rows are written by their Celery jobs."""
from django.contrib import admin

from annotations.admin_access import ReadOnly
from datavalue.models import CampaignDataValueReport, DataValue, GenerationJob


@admin.register(GenerationJob)
class GenerationJobAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["id", "campaign", "state", "progress", "checkpoint", "cancel_requested", "created_at",
                    "finished_at"]
    list_filter = ["state"]
    search_fields = ["campaign__name", "checkpoint"]
    list_select_related = ["campaign"]
    date_hierarchy = "created_at"

    @admin.display(description="Progress (prompts)")
    def progress(self, job: GenerationJob) -> str:
        return f"{job.progress_done} / {job.progress_total}"


@admin.register(CampaignDataValueReport)
class CampaignDataValueReportAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["campaign", "state", "probe_accuracy", "n_train_pairs", "n_val_pairs", "texts_total",
                    "computed_at"]
    list_filter = ["state"]
    search_fields = ["campaign__name"]
    list_select_related = ["campaign"]
    exclude = ["near_duplicate_task_ids"]


@admin.register(DataValue)
class DataValueAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["handle", "expert", "campaign", "total", "mean", "n_pairs", "computed_at"]
    search_fields = ["handle", "expert__user__username", "campaign__name"]
    list_filter = ["campaign"]
    list_select_related = ["campaign", "expert__user"]
