"""Exports API for labs: request an export, follow its build, download its files.

Members of the owning lab only; another lab's campaign or export is a 404,
never a 403, so its existence does not leak. Rows name raters by their
per-campaign handle only.
"""
from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, HttpResponse
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import selectors as annotation_selectors
from annotations.permissions import IsLabMember
from datadao.api import ApiError, DownloadNegotiation, call_service
from datadao.inputs import Integer, Number, Text
from exports import formats, selectors, services
from exports.models import Export
from exports.tasks import export_bundle_build

logger = logging.getLogger(__name__)


@extend_schema_serializer(component_name="Export")
class ExportOutput(serializers.ModelSerializer):
    campaign = serializers.IntegerField(source="campaign_id")
    progress = serializers.SerializerMethodField()
    rows = serializers.SerializerMethodField()
    sha256 = serializers.SerializerMethodField()
    files = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = [
            "id", "campaign", "format", "file_format", "state", "progress", "rows", "sha256", "params", "stats",
            "consensus_version", "quality_report_version", "error", "files", "created_at", "started_at",
            "finished_at",
        ]

    def get_progress(self, export: Export) -> dict[str, int | str]:
        return {"done": export.progress_done, "total": export.progress_total, "unit": "tasks"}

    def get_rows(self, export: Export) -> dict[str, int]:
        return {"train": export.rows_train, "test": export.rows_test}

    def get_sha256(self, export: Export) -> dict[str, str | None]:
        return {"train": export.sha256_train or None, "test": export.sha256_test or None,
                "card": export.sha256_card or None}

    def get_files(self, export: Export) -> dict[str, str | None] | None:
        if export.state != Export.State.DONE:
            return None
        url = reverse("annotations_api:export-download", kwargs={"export_id": export.pk})
        request = self.context.get("request")
        if request is not None:
            url = request.build_absolute_uri(url)
        return {"train": url, "test": f"{url}?part=test" if export.test_file else None, "card": f"{url}?part=card",
                "bundle": f"{url}?bundle=zip"}

    # Where the server keeps the tokenizer is not the lab's business.
    def to_representation(self, export: Export) -> dict:
        data = super().to_representation(export)
        data["params"] = {k: v for k, v in (data.get("params") or {}).items() if k != "tokenizer_path"}
        return data


class CampaignExportsApi(ListAPIView):
    """GET a campaign's exports (newest first, paginated); POST requests a new one (202, built by a job)."""

    permission_classes = [IsLabMember]
    serializer_class = ExportOutput

    class RequestInput(serializers.Serializer):
        format = serializers.ChoiceField(choices=formats.FORMATS)
        file_format = serializers.ChoiceField(choices=Export.FileFormat.values, default=Export.FileFormat.JSONL)
        min_margin = Number(required=False, allow_null=True, min_value=0.0, max_value=1.0,
                                            help_text="Default: the campaign's consensus_min_margin (consensus "
                                            "formats), none (attributes, judgments).")
        min_raters = Integer(
            required=False, allow_null=True, min_value=1,
            help_text="Fewest judgments a task's consensus must count for its rows to be exported (gold tasks "
            f"exempt). Default: {services.DEFAULT_MIN_RATERS} (consensus formats: one rater's vote is no "
            "consensus), none (attributes, judgments: when given, tasks without a consensus go).")
        min_rater_quality = Number(required=False, allow_null=True, min_value=0.0, max_value=1.0)
        exclude_flagged_raters = serializers.BooleanField(default=True)
        include_gold = serializers.BooleanField(default=False)
        drop_ties = serializers.BooleanField(default=True)
        drop_near_duplicates = serializers.BooleanField(default=True)
        near_duplicates = serializers.ChoiceField(choices=services.NEAR_DUPLICATE_METHODS, default="text")
        test_fraction = Number(default=0.0, min_value=0.0, max_value=services.MAX_TEST_FRACTION)
        tokenizer = Text(required=False, allow_null=True, allow_blank=True, max_length=500)
        max_tokens = Integer(required=False, allow_null=True, min_value=1)
        over_length = serializers.ChoiceField(choices=services.OVER_LENGTH_CHOICES, default="drop")
        use = Text(required=False, allow_null=True, allow_blank=True, max_length=100,
                                    help_text="Intended use, checked against the campaign's allowed_uses.")

    class Accepted(serializers.Serializer):
        id = serializers.IntegerField()
        state = serializers.CharField()
        url = serializers.URLField()

    def get_queryset(self):
        campaign = annotation_selectors.campaign_for_lab_member(
            user=self.request.user, campaign_id=self.kwargs["campaign_id"])
        return selectors.exports_for_campaign(campaign)

    @extend_schema(request=RequestInput, responses={202: Accepted, 400: OpenApiResponse(
        description="Invalid filters, or a use the campaign's licence does not allow.")})
    def post(self, request, campaign_id: int):
        campaign = annotation_selectors.campaign_for_lab_member(user=request.user, campaign_id=campaign_id)
        data = self.RequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        fields["tokenizer"] = fields.get("tokenizer") or None
        fields["use"] = fields.get("use") or None
        export = call_service(services.export_request, campaign=campaign, user=request.user, **fields)
        url = request.build_absolute_uri(reverse("annotations_api:export-detail", kwargs={"export_id": export.pk}))
        # The job may already have run (in-process Celery); report the state as it is now.
        export.refresh_from_db(fields=["state"])
        return Response({"id": export.pk, "state": export.state, "url": url}, status=status.HTTP_202_ACCEPTED)


