"""Lab browser pages: the lab's campaigns, each campaign's quality dashboard, and the lab console.

Session auth; a campaign of another lab is a 404, so its existence does not
leak, and so is every lab page for an account that is no lab member. Raters
appear by handle only. Charts are SVG drawn on the server
(``annotations.quality.charts``).

The console creates a campaign, edits it as far as its status allows, opens,
pauses or closes it, uploads its tasks and exports its data. Each action calls the service its API endpoint
calls and validates input with that endpoint's serializer, so a page shows
the API's own messages: a refused form or upload is rendered in place with
the API's status code (400, 409, 413), a refused state change comes back as
an error message, a success redirects back to the console. Funding and escrow live on the rewards side
(``rewards_pages:campaign-fund``), linked by URL name only.
"""
from __future__ import annotations

import math
from typing import Any

import orjson
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from rest_framework.fields import empty

from annotations import roles, selectors, services
from annotations.api import CampaignDetailApi, CampaignListCreateApi
from annotations.importing import ImportErrors, RowError, iter_array, iter_jsonl
from annotations.models import Campaign, QualityReport
from annotations.quality import charts
from annotations.quality import selectors as quality_selectors
from annotations.services import ServiceError
from datadao.api import ImportThrottle
from exports import selectors as export_selectors
from exports import services as export_services
from exports.api import CampaignExportsApi
from labs.forms import (
    ApiForm,
    CampaignEditForm,
    CampaignForm,
    ExportRequestForm,
    TaskUploadForm,
)


def lab_member(request) -> None:
    """404 for an account that is not a member of a lab (lab pages do not admit to existing)."""
    if not (roles.has_role(request.user, roles.LAB) and request.user.labs.exists()):
        raise Http404("No lab pages for this account.")



@login_required
def lab_campaigns(request):
    """The signed-in member's campaigns across their labs, with progress and latest agreement."""
    lab_member(request)
    campaigns = list(Campaign.objects.filter(lab__members=request.user).select_related("lab").distinct()
                     .order_by("-created_at", "-id"))
    rows = []
    for campaign in campaigns:
        latest = QualityReport.objects.filter(campaign=campaign).order_by("-version").values_list(
            "figures", flat=True).first() or {}
        rows.append({"campaign": campaign, "progress": selectors.campaign_progress(campaign),
                     "alpha": (latest.get("alpha_nominal") or {}).get("value")})
    return render(request, "labs/campaigns.html", {"rows": rows})


@login_required
def campaign_quality(request, campaign_id: int):
    """Agreement over time, margins, per-rater handle table and progress of one of the member's campaigns."""
    lab_member(request)
    campaign = selectors.campaign_for_lab_member(user=request.user, campaign_id=campaign_id)
    quality = quality_selectors.campaign_quality(campaign)
    for rater in quality["raters"]:
        rater["flag_notes"] = [_flag_note(name, rater["evidence"].get(name) or {}) for name in rater["flags"]]
    context = {
        "campaign": campaign,
        "quality": quality,
        "has_judgments": quality["progress"]["judgments"] > 0 or quality["n_judgments"] > 0,
        "alpha_chart": charts.alpha_over_time(quality["alpha_history"]),
        "margin_chart": charts.margin_histogram(quality["margin_histogram"], campaign.consensus_min_margin),
    }
    return render(request, "labs/quality.html", context)


_FLAG_LABELS = {
    "gold": "gold accuracy", "position_bias": "position bias", "speed": "speed",
    "copied_rationale": "copied rationales", "collusion": "collusion", "outside_expertise": "outside expertise",
}


def _flag_note(name: str, evidence: dict) -> dict[str, str]:
    """A flag's label and the statistic behind it, e.g. "z = 6.10 vs 4.0, n = 120"."""
    value, threshold = evidence.get("value"), evidence.get("threshold")
    shown = f"{value:.2f}" if isinstance(value, float) else str(value)
    detail = f"{evidence.get('statistic', '')} = {shown} vs {threshold}, n = {evidence.get('n')}"
    return {"label": _FLAG_LABELS.get(name, name), "detail": detail}


# The lab console.

CONSOLE = "annotations_pages:lab-campaign-console"
EXPORTS_SHOWN = 20
_DONE = {"open": "Opened: experts in the domain can rate it now.", "pause": "Paused: no new tasks are handed out.",
         "close": "Closed. Unspent escrow returns to the lab once the last epoch settles."}


def _defaults(serializer_class) -> dict[str, Any]:
    """The API's defaults, shown as a new form's initial values."""
    initial = {}
    for name, field in serializer_class().fields.items():
        if field.default is empty:
            continue
        value = field.default() if callable(field.default) else field.default
        initial[name] = ", ".join(value) if isinstance(value, list) else value
    return initial


def _messages(detail: Any, prefix: str = "") -> list[str]:
    """A serializer's error detail for one field as lines (an item of a list field is named by its number)."""
    if isinstance(detail, dict):
        return [line for key, value in detail.items()
                for line in _messages(value, f"{prefix}item {int(key) + 1}: " if str(key).isdigit() else prefix)]
    if isinstance(detail, list):
        return [line for value in detail for line in _messages(value, prefix)]
    return [f"{prefix}{detail}"]


