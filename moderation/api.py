"""Disputes and notifications API.

Experts dispute their own slashes, failed gold answers and voided
judgments; labs dispute judgments in their campaigns, naming the task by
its ``external_id`` and the rater by the per-campaign handle they see in
quality reports and exports. Nobody learns an identity they did not have:
a lab's view of a dispute names the rater by handle, an expert's view of a
lab's dispute against them names neither the lab member nor the lab.
Another party's dispute is a 404.
"""
from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from annotations import notifications
from annotations.handles import rater_handle
from annotations.models import Expert, Notification
from annotations.permissions import IsExpert, IsLabMember, IsLabMemberOrExpert
from datadao.api import ApiError, Pagination, call_service
from datadao.inputs import Id, Text
from moderation import services as disputes
from moderation.models import Dispute


class DisputeThrottle(UserRateThrottle):
    scope = "dispute"



def disputes_visible_to(user) -> QuerySet[Dispute]:
    """Disputes the user raised, their labs raised, or that concern their own work as an expert."""
    query = Q(raised_by=user) | Q(lab__members=user)
    expert = Expert.objects.filter(user=user).first()
    if expert is not None:
        query |= Q(expert=expert)
    return (Dispute.objects.filter(query).distinct()
            .select_related("judgment__task", "slash", "campaign").order_by("-created_at", "-id"))


class DisputeSubjectOutput(serializers.Serializer):
    campaign = serializers.IntegerField(allow_null=True)
    task_external_id = serializers.CharField(allow_null=True, help_text="The lab's id of the task.")
    rater = serializers.CharField(allow_null=True, help_text="Per-campaign rater handle (labs' view).")
    judgment = serializers.IntegerField(allow_null=True, help_text="The expert's own judgment id (experts' view).")
    slash = serializers.IntegerField(allow_null=True)


class DisputeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Dispute.Kind.choices)
    state = serializers.ChoiceField(choices=Dispute.State.choices)
    role = serializers.ChoiceField(
        choices=["disputant", "respondent"],
        help_text="disputant: you (or your lab) raised it; respondent: a lab disputes your judgment.",
    )
    statement = serializers.CharField(allow_null=True, help_text="The disputant's statement (disputants only).")
    subject = DisputeSubjectOutput()
    resolution = serializers.CharField(allow_blank=True, help_text="upheld, overturned, or empty until resolved.")
    resolution_reason = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    escalated_at = serializers.DateTimeField(allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True)

    @staticmethod
    def of(dispute: Dispute, user) -> dict:
        labs = set(user.labs.values_list("id", flat=True))
        lab_view = dispute.lab_id is not None and (dispute.lab_id in labs or dispute.raised_by_id == user.pk)
        disputant = lab_view or (dispute.raised_by_id == user.pk)
        task = dispute.judgment.task.external_id if dispute.judgment_id else None
        subject = {"campaign": dispute.campaign_id, "task_external_id": task, "rater": None, "judgment": None,
                   "slash": dispute.slash_id}
        if lab_view:
            subject["rater"] = rater_handle(dispute.campaign_id, dispute.expert_id)
        else:
            subject["judgment"] = dispute.judgment_id
        return DisputeOutput({
            "id": dispute.pk, "kind": dispute.kind, "state": dispute.state,
            "role": "disputant" if disputant else "respondent",
            "statement": dispute.statement if disputant else None, "subject": subject,
            "resolution": dispute.resolution, "resolution_reason": dispute.resolution_reason,
            "created_at": dispute.created_at, "escalated_at": dispute.escalated_at,
            "resolved_at": dispute.resolved_at,
        }).data


