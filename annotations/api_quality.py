"""Quality API for labs (and moderators): agreement, consensus, rater handles, recompute.

Labs see raters only by their per-campaign handle; no serializer here has a
field for an expert's id, user name or e-mail. A campaign of another lab is
a 404, never a 403, so its existence does not leak.
"""
from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import roles
from annotations import selectors as annotation_selectors
from annotations.models import Task
from annotations.permissions import IsLabMember
from annotations.quality import selectors
from datadao.api import Pagination
from datadao.inputs import query_param


class IsLabMemberOrModerator(BasePermission):
    message = "Only lab members and moderators may do this."

    def has_permission(self, request, view) -> bool:
        return IsLabMember().has_permission(request, view) or roles.is_moderator(request.user)


class IntervalOutput(serializers.Serializer):
    value = serializers.FloatField(allow_null=True, help_text="Point estimate.")
    low = serializers.FloatField(allow_null=True, help_text="Lower end of the 95% bootstrap interval (over tasks).")
    high = serializers.FloatField(allow_null=True, help_text="Upper end of the 95% bootstrap interval.")


class KappaOutput(serializers.Serializer):
    n_pairs = serializers.IntegerField(help_text="Pairs of raters sharing at least min_shared pair judgments.")
    min_shared = serializers.IntegerField()
    median = serializers.FloatField(allow_null=True)
    p25 = serializers.FloatField(allow_null=True)
    p75 = serializers.FloatField(allow_null=True)
    share_below_zero = serializers.FloatField(allow_null=True, help_text="Pairs agreeing less than chance.")


class KendallOutput(serializers.Serializer):
    mean = serializers.FloatField(allow_null=True)
    median = serializers.FloatField(allow_null=True)
    n_tasks = serializers.IntegerField()
    sampled = serializers.BooleanField(help_text="True when W was computed on a random sample of tasks.")


class ConsensusSummaryOutput(serializers.Serializer):
    tasks = serializers.IntegerField(help_text="Tasks with a consensus.")
    settled = serializers.IntegerField(help_text="Tasks whose margin clears min_margin.")
    min_margin = serializers.FloatField()
    awaiting_raters = serializers.IntegerField(help_text="Tasks reopened for another rater.")
    in_review = serializers.IntegerField(help_text="Tasks at maximum overlap waiting for a moderator.")
    adjudicated = serializers.IntegerField()


class HistogramBinOutput(serializers.Serializer):
    low = serializers.FloatField()
    high = serializers.FloatField()
    count = serializers.IntegerField()


class AlphaPointOutput(serializers.Serializer):
    version = serializers.IntegerField()
    computed_at = serializers.DateTimeField()
    n_judgments = serializers.IntegerField()
    nominal = IntervalOutput()
    ordinal = IntervalOutput()


class RaterOutput(serializers.Serializer):
    handle = serializers.CharField(help_text="Pseudonymous per-campaign rater handle.")
    n_judgments = serializers.IntegerField()
    agreement = serializers.FloatField(allow_null=True, help_text="Agreement with the other raters' majority.")
    n_compared = serializers.IntegerField()
    reliability = serializers.FloatField(allow_null=True, help_text="Dawid-Skene estimated accuracy.")
    gold_accuracy = serializers.FloatField(allow_null=True)
    gold_lower_bound = serializers.FloatField(allow_null=True, help_text="Wilson 95% lower bound.")
    gold_n = serializers.IntegerField()
    median_seconds = serializers.FloatField(allow_null=True, help_text="Median seconds per judgment.")
    flags = serializers.ListField(child=serializers.CharField(), help_text="Signals raised.")
    evidence = serializers.DictField(help_text="Per signal: statistic, value, threshold, n, flagged.")


class ProgressOutput(serializers.Serializer):
    tasks = serializers.IntegerField()
    gold_tasks = serializers.IntegerField()
    complete = serializers.IntegerField()
    in_review = serializers.IntegerField()
    judgments = serializers.IntegerField()
    judgments_wanted = serializers.IntegerField()
    completion = serializers.FloatField()


