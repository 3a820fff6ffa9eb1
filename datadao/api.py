"""API plumbing shared by every app: error shape, JSON parsing, pagination, throttles.

Errors always come back as ``{"errors": [{"field" | "line", "message"}]}``
with a 4xx status, so scripts have one shape to parse; an outage of the
database or the broker is a 503 with ``Retry-After`` (what fails outside
a DRF view is answered in the same shape by :mod:`datadao.errors`).
"""
from __future__ import annotations

import codecs
import math
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, parsers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import PageNumberPagination
from rest_framework.utils import json
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle

from datadao import errors as http_errors


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is too large")
    return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, stricter where DRF lets a value through that nothing downstream can use.

    Refused with 400 like any malformed body: ``NaN`` and ``Infinity`` (as DRF
    does), numbers such as ``1e309`` that overflow to infinity, and nesting too
    deep for Python's parser (``[[[...]]]`` a thousand deep raises
    ``RecursionError``, which DRF would let through as a 500). orjson, in the
    fast lane, refuses the same.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            data = json.load(codecs.getreader(encoding)(stream), parse_constant=json.strict_constant,
                             parse_float=_finite_float)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        # Python's parser stops at the interpreter's recursion limit, which a library may have raised
        # (py-evm sets 12,288): the depth rule must not depend on it.
        if _too_deep(data, MAX_JSON_DEPTH):
            raise exceptions.ParseError("JSON parse error - nested too deeply.")
        return data


# As deep as orjson (the fast lane's parser) goes; no request of the API nests more than a few levels.
MAX_JSON_DEPTH = 1024


def _too_deep(data: Any, limit: int) -> bool:
    """Whether ``data`` nests lists and dicts more than ``limit`` deep (iterative: no recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in value if isinstance(child, (list, dict)))
    return False


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


def _encodable(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Errors that can be written as UTF-8: a message may echo the input (``"\\ud800" is not a valid choice``),
    and a lone surrogate in it would fail the renderer with a 500. It is shown escaped instead."""
    return [
        {key: value.encode("utf-8", "backslashreplace").decode() if isinstance(value, str) else value
         for key, value in error.items()}
        for error in errors
    ]


def call_service(fn, /, **kwargs):
    """Call a service for an API view: a refusal it raises (``ServiceError``: message, field, status)
    becomes an :class:`ApiError` in the API's error shape."""
    try:
        return fn(**kwargs)
    except http_errors.ServiceError as exc:
        raise ApiError(exc.as_errors(), status_code=exc.status) from exc


def exception_handler(exc: Exception, context: dict) -> Response | None:
    # Imported here: rest_framework.views reads the parser and pagination classes of the settings, which
    # live in this module, so importing it while this module loads fails when it is DRF's first import
    # (`manage.py check --deploy` runs DRF's pagination check before anything else imports its views).
    from rest_framework.views import exception_handler as drf_exception_handler
    from rest_framework.views import set_rollback

    if isinstance(exc, ApiError):
        return Response({"errors": _encodable(exc.errors)}, status=exc.status_code)
    if isinstance(exc, http_errors.UNAVAILABLE):
        request = context["request"]
        http_errors.log_unavailable(request, exc)
        set_rollback()
        response = Response(http_errors.unavailable_body(request), status=status.HTTP_503_SERVICE_UNAVAILABLE,
                            headers=http_errors.unavailable_headers())
        response._has_been_logged = True  # once, above; not again with a traceback per request
        return response
    if isinstance(exc, RequestDataTooBig):
        return Response({"errors": [{"message": http_errors.too_big_message()}]},
                        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
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
    response.data = {"errors": _encodable(errors)}
    return response


class DownloadNegotiation(DefaultContentNegotiation):
    """A download may be asked for with any Accept header; errors still come back as JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except exceptions.NotAcceptable:
            return renderers[0], renderers[0].media_type


class AssignmentThrottle(UserRateThrottle):
    scope = "assignment"


class ImportThrottle(UserRateThrottle):
    scope = "import"