class DisputeListCreateApi(APIView):
    """GET your disputes (raised by you or your lab, or against your judgments), newest first, paginated.

    POST opens one. Experts: ``kind`` slash (``slash`` id or its ledger
    ``transaction`` id), gold_verdict or voided_judgment (``judgment`` id).
    Labs: ``kind`` judgment_quality with ``campaign``, ``task_external_id``
    and ``rater`` (the handle). Opening the same dispute again returns it
    with 200.
    """

    permission_classes = [IsLabMemberOrExpert]

    def get_throttles(self):
        return [DisputeThrottle()] if self.request.method == "POST" else []

    class OpenInput(serializers.Serializer):
        kind = serializers.ChoiceField(choices=Dispute.Kind.choices)
        statement = Text(min_length=disputes.STATEMENT_MIN, max_length=disputes.STATEMENT_MAX)
        slash = Id(required=False)
        transaction = Id(required=False, help_text="A slash's ledger transaction id (instead of slash).")
        judgment = Id(required=False)
        campaign = Id(required=False)
        task_external_id = Text(required=False, max_length=200)
        rater = Text(required=False, max_length=16, help_text="Per-campaign rater handle.")

    @extend_schema(operation_id="disputes_list", responses={200: inline_serializer("PaginatedDisputes", {
        "count": serializers.IntegerField(), "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True), "results": DisputeOutput(many=True),
    })})
    def get(self, request):
        paginator = Pagination()
        page = paginator.paginate_queryset(disputes_visible_to(request.user), request, view=self)
        return paginator.get_paginated_response([DisputeOutput.of(d, request.user) for d in page])

    @extend_schema(
        operation_id="disputes_create",
        request=OpenInput,
        responses={201: DisputeOutput, 200: DisputeOutput,
                   404: OpenApiResponse(description="No such slash, judgment or campaign of yours."),
                   409: OpenApiResponse(description="Not disputable (given back already, too old, voided).")},
    )
    def post(self, request):
        data = self.OpenInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        if fields["kind"] == Dispute.Kind.JUDGMENT_QUALITY:
            if not IsLabMember().has_permission(request, self):
                raise ApiError([{"field": "kind", "message": "only lab members dispute a judgment's quality."}],
                               status_code=403)
            missing = [name for name in ("campaign", "task_external_id", "rater") if not fields.get(name)]
            if missing:
                raise ApiError([{"field": name, "message": "required for a lab's dispute."} for name in missing])
            dispute, created = call_service(
                disputes.dispute_open_lab, user=request.user, campaign_id=fields["campaign"],
                task_external_id=fields["task_external_id"], rater=fields["rater"], statement=fields["statement"],
            )
        else:
            if not IsExpert().has_permission(request, self):
                raise ApiError([{"field": "kind", "message": "only experts dispute this."}], status_code=403)
            dispute, created = call_service(
                disputes.dispute_open_expert, expert=request.user.expert, user=request.user, kind=fields["kind"],
                statement=fields["statement"], slash_id=fields.get("slash"),
                transaction_id=fields.get("transaction"), judgment_id=fields.get("judgment"),
            )
        return Response(DisputeOutput.of(dispute, request.user),
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class DisputeDetailApi(APIView):
    """GET one of your disputes; anyone else's is a 404."""

    permission_classes = [IsLabMemberOrExpert]

    @extend_schema(responses={200: DisputeOutput, 404: OpenApiResponse(description="No such dispute of yours.")})
    def get(self, request, dispute_id: int):
        dispute = disputes_visible_to(request.user).filter(pk=dispute_id).first()
        if dispute is None:
            raise Http404
        return Response(DisputeOutput.of(dispute, request.user))


class NotificationOutput(serializers.ModelSerializer):
    dispute = serializers.SerializerMethodField(help_text="The dispute it is about, if any.")

    class Meta:
        model = Notification
        fields = ["id", "kind", "title", "body", "url", "dispute", "created_at", "read_at"]

    def get_dispute(self, notification: Notification) -> int | None:
        kind, _, key = notification.subject.partition(":")
        return int(key) if kind == "dispute" and key.isdigit() else None


class NotificationListApi(APIView):
    """GET your notifications, newest first, paginated; ``?unread=true`` for unread ones only."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="me_notifications_list",
        parameters=[OpenApiParameter("unread", bool, description="Only unread notifications.")],
        responses={200: inline_serializer("PaginatedNotifications", {
            "count": serializers.IntegerField(), "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True), "unread": serializers.IntegerField(),
            "results": NotificationOutput(many=True),
        })},
    )
    def get(self, request):
        queryset = Notification.objects.filter(user=request.user).order_by("-created_at", "-id")
        if request.query_params.get("unread", "").lower() in ("1", "true", "yes"):
            queryset = queryset.filter(read_at__isnull=True)
        paginator = Pagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        response = paginator.get_paginated_response(NotificationOutput(page, many=True).data)
        response.data["unread"] = Notification.objects.filter(user=request.user, read_at__isnull=True).count()
        return response


class NotificationReadApi(APIView):
    """POST marks your notifications read: those in ``ids``, or all of them."""

    permission_classes = [IsAuthenticated]

    class ReadInput(serializers.Serializer):
        ids = serializers.ListField(child=Id(), required=False, max_length=500)

    @extend_schema(request=ReadInput, responses={200: inline_serializer(
        "NotificationsMarked", {"marked": serializers.IntegerField()})})
    def post(self, request):
        data = self.ReadInput(data=request.data)
        data.is_valid(raise_exception=True)
        marked = notifications.notifications_mark_read(user=request.user, ids=data.validated_data.get("ids"))
        return Response({"marked": marked})