def _add_error(form: ApiForm, field: str | None, lines: list[str]) -> None:
    form.add_error(field if field in form.fields else None, lines)


def api_validated(form: ApiForm, serializer_class) -> dict[str, Any] | None:
    """The form's input validated by the API's serializer; None, with its errors on the form, when invalid."""
    form.is_valid()  # the form itself takes anything; it only needs cleaned_data for add_error
    serializer = serializer_class(data=form.api_data())
    if serializer.is_valid():
        return dict(serializer.validated_data)
    for field, detail in serializer.errors.items():
        _add_error(form, None if field == "non_field_errors" else field, _messages(detail))
    return None


def form_refused(form: ApiForm, exc: ServiceError | DjangoValidationError) -> None:
    if isinstance(exc, ServiceError):
        message = exc.message
        if exc.field in form.fields and message.startswith(f"{exc.field}: "):
            message = message[len(exc.field) + 2:]  # the page names the field by its label
        _add_error(form, exc.field, [message])
        return
    errors = exc.message_dict if hasattr(exc, "message_dict") else {NON_FIELD_ERRORS: exc.messages}
    for field, lines in errors.items():
        _add_error(form, None if field == NON_FIELD_ERRORS else field, lines)


def _member_campaign(request, campaign_id: int) -> Campaign:
    lab_member(request)
    return selectors.campaign_for_lab_member(user=request.user, campaign_id=campaign_id)


def _chosen_lab(form: CampaignForm, labs: list, slug: str | None):
    """The lab the campaign is for, chosen as the API chooses it (same messages)."""
    if slug:
        lab = next((lab for lab in labs if lab.slug == slug), None)
        if lab is None:
            _add_error(form, "lab", ["you are not a member of that lab."])
        return lab
    if len(labs) != 1:
        _add_error(form, "lab", ["you belong to several labs; name one by its slug."])
        return None
    return labs[0]


@login_required
def campaign_new(request):
    """Create a campaign through ``services.campaign_create``, as ``POST /api/v1/campaigns/`` does."""
    lab_member(request)
    labs = list(selectors.labs_for_user(request.user))
    if request.method != "POST":
        form = CampaignForm(labs=labs, initial=_defaults(CampaignListCreateApi.CreateInput))
        return render(request, "labs/campaign_new.html", {"form": form})
    form = CampaignForm(request.POST, labs=labs)
    fields = api_validated(form, CampaignListCreateApi.CreateInput)
    if fields is not None:
        lab = _chosen_lab(form, labs, fields.pop("lab", None))
        if lab is not None:
            try:
                campaign = services.campaign_create(lab=lab, **fields)
            except (ServiceError, DjangoValidationError) as exc:
                form_refused(form, exc)
            else:
                messages.success(request, f"Created \u201c{campaign.name}\u201d as a draft. Upload its tasks, fund "
                                          "it, then open it.")
                return redirect(CONSOLE, campaign.pk)
    return render(request, "labs/campaign_new.html", {"form": form}, status=400)


def _edit_form(campaign: Campaign, data=None) -> CampaignEditForm:
    names = services.CAMPAIGN_EDITABLE
    return CampaignEditForm(data, campaign=campaign,
                            locks={name: services.campaign_field_lock(campaign, name) for name in names},
                            limits={name: services.campaign_field_limit(campaign, name) for name in names})


@login_required
def campaign_edit(request, campaign_id: int):
    """Edit a campaign through ``services.campaign_update``, as ``PATCH /api/v1/campaigns/{id}/`` does: the
    fields its status fixes are shown read-only with the reason; a refusal is shown in place (400, 409)."""
    campaign = _member_campaign(request, campaign_id)
    closed = services.campaign_field_lock(campaign, "name") if campaign.status == Campaign.Status.CLOSED else None
    if request.method != "POST":
        return render(request, "labs/campaign_edit.html",
                      {"campaign": campaign, "form": _edit_form(campaign), "closed": closed})
    form = _edit_form(campaign, request.POST)
    fields = api_validated(form, CampaignDetailApi.UpdateInput)
    status = 400
    if fields is not None:
        try:
            campaign = services.campaign_update(campaign=campaign, actor=request.user, **fields)
        except (ServiceError, DjangoValidationError) as exc:
            status = exc.status if isinstance(exc, ServiceError) else 400
            form_refused(form, exc)
        else:
            messages.success(request, f"Saved the settings of \u201c{campaign.name}\u201d.")
            return redirect(CONSOLE, campaign.pk)
    return render(request, "labs/campaign_edit.html",
                  {"campaign": campaign, "form": form, "closed": closed}, status=status)


def _transitions(campaign: Campaign) -> list[str]:
    """The actions the campaign's state machine (``services.campaign_transition``) allows from its status."""
    return services.campaign_transitions_allowed(campaign)


