"""Data value API: per-handle KNN-Shapley values for the owning lab (and moderators); an expert's own values.

Labs see raters only by handle; no serializer here has a field for an
expert's id, user name or e-mail. Another lab's campaign is a 404.
"""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import selectors as annotation_selectors
from annotations.api_quality import IsLabMemberOrModerator
from annotations.models import CampaignDataValueReport, DataValue
from annotations.permissions import IsExpert


class DataValueRowOutput(serializers.Serializer):
    handle = serializers.CharField(help_text="Per-campaign rater handle.")
    total = serializers.FloatField(help_text="Summed KNN-Shapley value of the rater's pair judgments.")
    mean = serializers.FloatField(help_text="Value per pair judgment.")
    n_pairs = serializers.IntegerField()
    computed_at = serializers.DateTimeField()


class CampaignDataValueApi(APIView):
    """GET a campaign's data value per rater handle, probe accuracy and run state."""

    permission_classes = [IsLabMemberOrModerator]

    @extend_schema_serializer(component_name="CampaignDataValue")
    class Output(serializers.Serializer):
        campaign = serializers.IntegerField()
        state = serializers.CharField(help_text="pending, embedded, done or failed.")
        error = serializers.CharField(allow_blank=True)
        computed_at = serializers.DateTimeField(allow_null=True)
        probe_accuracy = serializers.FloatField(allow_null=True, help_text="Bradley-Terry probe held-out accuracy.")
        probe_n_test = serializers.IntegerField()
        n_train_pairs = serializers.IntegerField()
        n_val_pairs = serializers.IntegerField()
        k = serializers.IntegerField()
        near_duplicate_tasks = serializers.IntegerField(help_text="Tasks whose responses are near-duplicates.")
        raters = DataValueRowOutput(many=True)

    @extend_schema(responses={200: Output})
    def get(self, request, campaign_id: int):
        campaign = annotation_selectors.campaign_for_lab_member(
            user=request.user, campaign_id=campaign_id, moderators=True)
        report = CampaignDataValueReport.objects.filter(campaign=campaign).first()
        rows = DataValue.objects.filter(campaign=campaign).order_by("-total", "handle")
        body = {
            "campaign": campaign.pk,
            "state": report.state if report else CampaignDataValueReport.State.PENDING,
            "error": report.error if report else "",
            "computed_at": report.computed_at if report else None,
            "probe_accuracy": report.probe_accuracy if report else None,
            "probe_n_test": report.probe_n_test if report else 0,
            "n_train_pairs": report.n_train_pairs if report else 0,
            "n_val_pairs": report.n_val_pairs if report else 0,
            "k": report.k if report else 0,
            "near_duplicate_tasks": len(report.near_duplicate_task_ids) if report else 0,
            "raters": rows,
        }
        return Response(self.Output(body).data)


class MyDataValueApi(APIView):
    """GET your own data value in each campaign you rated."""

    permission_classes = [IsExpert]

    class Output(DataValueRowOutput):
        campaign = serializers.IntegerField(source="campaign_id")
        campaign_name = serializers.CharField(source="campaign.name")

    @extend_schema(operation_id="me_data_value", responses={200: Output(many=True)})
    def get(self, request):
        rows = (DataValue.objects.filter(expert=request.user.expert).select_related("campaign")
                .order_by("-computed_at", "-id"))
        return Response(self.Output(rows, many=True).data)
