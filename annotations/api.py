"""Lab-facing API: campaigns and task import (DESIGN.md, API v1)."""
from __future__ import annotations

from django.conf import settings
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import selectors, services
from annotations.importing import ImportErrors, iter_array, iter_jsonl
from annotations.models import Campaign, Domain, Task, default_min_stake
from annotations.permissions import IsLabMember, IsLabMemberOrExpert
from datadao.api import ApiError, ImportThrottle, JSONParser
from datadao.api import call_service
from datadao.inputs import Integer, Number, Slug, Text, query_param



class CampaignOutput(serializers.ModelSerializer):
    lab = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Campaign
        fields = [
            "id", "lab", "name", "domain", "guidelines", "status",
            "responses_per_task", "strength_scale", "attribute_axes", "rationale_required", "rationale_min_length",
            "overlap", "max_overlap", "gold_rate", "lease_minutes", "reward_per_judgment", "min_stake",
            "licence", "allowed_uses", "consensus_min_margin", "gold_bar", "q_min", "pay_confidence", "gold_weight",
            "stake_beta",
            "slash_fraction", "treasury_fee_bps", "data_for_sale", "data_price", "data_value_weighting",
            "data_value_cap", "task_count", "created_at", "opened_at", "closed_at",
        ]


class ExpertCampaignOutput(serializers.ModelSerializer):
    """What an expert sees of a campaign: the form and the pay, not the lab's settings."""

    class Meta:
        model = Campaign
        fields = [
            "id", "name", "domain", "guidelines", "status", "responses_per_task", "strength_scale",
            "attribute_axes", "rationale_required", "rationale_min_length", "reward_per_judgment", "min_stake",
            "lease_minutes",
        ]


class CampaignDetailOutput(CampaignOutput):
    progress = serializers.SerializerMethodField()

    class Meta(CampaignOutput.Meta):
        fields = CampaignOutput.Meta.fields + ["progress"]

    @extend_schema(exclude=True)
    def get_progress(self, campaign: Campaign) -> dict:
        return selectors.campaign_progress(campaign)


class CampaignListCreateApi(ListAPIView):
    """GET: labs list their own campaigns, experts the open ones they may rate. POST: a lab member creates one."""

    permission_classes = [IsLabMemberOrExpert]

    class CreateInput(serializers.Serializer):
        lab = Slug(required=False, help_text="Lab slug; needed only if you belong to several labs.")
        name = Text(max_length=200)
        domain = serializers.ChoiceField(choices=Domain.choices)
        guidelines = Text(required=False, allow_blank=True, default="", max_length=100_000)
        responses_per_task = serializers.IntegerField(required=False, min_value=2, max_value=8, default=2)
        strength_scale = serializers.BooleanField(required=False, default=True)
        attribute_axes = serializers.ListField(
            child=serializers.RegexField(r"^[a-z][a-z0-9_]{0,39}$"), required=False, default=list, max_length=10,
        )
        rationale_required = serializers.BooleanField(required=False, default=True)
        rationale_min_length = serializers.IntegerField(required=False, min_value=0, max_value=5000, default=20)
        overlap = serializers.IntegerField(required=False, min_value=1, max_value=50, default=3)
        max_overlap = serializers.IntegerField(required=False, min_value=1, max_value=100)
        gold_rate = Number(required=False, min_value=0.0, max_value=0.5, default=0.1)
        lease_minutes = serializers.IntegerField(required=False, min_value=1, max_value=24 * 60, default=20)
        reward_per_judgment = Integer(required=False, min_value=0, default=0)
        min_stake = Integer(
            required=False, min_value=0, default=default_min_stake,
            help_text="Bonded stake an expert needs to rate, base units (default: the platform's minimum bond); "
            "also where the stake bonus is half way.")
        licence = Text(required=False, max_length=64, default="CC-BY-4.0")
        allowed_uses = serializers.ListField(child=Text(max_length=64), required=False, max_length=50)
        consensus_min_margin = Number(required=False, min_value=0.0, max_value=1.0, default=0.6)
        gold_bar = Number(required=False, min_value=0.0, max_value=1.0, default=0.6)
        q_min = Number(required=False, min_value=0.0, max_value=0.99, default=0.5)
        pay_confidence = Number(
            required=False, min_value=0.5, max_value=0.999, default=0.875,
            help_text="Pay keeps only the advantage of quality over q_min that is more than noise at this "
                      "confidence (one-sided).")
        gold_weight = Number(
            required=False, min_value=0.0, max_value=20.0, default=2.0,
            help_text="Agreement comparisons one gold answer counts for in quality.")
        stake_beta = Number(required=False, min_value=0.0, max_value=10.0, default=1.0)
        slash_fraction = Number(required=False, min_value=0.0, max_value=1.0, default=0.1)
        data_for_sale = serializers.BooleanField(
            required=False, default=False, help_text="Other labs may buy exports of the data (licence permitting).")
        data_price = Integer(
            required=False, min_value=0, default=0, help_text="Flat price of one export to another lab, base units.")
        data_value_weighting = serializers.BooleanField(
            required=False, default=False,
            help_text="Multiply each rater's reward weight by their normalised data value.")
        data_value_cap = Number(
            required=False, min_value=1.0, max_value=10.0, default=2.0,
            help_text="Largest data-value multiplier (the average rater gets 1).")

        def validate(self, data):
            if data.get("max_overlap") is not None and data["max_overlap"] < data["overlap"]:
                raise serializers.ValidationError({"max_overlap": "must be at least overlap."})
            return data

    def get_serializer_class(self):
        if self.request.method == "POST":
            return self.CreateInput
        return CampaignOutput

    def get_queryset(self):
        queryset = selectors.campaigns_visible_to(self.request.user)
        status_filter = query_param(self.request, "status", Campaign.Status.values)
        if status_filter:
            queryset = queryset.filter(status=status_filter)
        domain = query_param(self.request, "domain", Domain.values)
        if domain:
            queryset = queryset.filter(domain=domain)
        return queryset.order_by("-created_at", "-id")

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        lab_ids = set(request.user.labs.values_list("id", flat=True))
        data = [
            CampaignOutput(c).data if c.lab_id in lab_ids else ExpertCampaignOutput(c).data for c in page
        ]
        return self.get_paginated_response(data)

    @extend_schema(request=CreateInput, responses={201: CampaignOutput})
    def post(self, request):
        if not IsLabMember().has_permission(request, self):
            raise ApiError([{"message": IsLabMember.message}], status_code=403)
        data = self.CreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        lab_slug = fields.pop("lab", None)
        labs = selectors.labs_for_user(request.user)
        if lab_slug:
            lab = labs.filter(slug=lab_slug).first()
            if lab is None:
                raise ApiError([{"field": "lab", "message": "you are not a member of that lab."}])
        else:
            lab_list = list(labs[:2])
            if len(lab_list) != 1:
                raise ApiError([{"field": "lab", "message": "you belong to several labs; name one by its slug."}])
            lab = lab_list[0]
        campaign = call_service(services.campaign_create, lab=lab, **fields)
        return Response(CampaignOutput(campaign).data, status=status.HTTP_201_CREATED)