def _console(request, campaign: Campaign, *, status: int = 200, **extra):
    context = {
        "campaign": campaign,
        "progress": selectors.campaign_progress(campaign),
        "actions": _transitions(campaign),
        "upload_form": TaskUploadForm(),
        "export_form": ExportRequestForm(initial=_defaults(CampaignExportsApi.RequestInput)),
        "exports": list(export_selectors.exports_for_campaign(campaign)[:EXPORTS_SHOWN]),
        "max_import_errors": settings.DATADAO_MAX_IMPORT_ERRORS,
        **extra,
    }
    return render(request, "labs/console.html", context, status=status)


@login_required
def campaign_console(request, campaign_id: int):
    """A campaign's status, progress, state buttons, task upload and exports."""
    return _console(request, _member_campaign(request, campaign_id))


@login_required
@require_POST
def campaign_transition(request, campaign_id: int, action: str):
    """Open, pause or close through ``services.campaign_transition``; its refusals (the API's 409s) come back
    as an error message on the console, as the wallet's do."""
    campaign = _member_campaign(request, campaign_id)
    try:
        services.campaign_transition(campaign=campaign, action=action)
    except ServiceError as exc:
        messages.error(request, f"Could not {action} the campaign: {exc.message}")
    else:
        messages.success(request, _DONE[action])
    return redirect(CONSOLE, campaign.pk)


def _line(error: RowError) -> str:
    """An import error as the page lists it, e.g. "line 3: responses: this campaign needs exactly 2 ...";
    an error of the whole upload (line 0) has no line number."""
    where = f"line {error.line}: " if error.line else ""
    return f"{where}{error.field}: {error.message}" if error.field else f"{where}{error.message}"


def _upload_rows(upload):
    """The rows of an uploaded file as ``services.task_import`` reads them: JSONL streamed from disk (as the
    API reads a multipart ``file``), or a JSON array (as the API reads a JSON body)."""
    limit = settings.DATADAO_MAX_IMPORT_BYTES
    if upload.size > limit:
        raise ServiceError(f"upload is {upload.size} bytes; the limit is {limit} bytes.", field="file", status=413)
    upload.seek(0)
    if upload.read(4096).lstrip()[:1] != b"[":
        def file_rows():
            upload.seek(0)
            return iter_jsonl(upload)

        return file_rows
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if upload.size > limit:
        raise ServiceError(f"a JSON array of {upload.size} bytes is over the limit of {limit} bytes; upload "
                           "larger imports as a JSONL file.", field="file", status=413)
    upload.seek(0)
    try:
        rows = orjson.loads(upload.read())
    except orjson.JSONDecodeError as exc:
        raise ServiceError(f"invalid JSON: {exc}", field="file") from None
    if not isinstance(rows, list):
        raise ServiceError("a JSON file holds an array of task rows.", field="file")
    return lambda: iter_array(rows)


@login_required
@require_POST
def campaign_tasks_import(request, campaign_id: int):
    """Import an uploaded file all-or-nothing through ``services.task_import``; errors and counts in place."""
    campaign = _member_campaign(request, campaign_id)
    form = TaskUploadForm(request.POST, request.FILES)
    throttle = ImportThrottle()  # one budget with the API's import: same scope, same user
    if not throttle.allow_request(request, None):
        wait = math.ceil(throttle.wait() or 1)
        response = _console(request, campaign, status=429, upload_form=form,
                            import_errors=[f"too many uploads in a short time; try again in {wait} s."])
        response["Retry-After"] = str(wait)
        return response
    upload = request.FILES.get("file")
    if upload is None:
        return _console(request, campaign, status=400, upload_form=form,
                        import_errors=["choose a JSONL or JSON file of task rows."])
    try:
        result = services.task_import(campaign=campaign, rows=_upload_rows(upload))
    except ImportErrors as exc:
        return _console(request, campaign, status=400, upload_form=form, upload_name=upload.name,
                        import_errors=[_line(e) for e in exc.errors], import_truncated=exc.truncated)
    except ServiceError as exc:
        return _console(request, campaign, status=exc.status, upload_form=form, upload_name=upload.name,
                        import_errors=[exc.message])
    return _console(request, campaign, import_result=result, upload_name=upload.name)


@login_required
@require_POST
def campaign_export_request(request, campaign_id: int):
    """Request an export through ``export_request`` with the API's filters; the job builds it."""
    campaign = _member_campaign(request, campaign_id)
    form = ExportRequestForm(request.POST)
    fields = api_validated(form, CampaignExportsApi.RequestInput)
    if fields is not None:
        fields["tokenizer"] = fields.get("tokenizer") or None
        fields["use"] = fields.get("use") or None
        try:
            export = export_services.export_request(campaign=campaign, user=request.user, **fields)
        except ServiceError as exc:
            form_refused(form, exc)
        else:
            messages.success(request, f"Export {export.pk} requested; it is listed below with its progress.")
            return redirect(CONSOLE, campaign.pk)
    return _console(request, campaign, status=400, export_form=form)
