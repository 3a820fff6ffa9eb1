"""Moderator admin: the dispute queue, the review queue's own ranking, voiding, the audit trail.

Every write is an admin action that calls one service; the rows themselves
are read-only here (no add, change or delete), and so are the audit trail
and notifications.
"""
from __future__ import annotations

import copy
import json
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from annotations.admin import JudgmentAdmin
from annotations.admin_access import (
    ModeratorAccess,
    ReadOnly,
    can_use_admin,
    leave_unaudited,
)
from annotations.admin_quality import TaskAwaitingReviewAdmin
from annotations.models import AuditEvent, Judgment, Notification, TaskAwaitingReview
from annotations.services import ServiceError
from moderation import adjudication
from moderation import services as disputes
from moderation.evidence import evidence_sections
from moderation.models import Dispute
from moderation.outcomes import outcome


def _pretty(value) -> str:
    return format_html("<pre style='white-space:pre-wrap;max-width:70em'>{}</pre>",
                       json.dumps(value, indent=2, default=str, ensure_ascii=False))


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
        help_text="Lab disputes being accepted only: takes the campaign's slash fraction to the treasury.",
    )


Kind, Resolution, State = Dispute.Kind, Dispute.Resolution, Dispute.State
DECISIONS = ("uphold", "overturn", "escalate")
ESCALATE_LABEL = "Escalate to a senior moderator"


def decision_label(dispute: Dispute, decision: str) -> str:
    if decision == "escalate":
        return ESCALATE_LABEL
    return outcome(dispute.kind, Resolution.UPHELD if decision == "uphold" else Resolution.OVERTURNED).decision


def outcome_label(dispute: Dispute) -> str:
    if dispute.state != State.RESOLVED:
        return ""
    return outcome(dispute.kind, dispute.resolution).label


def _decided_already(dispute: Dispute, decision: str) -> bool:
    """A repeated submit (a double click, a resubmitted page): the decision it asks for was taken."""
    if decision == "escalate":
        return dispute.state == State.ESCALATED
    wanted = Resolution.UPHELD if decision == "uphold" else Resolution.OVERTURNED
    return dispute.state == State.RESOLVED and dispute.resolution == wanted


def _may_resolve(user, dispute: Dispute) -> bool:
    if dispute.state == State.OPEN:
        return True
    return dispute.state == State.ESCALATED and (user.is_superuser or user.has_perm(
        "moderation.resolve_escalated_dispute"))


class ResolutionFilter(admin.SimpleListFilter):
    title = "resolution"
    parameter_name = "resolution"

    def lookups(self, request, model_admin):
        return [(Resolution.UPHELD, "Upheld (the dispute rejected)"),
                (Resolution.OVERTURNED, "Overturned (the dispute accepted)")]

    def queryset(self, request, queryset):
        return queryset.filter(resolution=self.value()) if self.value() in Resolution.values else queryset


