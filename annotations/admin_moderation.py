"""Moderator admin: the dispute queue, the review queue's own ranking, voiding, the audit trail.

Every write is an admin action that calls one service; the rows themselves
are read-only here (no add, change or delete), and so are the audit trail
and notifications.
"""
from __future__ import annotations

import json
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from annotations import adjudication, disputes
from annotations.admin import JudgmentAdmin
from annotations.admin_quality import TaskAwaitingReviewAdmin
from annotations.admin_site import can_use_admin
from annotations.models import AuditEvent, Dispute, Judgment, Notification, TaskAwaitingReview
from annotations.services import ServiceError


def _pretty(value) -> str:
    return format_html("<pre style='white-space:pre-wrap;max-width:70em'>{}</pre>",
                       json.dumps(value, indent=2, default=str, ensure_ascii=False))


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


# --------------------------------------------------------------------------
# Disputes
# --------------------------------------------------------------------------


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"
    BUCKETS = {"1d": (None, 1), "7d": (1, 7), "30d": (7, 30), "old": (30, None)}

    def lookups(self, request, model_admin):
        return [("1d", "Under a day"), ("7d", "1 to 7 days"), ("30d", "7 to 30 days"), ("old", "Over 30 days")]

    def queryset(self, request, queryset):
        bucket = self.BUCKETS.get(self.value())
        if bucket is None:
            return queryset
        now = timezone.now()
        newer, older = bucket
        if newer is not None:
            queryset = queryset.filter(created_at__lte=now - timedelta(days=newer))
        if older is not None:
            queryset = queryset.filter(created_at__gt=now - timedelta(days=older))
        return queryset


class DisputeActionForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), min_length=disputes.REASON_MIN,
        help_text="Shown to the parties and kept with the dispute.",
    )
    fraud_slash = forms.BooleanField(
        required=False, label="Also slash the expert's stake (fraud)",
        help_text="Lab disputes being overturned only: takes the campaign's slash fraction to the treasury.",
    )


@admin.register(Dispute)
class DisputeAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["id", "kind", "state", "resolution", "campaign", "expert", "lab", "age", "created_at"]
    list_filter = ["state", "kind", "resolution", AgeFilter, "campaign"]
    search_fields = ["subject_key", "statement", "resolution_reason", "expert__user__username", "lab__name",
                     "judgment__task__external_id", "campaign__name"]
    list_select_related = ["campaign", "expert__user", "lab"]
    date_hierarchy = "created_at"
    ordering = ["created_at"]  # the queue: oldest first
    actions = ["uphold", "overturn", "escalate"]
    fields = ["kind", "state", "subject_key", "expert", "lab", "raised_by", "campaign", "slash", "judgment",
              "statement", "evidence_shown", "resolution", "resolution_reason", "resolved_by", "resolved_at",
              "escalated_by", "escalated_at", "escalation_note", "outcome_shown", "created_at"]
    readonly_fields = fields

    @admin.display(description="Age", ordering="created_at")
    def age(self, obj: Dispute) -> str:
        days = (timezone.now() - obj.created_at).days
        return "today" if days == 0 else f"{days} d"

    @admin.display(description="Evidence (frozen when opened)")
    def evidence_shown(self, obj: Dispute):
        return _pretty(obj.evidence)

    @admin.display(description="Outcome")
    def outcome_shown(self, obj: Dispute):
        return _pretty(obj.outcome)

    def _act(self, request, queryset, *, title: str, verb: str, call) -> TemplateResponse | None:
        if "apply" in request.POST:
            form = DisputeActionForm(request.POST)
            if form.is_valid():
                done = 0
                for dispute in queryset.order_by("pk"):
                    try:
                        call(dispute, form.cleaned_data)
                    except ServiceError as exc:
                        self.message_user(request, f"Dispute {dispute.pk}: {exc.message}", messages.ERROR)
                    else:
                        done += 1
                if done:
                    self.message_user(request, f"{verb} {done} dispute(s).", messages.SUCCESS)
                return None
        else:
            form = DisputeActionForm()
        return TemplateResponse(request, "admin/annotations/dispute_action.html", {
            **self.admin_site.each_context(request),
            "title": title, "disputes": queryset, "form": form, "action": request.POST.get("action"),
            "opts": self.model._meta, "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "show_fraud": request.POST.get("action") == "overturn",
        })

    @admin.action(description="Uphold: the disputed decision stands", permissions=["moderate"])
    def uphold(self, request, queryset):
        return self._act(request, queryset, title="Uphold disputes", verb="Upheld", call=lambda d, data: (
            disputes.dispute_resolve(dispute=d, moderator=request.user, resolution=Dispute.Resolution.UPHELD,
                                     reason=data["reason"])))

    @admin.action(description="Overturn: reverse the decision (un-slash, restore, or void and claw back)",
                  permissions=["moderate"])
    def overturn(self, request, queryset):
        return self._act(request, queryset, title="Overturn disputes", verb="Overturned", call=lambda d, data: (
            disputes.dispute_resolve(dispute=d, moderator=request.user, resolution=Dispute.Resolution.OVERTURNED,
                                     reason=data["reason"], fraud_slash=data["fraud_slash"])))

    @admin.action(description="Escalate to a senior moderator", permissions=["moderate"])
    def escalate(self, request, queryset):
        return self._act(request, queryset, title="Escalate disputes", verb="Escalated", call=lambda d, data: (
            disputes.dispute_escalate(dispute=d, moderator=request.user, note=data["reason"])))


