"""Moderator admin for quality: flagged raters, reports, consensus, and the review queue.

Everything here is written by the quality jobs, so it is read-only; the one
write, adjudicating a task in review, goes through a service.
"""
import json

from django.contrib import admin, messages
from django.utils.html import format_html

from annotations.admin import ReadOnlyAdmin
from annotations.models import (
    Judgment, QualityReport, RaterQuality, RationaleMatch, Task, TaskAwaitingReview, TaskConsensus,
)
from annotations.quality import services as quality_services
from annotations.services import ServiceError


def _pretty(value) -> str:
    return format_html("<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(value, indent=2, default=str))


@admin.register(RaterQuality)
class RaterQualityAdmin(ReadOnlyAdmin):
    list_display = [
        "handle", "expert", "campaign", "n_judgments", "agreement", "reliability", "gold_lower_bound", "gold_n",
        "median_seconds", "flagged", "flag_gold", "flag_position_bias", "flag_speed", "flag_copied_rationale",
        "flag_collusion", "flag_outside_expertise",
    ]
    list_filter = ["flagged", *RaterQuality.FLAG_FIELDS, "campaign"]
    search_fields = ["handle", "expert__user__username", "expert__user__email"]
    list_select_related = ["expert__user", "campaign"]
    readonly_fields = ["evidence_shown"]
    exclude = ["evidence"]

    @admin.display(description="Evidence (statistic, value, threshold, n per signal)")
    def evidence_shown(self, obj):
        return _pretty(obj.evidence)


@admin.register(QualityReport)
class QualityReportAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "version", "computed_at", "n_judgments", "n_tasks", "n_raters", "alpha_nominal",
                    "duration_ms"]
    list_filter = ["campaign"]
    date_hierarchy = "computed_at"
    readonly_fields = ["figures_shown"]
    exclude = ["figures"]

    @admin.display(description="Alpha (direction)")
    def alpha_nominal(self, obj):
        return (obj.figures.get("alpha_nominal") or {}).get("value")

    @admin.display(description="Figures")
    def figures_shown(self, obj):
        return _pretty(obj.figures)


@admin.register(TaskConsensus)
class TaskConsensusAdmin(ReadOnlyAdmin):
    list_display = ["task", "campaign", "ranks", "margin", "n_raters", "method", "computed_at"]
    list_filter = ["method", "campaign"]
    search_fields = ["task__external_id"]
    list_select_related = ["task", "campaign"]
    show_full_result_count = False


@admin.register(RationaleMatch)
class RationaleMatchAdmin(ReadOnlyAdmin):
    list_display = ["judgment", "source", "task", "campaign", "similarity", "found_at"]
    list_filter = ["campaign"]
    list_select_related = ["judgment", "source", "task", "campaign"]
    readonly_fields = ["rationales"]

    @admin.display(description="The two rationales")
    def rationales(self, obj):
        return format_html("<p><b>Later ({}):</b> {}</p><p><b>Earlier ({}):</b> {}</p>",
                           obj.judgment.expert, obj.judgment.rationale, obj.source.expert, obj.source.rationale)


class ReviewJudgmentInline(admin.TabularInline):
    model = Judgment
    fk_name = "task"
    extra = 0
    can_delete = False
    fields = ["expert", "ranks", "strength", "display_order", "rationale", "flags", "time_spent_ms", "submitted_at",
              "voided"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TaskAwaitingReview)
class TaskAwaitingReviewAdmin(admin.ModelAdmin):
    """The moderator queue: disagreeing tasks at maximum overlap, with every judgment shown read-only."""

    list_display = ["external_id", "campaign", "target_overlap", "judgment_count", "margin", "created_at"]
    list_filter = ["campaign__domain", "campaign"]
    search_fields = ["external_id", "campaign__name"]
    list_select_related = ["campaign", "consensus"]
    fields = ["campaign", "external_id", "prompt", "state", "target_overlap", "judgment_count", "consensus_shown"]
    readonly_fields = fields
    inlines = [ReviewJudgmentInline]
    actions = ["adjudicate"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(state=Task.State.REVIEW)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Consensus margin", ordering="consensus__margin")
    def margin(self, obj):
        consensus = getattr(obj, "consensus", None)
        return None if consensus is None else round(consensus.margin, 3)

    @admin.display(description="Consensus (ranks per upload position, pairs)")
    def consensus_shown(self, obj):
        consensus = TaskConsensus.objects.filter(task_id=obj.pk).first()
        return _pretty(None if consensus is None else {"ranks": consensus.ranks, "margin": consensus.margin,
                                                       "pairs": consensus.pairs})

    @admin.action(description="Accept the stored consensus (adjudicate)")
    def adjudicate(self, request, queryset):
        done = 0
        for task in queryset:
            try:
                quality_services.task_adjudicate(task=task, moderator=request.user)
            except ServiceError as exc:
                self.message_user(request, f"{task}: {exc.message}", messages.WARNING)
            else:
                done += 1
        if done:
            self.message_user(request, f"Adjudicated {done} task(s).", messages.SUCCESS)