class CampaignQualityApi(APIView):
    """GET a campaign's quality: alpha with intervals, agreement, consensus margins, rater handles, progress."""

    permission_classes = [IsLabMemberOrModerator]

    @extend_schema_serializer(component_name="CampaignQuality")
    class Output(serializers.Serializer):
        campaign = serializers.IntegerField()
        computed_at = serializers.DateTimeField(allow_null=True, help_text="When the latest report was computed.")
        version = serializers.IntegerField(allow_null=True)
        n_judgments = serializers.IntegerField()
        n_tasks = serializers.IntegerField()
        n_raters = serializers.IntegerField()
        alpha_nominal = IntervalOutput(allow_null=True, help_text="Krippendorff's alpha on pair direction.")
        alpha_ordinal = IntervalOutput(allow_null=True, help_text="Krippendorff's alpha on the signed strength.")
        raw_agreement = serializers.FloatField(allow_null=True, help_text="Share of rater pairs giving one direction.")
        kappa = KappaOutput(allow_null=True)
        kendall_w = KendallOutput(allow_null=True, help_text="K > 2 only.")
        consensus = ConsensusSummaryOutput()
        margin_histogram = HistogramBinOutput(many=True)
        alpha_history = AlphaPointOutput(many=True)
        raters = RaterOutput(many=True)
        signals = serializers.DictField(child=serializers.IntegerField(), help_text="Raters flagged per signal.")
        progress = ProgressOutput()

    @extend_schema(responses={200: Output})
    def get(self, request, campaign_id: int):
        campaign = annotation_selectors.campaign_for_lab_member(
            user=request.user, campaign_id=campaign_id, moderators=True)
        return Response(self.Output(selectors.campaign_quality(campaign)).data)


class CampaignConsensusApi(APIView):
    """GET the per-task consensus of a campaign, weakest margin first, paginated."""

    permission_classes = [IsLabMemberOrModerator]

    class Query(serializers.Serializer):
        # FloatField refuses NaN and infinities, which would compare false with every margin.
        max_margin = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)

    @extend_schema_serializer(component_name="TaskConsensus")
    class Output(serializers.Serializer):
        task = serializers.IntegerField(source="task_id")
        external_id = serializers.CharField(source="task.external_id")
        state = serializers.CharField(source="task.state")
        ranks = serializers.ListField(child=serializers.IntegerField(), help_text="Rank per upload position, 1 = best.")
        margin = serializers.FloatField(help_text="Smallest pair margin |2p - 1| of the weighted vote.")
        pairs = serializers.ListField(child=serializers.DictField())
        n_raters = serializers.IntegerField()
        method = serializers.CharField()
        computed_at = serializers.DateTimeField()

    @extend_schema(
        parameters=[
            OpenApiParameter("max_margin", float, description="Only tasks at or below this margin (0..1)."),
            OpenApiParameter("state", str, enum=Task.State.values, description="Only tasks in this state."),
        ],
        responses={200: inline_serializer("PaginatedTaskConsensus", {
            "count": serializers.IntegerField(), "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True), "results": Output(many=True),
        })},
    )
    def get(self, request, campaign_id: int):
        campaign = annotation_selectors.campaign_for_lab_member(
            user=request.user, campaign_id=campaign_id, moderators=True)
        query = self.Query(data={"max_margin": request.query_params.get("max_margin") or None})
        query.is_valid(raise_exception=True)
        max_margin = query.validated_data.get("max_margin")
        state = query_param(request, "state", Task.State.values)
        paginator = Pagination()
        page = paginator.paginate_queryset(
            selectors.campaign_consensus(campaign, max_margin=max_margin, state=state), request, view=self,
        )
        return paginator.get_paginated_response(self.Output(page, many=True).data)


class CampaignQualityRecomputeApi(APIView):
    """POST: queue the campaign's quality job now (it also runs every ten minutes); answers 202."""

    permission_classes = [IsLabMember]

    @extend_schema(request=None, responses={202: inline_serializer(
        "QualityRecomputeQueued", {"queued": serializers.BooleanField(), "campaign": serializers.IntegerField()},
    )})
    def post(self, request, campaign_id: int):
        from annotations.tasks import campaign_quality_compute

        campaign = annotation_selectors.campaign_for_lab_member(user=request.user, campaign_id=campaign_id)
        transaction.on_commit(lambda: campaign_quality_compute.delay(campaign.pk))
        return Response({"queued": True, "campaign": campaign.pk}, status=status.HTTP_202_ACCEPTED)
