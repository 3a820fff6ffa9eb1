"""Browser pages for disputes and notifications.

An expert sees what they may dispute (their slashes, voided judgments, and
failed gold answers once gold has cost them) and opens a dispute with a
statement; a lab member disputes a judgment by task id and rater handle.
Both see their disputes and outcomes; everyone signed in has a notifications
page.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotations import notifications, roles
from annotations.models import Campaign, Expert, Judgment, Notification
from annotations.services import ServiceError
from moderation import services as disputes
from moderation.api import DisputeOutput, disputes_visible_to
from moderation.models import Dispute


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@login_required
def disputes_page(request):
    expert = Expert.objects.filter(user=request.user).first()
    is_expert = expert is not None and roles.has_role(request.user, roles.EXPERT)
    is_lab = roles.has_role(request.user, roles.LAB) and request.user.labs.exists()
    if not (is_expert or is_lab):
        raise Http404("No disputes for this account.")
    if request.method == "POST":
        return _open(request, expert if is_expert else None, is_lab)
    context = {
        "is_expert": is_expert, "is_lab": is_lab,
        "disputes": [
            {"dispute": d, "view": DisputeOutput.of(d, request.user)}
            for d in disputes_visible_to(request.user)[:100]
        ],
        "kinds": dict(Dispute.Kind.choices),
    }
    if is_expert:
        open_subjects = set(Dispute.objects.filter(expert=expert).values_list("subject_key", flat=True))
        context.update({
            "slashes": [s for s in disputes.slashes_disputable(expert).select_related("campaign")
                        if f"slash:{s.pk}" not in open_subjects],
            "voided": [j for j in Judgment.objects.filter(expert=expert, voided=True).select_related("task", "campaign")
                       [:50] if f"voided:{j.pk}" not in open_subjects],
            "gold": [j for j in disputes.gold_verdicts_disputable(expert).select_related("task", "campaign")[:50]
                     if f"gold:{j.pk}" not in open_subjects],
        })
    if is_lab:
        context["campaigns"] = Campaign.objects.filter(lab__members=request.user).distinct().order_by("-created_at")
    return render(request, "moderation/disputes.html", context)


def _open(request, expert: Expert | None, is_lab: bool):
    kind = request.POST.get("kind", "")
    statement = request.POST.get("statement", "")
    try:
        if kind == Dispute.Kind.JUDGMENT_QUALITY:
            if not is_lab:
                raise Http404
            dispute, created = disputes.dispute_open_lab(
                user=request.user, campaign_id=_int(request.POST.get("campaign")) or 0,
                task_external_id=request.POST.get("task_external_id", "").strip(),
                rater=request.POST.get("rater", "").strip(), statement=statement,
            )
        else:
            if expert is None:
                raise Http404
            dispute, created = disputes.dispute_open_expert(
                expert=expert, user=request.user, kind=kind, statement=statement,
                slash_id=_int(request.POST.get("slash")), judgment_id=_int(request.POST.get("judgment")),
            )
    except ServiceError as exc:
        messages.error(request, f"Could not open the dispute: {exc.message}")
    else:
        if created:
            messages.success(request, f"Dispute {dispute.pk} opened; a moderator will decide it and you will be notified.")
        else:
            messages.info(request, f"You disputed this already (dispute {dispute.pk}).")
    return redirect("annotations_pages:disputes")


@login_required
def notifications_page(request):
    queryset = Notification.objects.filter(user=request.user).order_by("-created_at", "-id")
    page = Paginator(queryset, 25).get_page(request.GET.get("page"))
    unread = Notification.objects.filter(user=request.user, read_at__isnull=True).count()
    return render(request, "moderation/notifications.html", {"page": page, "unread": unread})


@login_required
@require_POST
def notifications_read(request):
    marked = notifications.notifications_mark_read(user=request.user)
    if marked:
        messages.info(request, f"Marked {marked} notification(s) read.")
    return redirect("annotations_pages:notifications")
