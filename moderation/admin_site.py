"""The admin site: moderators only, and every change it makes goes to the audit trail.

Installed as the default admin site (``datadao.apps.ModeratorAdminConfig``
in ``INSTALLED_APPS``), so every ``admin.site.register`` lands here. Its index
opens with the moderator's work queues (``work_queues``, templates/admin/index.html).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import wraps

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse

from annotations.admin_access import CONFIRMED, can_use_admin
from annotations.audit import audit_admin_request
from annotations.models import Expert, Task
from moderation.models import Dispute
from rewards.models import EpochReward


def _changed_nothing(request: HttpRequest, response: HttpResponse) -> bool:
    """An action's first step only renders its form (the confirmed step is recorded), and a repeated submit
    of a decision already taken changes nothing: one decision, one audit row."""
    if getattr(request, "datadao_unchanged", False):
        return True
    return (isinstance(response, TemplateResponse) and response.status_code == 200 and "action" in request.POST
            and not any(flag in request.POST for flag in CONFIRMED))


@dataclass(frozen=True)
class WorkQueue:
    title: str
    count: int
    url: str
    help: str


def _changelist(model: str, query: str = "") -> str:
    try:
        return reverse(f"admin:{model}_changelist") + query
    except NoReverseMatch:  # that model is not in admin (a trimmed settings module)
        return ""


def work_queues() -> list[WorkQueue]:
    """What waits for a moderator, counted in four queries."""
    expert_model, dispute_model, task_model, epoch_reward = Expert, Dispute, Task, EpochReward
    open_state, escalated = dispute_model.State.OPEN, dispute_model.State.ESCALATED
    disputes = dispute_model.objects.filter(state__in=[open_state, escalated]).aggregate(
        open=Count("pk", filter=Q(state=open_state)), escalated=Count("pk", filter=Q(state=escalated)))
    return [
        WorkQueue("Experts awaiting vetting",
                  expert_model.objects.filter(state=expert_model.State.APPLIED).count(),
                  _changelist("annotations_expert", f"?state__exact={expert_model.State.APPLIED}"),
                  "Applications to approve or reject."),
        WorkQueue("Open disputes", disputes["open"],
                  _changelist("moderation_dispute", f"?state__exact={open_state}"),
                  "Oldest first: uphold, overturn or escalate."),
        WorkQueue("Escalated disputes", disputes["escalated"],
                  _changelist("moderation_dispute", f"?state__exact={escalated}"),
                  "Decided by a senior moderator."),
        WorkQueue("Payouts on hold", epoch_reward.objects.filter(hold_state="held").count(),
                  _changelist("rewards_heldpayout"),
                  "Rewards a quality flag stopped: release or forfeit."),
        WorkQueue("Tasks awaiting review", task_model.objects.filter(state=task_model.State.REVIEW).count(),
                  _changelist("annotations_taskawaitingreview"),
                  "Raters disagreed at full overlap: adjudicate."),
    ]


class ModeratorAdminSite(admin.AdminSite):
    site_header = "DataDAO Feedback moderation"
    site_title = "DataDAO moderation"
    index_title = "Moderation"

    def has_permission(self, request) -> bool:
        return can_use_admin(request.user)

    def index(self, request, extra_context=None):
        return super().index(request, {"work_queues": work_queues(), **(extra_context or {})})

    def admin_view(self, view, cacheable=False):
        wrapped = super().admin_view(view, cacheable)

        @wraps(view)
        def audited(request, *args, **kwargs):
            # Signed in but not a moderator: a plain 403, not the login page again.
            if (request.user.is_authenticated and not self.has_permission(request)
                    and request.path != reverse("admin:logout", current_app=self.name)):
                raise PermissionDenied
            response = wrapped(request, *args, **kwargs)
            if (request.method not in ("GET", "HEAD", "OPTIONS") and can_use_admin(request.user)
                    and not _changed_nothing(request, response)):
                audit_admin_request(request, response, kwargs)
            return response

        return audited
