"""API plumbing shared by every app: error shape, pagination, throttles.

Errors always come back as ``{"errors": [{"field" | "line", "message"}]}``
with a 4xx status, so scripts have one shape to parse.
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import exception_handler as drf_exception_handler


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


class ApiError(exceptions.APIException):
    """A service-level refusal that carries a list of structured errors."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, errors: list[dict[str, Any]], status_code: int | None = None):
        self.errors = errors
        if status_code is not None:
            self.status_code = status_code
        super().__init__(detail=errors[0]["message"] if errors else "Invalid request.")


def _flatten(detail: Any, prefix: str = "") -> list[dict[str, Any]]:
    """Turn DRF's nested error detail into a flat list of field errors."""
    if isinstance(detail, dict):
        out: list[dict[str, Any]] = []
        for key, value in detail.items():
            name = key if not prefix else f"{prefix}.{key}"
            if key == "non_field_errors":
                name = prefix
            out.extend(_flatten(value, name))
        return out
    if isinstance(detail, list):
        out = []
        for index, value in enumerate(detail):
            if isinstance(value, (dict, list)):
                out.extend(_flatten(value, f"{prefix}[{index}]" if prefix else str(index)))
            else:
                out.extend(_flatten(value, prefix))
        return out
    item: dict[str, Any] = {"message": str(detail)}
    if prefix:
        item["field"] = prefix
    return [item]


def call_service(fn, /, **kwargs):
    """Call a service for an API view: a refusal it raises (``ServiceError``: message, field, status)
    becomes an :class:`ApiError` in the API's error shape."""
    from annotations.services import ServiceError

    try:
        return fn(**kwargs)
    except ServiceError as exc:
        raise ApiError(exc.as_errors(), status_code=exc.status) from exc


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, ApiError):
        return Response({"errors": exc.errors}, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "message_dict"):
            exc = exceptions.ValidationError(detail=exc.message_dict)
        else:
            exc = exceptions.ValidationError(detail=exc.messages)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
    else:
        detail = getattr(exc, "detail", str(exc))
        errors = _flatten(detail)
    response.data = {"errors": errors}
    return response


class AssignmentThrottle(UserRateThrottle):
    scope = "assignment"


class ImportThrottle(UserRateThrottle):
    scope = "import"