class CampaignDetailApi(APIView):
    """GET: detail with progress counts, for lab members of the owning lab and vetted experts for open campaigns
    they may rate. PATCH: a member of the owning lab edits it, as far as its status allows."""

    permission_classes = [IsLabMemberOrExpert]

    class UpdateInput(CampaignListCreateApi.CreateInput):
        """The create fields, all optional, with the same validators (partial: no default applies)."""

        lab = None  # a campaign stays with its lab

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("partial", True)
            super().__init__(*args, **kwargs)

        def validate(self, data):
            if "overlap" in data and data.get("max_overlap") is not None and data["max_overlap"] < data["overlap"]:
                raise serializers.ValidationError({"max_overlap": "must be at least overlap."})
            return data

    @extend_schema(responses=CampaignDetailOutput)
    def get(self, request, campaign_id: int):
        campaign = selectors.campaigns_visible_to(request.user).filter(pk=campaign_id).first()
        if campaign is None:
            raise Http404
        if request.user.labs.filter(pk=campaign.lab_id).exists():
            return Response(CampaignDetailOutput(campaign).data)
        return Response(ExpertCampaignOutput(campaign).data)

    @extend_schema(
        request=UpdateInput,
        responses={
            200: CampaignDetailOutput,
            400: OpenApiResponse(description="Invalid values, with the create endpoint's messages."),
            404: OpenApiResponse(description="No such campaign of your labs."),
            409: OpenApiResponse(
                response=OpenApiTypes.OBJECT,
                description="A field the campaign's status does not let change, named with why; a closed campaign "
                            "cannot be edited.",
                examples=[OpenApiExample("Refused", status_codes=["409"], response_only=True, value={"errors": [
                    {"field": "overlap", "message": "overlap: can only rise once the campaign has opened and "
                                                    "experts may have rated (it is 3)."}]})]),
        },
        examples=[
            OpenApiExample("Reword and raise the overlap of an open campaign",
                           value={"name": "Contract clauses (v2)", "guidelines": "Prefer the enforceable clause.",
                                  "overlap": 4, "max_overlap": 6}, request_only=True),
        ],
    )
    def patch(self, request, campaign_id: int):
        if not IsLabMember().has_permission(request, self):
            raise ApiError([{"message": IsLabMember.message}], status_code=403)
        campaign = selectors.campaign_for_lab_member(user=request.user, campaign_id=campaign_id)
        data = self.UpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = call_service(services.campaign_update, campaign=campaign, actor=request.user,
                                **data.validated_data)
        return Response(CampaignDetailOutput(campaign).data)


class CampaignTransitionApi(APIView):
    """POST open / pause / close. Members of the owning lab only."""

    permission_classes = [IsLabMember]
    action: str = ""

    @extend_schema(request=None, responses=CampaignOutput)
    def post(self, request, campaign_id: int):
        campaign = selectors.campaign_for_lab_member(user=request.user, campaign_id=campaign_id)
        campaign = call_service(services.campaign_transition, campaign=campaign, action=self.action)
        return Response(CampaignOutput(campaign).data)


