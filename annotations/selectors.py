"""Reads on the annotation side, scoped to who is asking."""
from __future__ import annotations

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import Http404

from annotations import roles
from annotations.models import Campaign, Expert, ExpertDomain, Lab, Task


def labs_for_user(user) -> QuerySet[Lab]:
    return Lab.objects.filter(members=user)


def campaigns_visible_to(user) -> QuerySet[Campaign]:
    """Labs see their own campaigns; vetted (not suspended) experts see open campaigns in their vetted domains."""
    if not user.is_authenticated:
        return Campaign.objects.none()
    query = Q(lab__members=user)
    if roles.has_role(user, roles.EXPERT) and hasattr(user, "expert") and user.expert.state == Expert.State.VETTED:
        domains = ExpertDomain.objects.filter(expert=user.expert, state=ExpertDomain.State.VETTED).values("domain")
        query |= Q(status=Campaign.Status.OPEN, domain__in=domains)
    return Campaign.objects.filter(query).select_related("lab").distinct()


def campaign_for_lab_member(*, user, campaign_id: int, moderators: bool = False) -> Campaign:
    """The campaign if ``user`` is a member of its lab (or, with ``moderators``, a moderator); 404 otherwise,
    so existence never leaks."""
    queryset = Campaign.objects.filter(pk=campaign_id)
    if not (moderators and roles.is_moderator(user)):
        queryset = queryset.filter(lab__members=user)
    campaign = queryset.select_related("lab").first()
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


def campaign_progress(campaign: Campaign) -> dict[str, int | float]:
    """Counts a lab watches: tasks, gold, judgments, complete, under review."""
    stats = Task.objects.filter(campaign=campaign).aggregate(
        tasks=Count("id", filter=Q(is_gold=False)),
        gold_tasks=Count("id", filter=Q(is_gold=True)),
        complete=Count("id", filter=Q(is_gold=False, state=Task.State.COMPLETE)),
        in_review=Count("id", filter=Q(is_gold=False, state=Task.State.REVIEW)),
        judgments=Coalesce(Sum("judgment_count", filter=Q(is_gold=False)), 0),
    )
    wanted = stats["tasks"] * campaign.overlap
    stats["judgments_wanted"] = wanted
    stats["completion"] = round(min(1.0, stats["judgments"] / wanted), 4) if wanted else 0.0
    return stats