@admin.register(Dispute)
class DisputeAdmin(ReadOnly, admin.ModelAdmin):
    change_form_template = "admin/moderation/dispute/change_form.html"
    list_display = ["id", "kind", "state", "outcome_column", "campaign", "expert", "lab", "age", "created_at"]
    list_filter = ["state", "kind", ResolutionFilter, AgeFilter, "campaign"]
    search_fields = ["subject_key", "statement", "resolution_reason", "expert__user__username", "lab__name",
                     "judgment__task__external_id", "campaign__name"]
    list_select_related = ["campaign", "expert__user", "lab"]
    date_hierarchy = "created_at"
    ordering = ["created_at"]  # the queue: oldest first
    actions = ["uphold", "overturn", "escalate"]
    fieldsets = [
        (None, {"fields": ["kind", "state", "outcome_shown", "subject_key", "expert", "lab", "raised_by", "campaign",
                           "slash", "judgment", "statement", "created_at"]}),
        ("Evidence (frozen when the dispute was opened)", {"fields": ["evidence_shown"]}),
        ("Resolution", {"fields": ["resolution_reason", "resolved_by", "resolved_at", "outcome_details"]}),
        ("Escalation", {"fields": ["escalated_by", "escalated_at", "escalation_note"]}),
    ]
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]

    @admin.display(description="Age", ordering="created_at")
    def age(self, obj: Dispute) -> str:
        days = (timezone.now() - obj.created_at).days
        return "today" if days == 0 else f"{days} d"

    @admin.display(description="Resolution", ordering="resolution")
    def outcome_column(self, obj: Dispute) -> str:
        return outcome_label(obj) or "—"

    @admin.display(description="Resolution")
    def outcome_shown(self, obj: Dispute) -> str:
        return outcome_label(obj) or f"Not decided yet ({obj.get_state_display().lower()})"

    @admin.display(description="Evidence")
    def evidence_shown(self, obj: Dispute):
        return render_to_string("admin/moderation/dispute/evidence.html", {
            "sections": evidence_sections(obj),
            "raw": json.dumps(obj.evidence, indent=2, default=str, ensure_ascii=False),
        })

    @admin.display(description="What resolving did")
    def outcome_details(self, obj: Dispute):
        return format_html("<pre style='white-space:pre-wrap;max-height:16em;overflow:auto'>{}</pre>",
                           json.dumps(obj.outcome, indent=2, default=str, ensure_ascii=False)) if obj.outcome else "—"

    # -- deciding: one service call per dispute, from the changelist's actions or the dispute's own page --

    def _decide(self, request, dispute: Dispute, decision: str, data: dict) -> bool | None:
        """True: decided now; None: decided so already (a repeated submit); False: refused, with a message."""
        if _decided_already(dispute, decision):
            return None
        try:
            if decision == "escalate":
                disputes.dispute_escalate(dispute=dispute, moderator=request.user, note=data["reason"])
            else:
                overturn = decision == "overturn"
                disputes.dispute_resolve(
                    dispute=dispute, moderator=request.user,
                    resolution=Resolution.OVERTURNED if overturn else Resolution.UPHELD, reason=data["reason"],
                    fraud_slash=overturn and bool(data.get("fraud_slash")),
                )
        except ServiceError as exc:
            self.message_user(request, f"Dispute {dispute.pk}: {exc.message}", messages.ERROR)
            return False
        return True

    def _act(self, request, queryset, *, title: str, verb: str) -> TemplateResponse | None:
        decision = request.POST.get("action")
        if "apply" in request.POST:
            form = DisputeActionForm(request.POST)
            if form.is_valid():
                results = [self._decide(request, dispute, decision, form.cleaned_data)
                           for dispute in queryset.order_by("pk")]
                done, repeated = results.count(True), results.count(None)
                if done:
                    self.message_user(request, f"{verb} {done} dispute(s).", messages.SUCCESS)
                if repeated:
                    self.message_user(request, f"{repeated} dispute(s) were decided so already.", messages.INFO)
                if repeated and repeated == len(results):
                    leave_unaudited(request)
                return None
        else:
            form = DisputeActionForm()
        return TemplateResponse(request, "admin/moderation/dispute_action.html", {
            **self.admin_site.each_context(request),
            "title": title, "form": form, "action": decision,
            "rows": [(dispute, decision_label(dispute, decision)) for dispute in queryset.order_by("pk")],
            "opts": self.model._meta, "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "show_fraud": decision == "overturn",
        })

    @admin.action(description="Reject the dispute: the contested decision stands", permissions=["moderate"])
    def uphold(self, request, queryset):
        return self._act(request, queryset, title="Reject disputes", verb="Rejected")

    @admin.action(description="Accept the dispute: reverse the decision (give a slash back, restore a judgment, "
                              "or void a lab-disputed judgment and claw back)", permissions=["moderate"])
    def overturn(self, request, queryset):
        return self._act(request, queryset, title="Accept disputes", verb="Accepted")

    @admin.action(description=ESCALATE_LABEL, permissions=["moderate"])
    def escalate(self, request, queryset):
        return self._act(request, queryset, title="Escalate disputes", verb="Escalated")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        dispute = self.get_object(request, unquote(object_id))
        decision = request.POST.get("action") if request.method == "POST" else None
        form = None
        if dispute is not None and decision in DECISIONS:
            if not self.has_moderate_permission(request):
                raise PermissionDenied
            form = DisputeActionForm(request.POST)
            if form.is_valid():
                done = self._decide(request, dispute, decision, form.cleaned_data)
                if done:
                    self.message_user(request, f"Dispute {dispute.pk}: {decision_label(dispute, decision)}.",
                                      messages.SUCCESS)
                elif done is None:
                    leave_unaudited(request)
                    self.message_user(request, f"Dispute {dispute.pk} was decided so already.", messages.INFO)
                return HttpResponseRedirect(request.path)
            request = copy.copy(request)  # the same page again, as read, with the form's errors on it
            request.method = "GET"
        if dispute is not None:
            extra_context = {**(extra_context or {}), **self._decision_context(request, dispute, form)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _decision_context(self, request, dispute: Dispute, form: DisputeActionForm | None) -> dict:
        may_resolve = self.has_moderate_permission(request) and _may_resolve(request.user, dispute)
        buttons = [(name, decision_label(dispute, name)) for name in ("uphold", "overturn") if may_resolve]
        if dispute.state == State.OPEN and self.has_moderate_permission(request):
            buttons.append(("escalate", ESCALATE_LABEL))
        return {
            "decision_buttons": buttons, "decision_form": form or DisputeActionForm(),
            "decision_fraud": may_resolve and dispute.kind == Kind.JUDGMENT_QUALITY,
            "decision_waits_for_senior": dispute.state == State.ESCALATED and not may_resolve,
            "decision_outcome": outcome_label(dispute),
        }


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
        return TemplateResponse(request, "admin/moderation/adjudicate.html", {
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
        return TemplateResponse(request, "admin/moderation/judgment_void.html", {
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
