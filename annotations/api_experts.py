"""Expert-facing API: lease the next task, submit a judgment, skip (DESIGN.md, API v1).

Experts see slots (A, B, ...) in their own random order and never model
names, gold status or anyone else's judgments.
"""
from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import assignment as assignment_services
from annotations import judgments as judgment_services
from annotations import leases
from annotations.models import Assignment, Flag, Judgment
from annotations.permissions import IsExpert
from annotations.ranking import ranks_to_ranking, slot_letters
from annotations.services import ServiceError
from datadao.api import AssignmentThrottle
from datadao.api import call_service
from datadao.fast_input import plain_reader
from datadao.hotpath import HotPathMixin, json_response, refusal
from datadao.inputs import Id, Integer, Text


class LeaseOutput(serializers.Serializer):
    """A leased task as the expert sees it."""

    class LeaseTaskOutput(serializers.Serializer):
        class LeaseSlotOutput(serializers.Serializer):
            slot = serializers.CharField()
            text = serializers.CharField()

        id = serializers.IntegerField()
        prompt = serializers.JSONField(help_text="A string, or a list of chat messages {role, content}.")
        responses = LeaseSlotOutput(many=True)

    id = serializers.IntegerField()
    expires_at = serializers.DateTimeField()
    task = LeaseTaskOutput()

    @staticmethod
    def of(assignment: Assignment) -> dict:
        # Built directly (the hot path); the serializer above documents the shape.
        task = leases.leased_task(assignment)
        return {
            "id": assignment.pk,
            "expires_at": assignment.expires_at,
            "task": {"id": assignment.task_id, "prompt": task.prompt, "responses": task.responses},
        }


class AssignmentNextApi(HotPathMixin, APIView):
    """Lease the next task of a campaign. Vetted experts eligible for the campaign only.

    An expert holding an unexpired lease gets the same task back; 204 when
    nothing is left for this expert.
    """

    permission_classes = [IsExpert]
    throttle_classes = [AssignmentThrottle]

    class NextInput(serializers.Serializer):
        campaign = Id()

    @extend_schema(
        request=NextInput,
        responses={200: LeaseOutput, 204: OpenApiResponse(description="Nothing left for you in this campaign."),
                   403: OpenApiResponse(description="Not eligible (domain, stake, suspension, campaign not open).")},
    )
    def post(self, request):
        data = self.NextInput(data=request.data)
        data.is_valid(raise_exception=True)
        lease = call_service(assignment_services.assignment_next_in, expert=request.user.expert,
                             campaign_id=data.validated_data["campaign"])
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(LeaseOutput.of(lease))

    # The fast lane (datadao.hotpath): a token-authenticated expert sending {"campaign": <id>}, read by
    # NextInput's own rules (datadao.fast_input); anything else goes to DRF, which words the refusal.
    read_plain = staticmethod(plain_reader(NextInput))

    @classmethod
    def fast_input(cls, data) -> int | None:
        fields = cls.read_plain(data)
        return None if fields is None else fields["campaign"]

    @staticmethod
    def fast_run(request, campaign_id: int):
        try:
            lease = assignment_services.assignment_next_in(expert=request.user.expert, campaign_id=campaign_id)
        except ServiceError as exc:
            return refusal(exc)
        if lease is None:
            return HttpResponse(status=status.HTTP_204_NO_CONTENT)
        return json_response(LeaseOutput.of(lease))


class JudgmentOutput(serializers.Serializer):
    """The judgment in the expert's own terms (slots as they were shown)."""

    id = serializers.IntegerField()
    assignment = serializers.IntegerField()
    task = serializers.IntegerField()
    ranking = serializers.JSONField()
    strength = serializers.IntegerField(allow_null=True)
    ratings = serializers.DictField(child=serializers.DictField(child=serializers.IntegerField()))
    rationale = serializers.CharField()
    flags = serializers.ListField(child=serializers.CharField())
    time_spent_ms = serializers.IntegerField()
    submitted_at = serializers.DateTimeField()

    @staticmethod
    def of(judgment: Judgment) -> dict:
        order = judgment.display_order
        letters = slot_letters(len(order))
        strength = judgment.strength
        if strength is not None and order[0] != 0:
            strength = -strength
        return {  # built directly (the hot path); the serializer above documents the shape
            "id": judgment.pk,
            "assignment": judgment.assignment_id,
            "task": judgment.task_id,
            "ranking": ranks_to_ranking([judgment.ranks[position] for position in order]),
            "strength": strength,
            "ratings": {
                axis: {letters[slot]: values[position] for slot, position in enumerate(order)}
                for axis, values in judgment.ratings.items()
            },
            "rationale": judgment.rationale,
            "flags": judgment.flags,
            "time_spent_ms": judgment.time_spent_ms,
            "submitted_at": judgment.submitted_at,
        }


