"""Your API tokens: list them, make one (its key is shown once), revoke one.

Any signed-in user manages their own tokens: lab members, experts and
moderators alike; a key acts with all of its owner's roles. Another user's
token is a 404. The services live in :mod:`annotations.tokens_service`.
"""
from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import tokens_service
from annotations.models import ApiToken
from datadao.api import ApiError, Pagination
from datadao.api import call_service as _call
from datadao.inputs import Integer, Text


class ApiTokenOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The key's first 8 characters, to tell tokens apart.")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True, help_text="Null: never expires.")
    last_used_at = serializers.DateTimeField(allow_null=True, help_text="Updated at most once a minute.")
    expired = serializers.BooleanField(help_text="Past its expiry: refused; revoke it to tidy up.")

    @staticmethod
    def of(token: ApiToken) -> dict:
        return ApiTokenOutput({
            "id": token.pk, "name": token.name, "prefix": token.prefix, "created_at": token.created_at,
            "expires_at": token.expires_at, "last_used_at": token.last_used_at,
            "expired": token.expires_at is not None and token.expires_at <= timezone.now(),
        }).data


class ApiTokenCreated(ApiTokenOutput):
    key = serializers.CharField(help_text="The key, shown this once: it is not stored and cannot be shown again.")


class ApiTokenListCreateApi(APIView):
    """GET your API tokens, newest first (never their keys; revoked ones are gone). POST makes one.

    Who: anyone signed in (lab member, expert, moderator), for their own
    account only. POST takes ``name`` and either ``expires_at`` (a future
    time) or ``expires_in_days`` (1 to 3650); neither: the token never
    expires. The answer (201) carries the ``key``, shown this once; send it as
    ``Authorization: Token <key>``. At most 20 active tokens per user.
    """

    permission_classes = [IsAuthenticated]

    class TokenCreateInput(serializers.Serializer):
        name = Text(max_length=tokens_service.NAME_MAX, help_text="What the token is for, e.g. the script's name.")
        expires_at = serializers.DateTimeField(required=False, allow_null=True)
        expires_in_days = Integer(required=False, allow_null=True, min_value=1, max_value=tokens_service.MAX_DAYS)

    @extend_schema(operation_id="me_tokens_list", responses={200: inline_serializer("PaginatedApiTokens", {
        "count": serializers.IntegerField(), "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True), "results": ApiTokenOutput(many=True),
    })})
    def get(self, request):
        paginator = Pagination()
        page = paginator.paginate_queryset(tokens_service.api_tokens_of(request.user), request, view=self)
        return paginator.get_paginated_response([ApiTokenOutput.of(token) for token in page])

    @extend_schema(
        operation_id="me_tokens_create", request=TokenCreateInput,
        responses={201: ApiTokenCreated,
                   400: OpenApiResponse(description="A bad name or expiry, or 20 active tokens already.")},
    )
    def post(self, request):
        data = self.TokenCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        expires_at, days = fields.get("expires_at"), fields.get("expires_in_days")
        if expires_at is not None and days is not None:
            raise ApiError([{"field": "expires_in_days", "message": "give expires_at or expires_in_days, not both."}])
        field = "expires_in_days" if days is not None else "expires_at"
        if days is not None:
            expires_at = _call(tokens_service.expiry_from_days, days=days)
        token, key = _call(tokens_service.api_token_create, user=request.user, name=fields["name"],
                           expires_at=expires_at, field=field)
        return Response({**ApiTokenOutput.of(token), "key": key}, status=status.HTTP_201_CREATED,
                        headers={"Cache-Control": "no-store"})


class ApiTokenRevokeApi(APIView):
    """DELETE revokes one of your API tokens (204): its key is refused from the next request on.

    Who: anyone signed in, for their own tokens; another user's token, or one
    revoked already, is a 404.
    """

    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="me_tokens_revoke", responses={
        204: OpenApiResponse(description="Revoked."), 404: OpenApiResponse(description="No such token of yours.")})
    def delete(self, request, token_id: int):
        _call(tokens_service.api_token_revoke, user=request.user, token_id=token_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