# --------------------------------------------------------------------------
# Review queue: the moderator's own ranking
# --------------------------------------------------------------------------


admin.site.unregister(TaskAwaitingReview)


@admin.register(TaskAwaitingReview)
class TaskReviewAdmin(ModeratorAccess, TaskAwaitingReviewAdmin):
    actions = ["adjudicate", "adjudicate_with_ranking"]
    MAX_AT_ONCE = 20

    def has_adjudicate_permission(self, request) -> bool:
        return can_use_admin(request.user)

    @admin.action(description="Adjudicate with my own ranking", permissions=["adjudicate"])
    def adjudicate_with_ranking(self, request, queryset):
        tasks = list(queryset.select_related("campaign").prefetch_related("responses", "judgments")
                     .order_by("pk")[: self.MAX_AT_ONCE])
        errors: dict[int, str] = {}
        if "apply" in request.POST:
            note = request.POST.get("note", "")
            done = 0
            for task in tasks:
                ranks = [request.POST.get(f"rank_{task.pk}_{r.position}", "") for r in task.responses.all()]
                try:
                    adjudication.task_adjudicate_ranking(task=task, moderator=request.user, ranks=ranks, note=note)
                except ServiceError as exc:
                    errors[task.pk] = exc.message
                else:
                    done += 1
            if not errors:
                self.message_user(request, f"Adjudicated {done} task(s) with your ranking.", messages.SUCCESS)
                return None
            if done:
                self.message_user(request, f"Adjudicated {done} task(s); fix the others.", messages.WARNING)
            tasks = [t for t in tasks if t.pk in errors]
        rows = []
        for task in tasks:
            k = task.campaign.responses_per_task
            rows.append({
                "task": task, "error": errors.get(task.pk, ""), "choices": range(1, k + 1),
                "responses": [{"position": r.position, "text": r.text,
                               "chosen": request.POST.get(f"rank_{task.pk}_{r.position}", "")}
                              for r in task.responses.all()],
                "judgments": [j for j in task.judgments.all() if not j.voided],
            })
        return TemplateResponse(request, "admin/annotations/adjudicate.html", {
            **self.admin_site.each_context(request),
            "title": "Adjudicate with your ranking", "rows": rows, "note": request.POST.get("note", ""),
            "opts": self.model._meta, "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "max_at_once": self.MAX_AT_ONCE,
        })


# --------------------------------------------------------------------------
# Judgments: voiding
# --------------------------------------------------------------------------


class VoidForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), min_length=disputes.REASON_MIN,
                             help_text="Shown to the expert, who may dispute it.")


admin.site.unregister(Judgment)


@admin.register(Judgment)
class JudgmentModerationAdmin(ModeratorAccess, JudgmentAdmin):
    actions = ["void"]

    def has_void_permission(self, request) -> bool:
        return can_use_admin(request.user)

    @admin.action(description="Void: earns nothing, leaves consensus (claws back a paid reward)",
                  permissions=["void"])
    def void(self, request, queryset):
        if "apply" in request.POST:
            form = VoidForm(request.POST)
            if form.is_valid():
                done = 0
                for judgment in queryset.order_by("pk"):
                    try:
                        changed = disputes.judgment_void(judgment=judgment, moderator=request.user,
                                                         reason=form.cleaned_data["reason"])
                    except ServiceError as exc:
                        self.message_user(request, f"Judgment {judgment.pk}: {exc.message}", messages.ERROR)
                    else:
                        done += int(changed)
                self.message_user(request, f"Voided {done} judgment(s).", messages.SUCCESS)
                return None
        else:
            form = VoidForm()
        return TemplateResponse(request, "admin/annotations/judgment_void.html", {
            **self.admin_site.each_context(request),
            "title": "Void judgments", "judgments": queryset, "form": form,
            "opts": self.model._meta, "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })


# --------------------------------------------------------------------------
# Audit trail and notifications: read-only
# --------------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["created_at", "actor_label", "action", "object_type", "object_id", "ip"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "action", "object_type", "object_id", "ip", "user_agent", "details"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = ["created_at", "actor", "actor_label", "action", "object_type", "object_id", "ip", "user_agent",
              "details_shown"]
    readonly_fields = fields

    @admin.display(description="Details")
    def details_shown(self, obj: AuditEvent):
        return _pretty(obj.details)


@admin.register(Notification)
class NotificationAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["created_at", "user", "kind", "title", "read_at"]
    list_filter = ["kind"]
    search_fields = ["user__username", "title", "body"]
    list_select_related = ["user"]
    show_full_result_count = False