class NdjsonParser(BaseParser):
    """Raw JSONL body (``curl --data-binary @tasks.jsonl -H 'Content-Type: application/x-ndjson'``)."""

    media_type = "application/x-ndjson"

    def parse(self, stream, media_type=None, parser_context=None):
        return {"_ndjson": stream.read()}


class JsonlParser(NdjsonParser):
    media_type = "application/jsonl"


ImportResultOutput = inline_serializer(
    "ImportResult", fields={
        "created": serializers.IntegerField(), "skipped": serializers.IntegerField(),
        "duplicates": inline_serializer("DuplicatePrompt", fields={
            "line": serializers.IntegerField(), "external_id": serializers.CharField(),
            "duplicate_of": serializers.CharField(help_text="External id of the earlier task with the same prompt."),
            "duplicate_of_line": serializers.IntegerField(
                allow_null=True, help_text="Its line in this upload; null for a task the campaign already had."),
        }, many=True, help_text="Created tasks whose prompt repeats an earlier one (case and whitespace aside); "
                                "reported, not refused. The first 100."),
        "duplicates_total": serializers.IntegerField(),
    },
)


class TaskImportApi(APIView):
    """Import tasks: a JSON array body, a JSONL body, or a JSONL file upload (multipart field ``file``).

    Members of the owning lab only. All rows are validated first; any error
    rejects the whole upload with line-numbered errors and imports nothing.
    """

    permission_classes = [IsLabMember]
    parser_classes = [JSONParser, MultiPartParser, NdjsonParser, JsonlParser]
    throttle_classes = [ImportThrottle]
    checks_body_size = True  # _check_size: files up to DATADAO_MAX_IMPORT_BYTES (datadao.middleware)

    @extend_schema(
        request={
            "application/json": {"type": "array", "items": {"type": "object"}},
            "multipart/form-data": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}},
        },
        responses={201: ImportResultOutput, 400: OpenApiResponse(description="Line-numbered errors; nothing imported."),
                   413: OpenApiResponse(description="Upload too large.")},
    )
    def post(self, request, campaign_id: int):
        campaign = selectors.campaign_for_lab_member(user=request.user, campaign_id=campaign_id)
        self._check_size(request)
        rows = self._rows(request)
        try:
            result = call_service(services.task_import, campaign=campaign, rows=rows)
        except ImportErrors as exc:
            body = {"errors": [e.as_dict() for e in exc.errors]}
            if exc.truncated:
                body["truncated"] = True
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response({
            "created": result.created, "skipped": result.skipped,
            "duplicates": [d.as_dict() for d in result.duplicates], "duplicates_total": result.duplicates_total,
        }, status=status.HTTP_201_CREATED)

    @staticmethod
    def _check_size(request) -> None:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        content_type = request.META.get("CONTENT_TYPE", "")
        if content_type.startswith("multipart/"):
            limit = settings.DATADAO_MAX_IMPORT_BYTES
        else:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if length > limit:
            hint = "" if content_type.startswith("multipart/") else " Upload larger imports as a JSONL file (multipart field 'file')."
            raise ApiError(
                [{"message": f"upload is {length} bytes; the limit is {limit} bytes.{hint}"}],
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )

    @staticmethod
    def _rows(request):
        data = request.data
        if hasattr(data, "getlist") and "file" in request.FILES:
            upload = request.FILES["file"]

            def file_rows():
                upload.seek(0)
                return iter_jsonl(upload)

            return file_rows
        if isinstance(data, dict) and "_ndjson" in data:
            import io

            body = data["_ndjson"]
            return lambda: iter_jsonl(io.BytesIO(body))
        if isinstance(data, list):
            return lambda: iter_array(data)
        raise ApiError(
            [{"message": "send a JSON array of task rows, a JSONL body, or a JSONL file in the multipart field 'file'."}]
        )


class TaskOutput(serializers.ModelSerializer):
    responses = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = ["id", "external_id", "prompt", "metadata", "is_gold", "state", "target_overlap", "judgment_count", "responses", "created_at"]

    @extend_schema(exclude=True)
    def get_responses(self, task: Task) -> list[dict]:
        return [{"position": r.position, "model": r.model_name, "text": r.text} for r in task.responses.all()]


class TaskListApi(ListAPIView):
    """A lab's tasks in one campaign, paginated, filterable by ``state`` and ``external_id``. Owning lab only."""

    permission_classes = [IsLabMember]
    serializer_class = TaskOutput

    def get_queryset(self):
        campaign = selectors.campaign_for_lab_member(user=self.request.user, campaign_id=self.kwargs["campaign_id"])
        queryset = Task.objects.filter(campaign=campaign).prefetch_related("responses").order_by("id")
        state = query_param(self.request, "state", Task.State.values)
        if state:
            queryset = queryset.filter(state=state)
        external_id = query_param(self.request, "external_id")
        if external_id:
            queryset = queryset.filter(external_id=external_id)
        return queryset