class ExportDetailApi(APIView):
    """GET an export's state, progress (source tasks read / total), row counts, checksums and error."""

    permission_classes = [IsLabMember]

    @extend_schema(responses=ExportOutput)
    def get(self, request, export_id: int):
        export = selectors.export_for_lab_member(user=request.user, export_id=export_id)
        return Response(ExportOutput(export, context={"request": request}).data)


class ExportDownloadApi(APIView):
    """GET an export's train file (streamed); ``?part=test`` the test file, ``?part=card`` the dataset card,
    ``?bundle=zip`` a zip of the data files and README.md (the card). 409 until the export is done."""

    permission_classes = [IsLabMember]
    content_negotiation_class = DownloadNegotiation

    @extend_schema(
        parameters=[
            OpenApiParameter("part", str, enum=["train", "test", "card"], description="Which file (default train)."),
            OpenApiParameter("bundle", str, enum=["zip"], description="Everything in one zip."),
        ],
        responses={200: OpenApiResponse(description="The file."), 404: OpenApiResponse(description="No such file."),
                   409: OpenApiResponse(description="The export is not done.")},
    )
    def get(self, request, export_id: int):
        export = selectors.export_for_lab_member(user=request.user, export_id=export_id)
        return export_file_response(request, export)


def _bundle_build(export: Export) -> None:
    """Queue the bundle of an export built before bundles came with the build (in-process Celery builds it
    at once); a broker that is away only means the client asks again."""
    try:
        export_bundle_build.delay(export.pk)
    except Exception:  # noqa: BLE001 - logged; the answer is a retryable 409 either way
        logger.warning("export %s: bundle job not queued", export.pk, exc_info=True)


def export_file_response(request, export: Export):
    """An export's file as asked for by ``?part=`` / ``?bundle=`` (also serves a buyer's purchased export)."""
    if export.state != Export.State.DONE:
        raise ApiError([{"message": f"the export is {export.state}; download it when it is done."}],
                       status_code=status.HTTP_409_CONFLICT)
    stem = f"{export.campaign.lab.slug}-campaign-{export.campaign_id}-export-{export.pk}"
    root = Path(settings.DATADAO_EXPORT_ROOT)
    ext = export.file_format
    bundle = request.query_params.get("bundle")
    part = request.query_params.get("part") or "train"
    if bundle:
        if bundle != "zip":
            raise ApiError([{"field": "bundle", "message": "the only bundle is zip."}])
        # The export's job built the zip; the web worker only streams its bytes.
        path = services.bundle_path(export)
        if not path.is_file():
            if not (root / export.train_file).is_file():
                raise ApiError([{"message": "the export's file is missing on the server; request the export again."}],
                               status_code=status.HTTP_410_GONE)
            _bundle_build(export)
        if not path.is_file():
            return Response({"errors": [{"message": "the zip bundle is being prepared; try again in a minute."}]},
                            status=status.HTTP_409_CONFLICT, headers={"Retry-After": "60"})
        return FileResponse(open(path, "rb"), as_attachment=True, filename=f"{stem}.zip",  # noqa: SIM115
                            content_type="application/zip")
    if part == "card":
        response = HttpResponse(export.card.encode("utf-8"), content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{stem}-README.md"'
        response["ETag"] = f'"{export.sha256_card}"'
        return response
    if part not in ("train", "test"):
        raise ApiError([{"field": "part", "message": "choose train, test or card."}])
    relative, digest = (export.train_file, export.sha256_train) if part == "train" else (
        export.test_file, export.sha256_test)
    if not relative:
        raise ApiError([{"field": "part", "message": "this export has no test split."}],
                       status_code=status.HTTP_404_NOT_FOUND)
    path = root / relative
    if not path.is_file():
        raise ApiError([{"message": "the export's file is missing on the server; request the export again."}],
                       status_code=status.HTTP_410_GONE)
    content_type = "application/x-ndjson" if ext == Export.FileFormat.JSONL else "application/vnd.apache.parquet"
    response = FileResponse(open(path, "rb"), as_attachment=True, filename=f"{stem}-{part}.{ext}",  # noqa: SIM115
                            content_type=content_type)
    response["ETag"] = f'"{digest}"'
    return response