class JudgmentSubmitApi(HotPathMixin, APIView):
    """Submit the judgment for one's own lease. Idempotent: a repeat returns the same judgment with 200.

    A lease that expired, was skipped, or a different second judgment is
    refused with 409; someone else's assignment is 404.
    """

    permission_classes = [IsExpert]
    throttle_classes = [AssignmentThrottle]

    class JudgmentSubmitInput(serializers.Serializer):
        ranking = serializers.JSONField(
            help_text='Slots best first; a nested list is a tie group, e.g. ["B", ["A", "C"]].',
        )
        strength = Integer(
            required=False, allow_null=True,
            help_text="K=2 with the strength scale: -3 (A much better) .. 0 (tie) .. +3 (B much better).",
        )
        ratings = serializers.DictField(
            child=serializers.DictField(child=Integer()), required=False,
            help_text='Per attribute, 1..5 per slot: {"correctness": {"A": 4, "B": 2}}.',
        )
        rationale = Text(required=False, allow_blank=True, default="", trim_whitespace=True)
        flags = serializers.ListField(child=serializers.ChoiceField(choices=Flag.choices), required=False)

    @extend_schema(
        request=JudgmentSubmitInput,
        responses={201: JudgmentOutput, 200: JudgmentOutput,
                   404: OpenApiResponse(description="No such assignment of yours."),
                   409: OpenApiResponse(description="Lease expired or skipped, or a different judgment exists.")},
    )
    def post(self, request, assignment_id: int):
        data = self.JudgmentSubmitInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = call_service(
            judgment_services.judgment_submit, expert=request.user.expert, assignment_id=assignment_id,
            data=judgment_services.JudgmentInput(**data.validated_data),
        )
        return Response(
            JudgmentOutput.of(result.judgment), status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )

    # The fast lane (datadao.hotpath): every field already of the plain type JudgmentSubmitInput accepts
    # unchanged, read by the serializer's own rules (datadao.fast_input).
    read_plain = staticmethod(plain_reader(JudgmentSubmitInput))

    @classmethod
    def fast_input(cls, data, assignment_id: int) -> judgment_services.JudgmentInput | None:
        fields = cls.read_plain(data)
        return None if fields is None else judgment_services.JudgmentInput(**fields)

    @staticmethod
    def fast_run(request, value: judgment_services.JudgmentInput, assignment_id: int):
        try:
            result = judgment_services.judgment_submit(
                expert=request.user.expert, assignment_id=assignment_id, data=value)
        except ServiceError as exc:
            return refusal(exc)
        return json_response(JudgmentOutput.of(result.judgment), status=201 if result.created else 200)


class AssignmentSkipApi(APIView):
    """Hand one's own lease back with a reason; the task is not offered to you again."""

    permission_classes = [IsExpert]
    throttle_classes = [AssignmentThrottle]

    class SkipInput(serializers.Serializer):
        reason = Text(max_length=500)

    class SkipOutput(serializers.Serializer):
        id = serializers.IntegerField()
        state = serializers.CharField()
        skip_reason = serializers.CharField()

    @extend_schema(request=SkipInput, responses={200: SkipOutput})
    def post(self, request, assignment_id: int):
        data = self.SkipInput(data=request.data)
        data.is_valid(raise_exception=True)
        skipped = call_service(
            assignment_services.assignment_skip, expert=request.user.expert, assignment_id=assignment_id,
            reason=data.validated_data["reason"],
        )
        return Response(self.SkipOutput(skipped).data)
