"""Lab browser pages: the lab's campaigns and each campaign's quality dashboard.

Session auth; a campaign of another lab is a 404, so its existence does not
leak. Raters appear by handle only. Charts are SVG drawn on the server
(``annotations.quality.charts``).
"""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from annotations import roles, selectors
from annotations.models import Campaign, QualityReport
from annotations.quality import charts
from annotations.quality import selectors as quality_selectors


def _lab_member(request) -> None:
    if not (roles.has_role(request.user, roles.LAB) and request.user.labs.exists()):
        raise Http404("No lab pages for this account.")


@login_required
def lab_campaigns(request):
    """The signed-in member's campaigns across their labs, with progress and latest agreement."""
    _lab_member(request)
    campaigns = list(Campaign.objects.filter(lab__members=request.user).select_related("lab").distinct()
                     .order_by("-created_at", "-id"))
    rows = []
    for campaign in campaigns:
        latest = QualityReport.objects.filter(campaign=campaign).order_by("-version").values_list(
            "figures", flat=True).first() or {}
        rows.append({"campaign": campaign, "progress": selectors.campaign_progress(campaign),
                     "alpha": (latest.get("alpha_nominal") or {}).get("value")})
    return render(request, "annotations/lab_campaigns.html", {"rows": rows})


@login_required
def campaign_quality(request, campaign_id: int):
    """Agreement over time, margins, per-rater handle table and progress of one of the member's campaigns."""
    _lab_member(request)
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
    return render(request, "annotations/lab_quality.html", context)


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
