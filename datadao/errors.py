"""Error answers given outside DRF's views: the URL conf's handler400/403/404/500.

Under ``/api/`` every answer is JSON in the API's error shape
(``{"errors": [{"message": ...}]}``): an unknown route (404), a body over the
limit (413), a database or broker outage (503 with ``Retry-After``, so a
client knows to retry; the app reconnects by itself, no restart needed), and
any other failure (500 quoting the request id, nothing internal). Browser
pages get the site's styled pages instead.

DRF's views answer most refusals themselves (:func:`datadao.api.exception_handler`);
these handlers cover what fails outside them: URL resolution, middleware, the
fast lane (:mod:`datadao.hotpath`) and the page views. Django calls them only
with ``DEBUG`` off; with it on, its debug pages show the traceback instead.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

from django import db
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from kombu.exceptions import OperationalError as BrokerUnavailable

logger = logging.getLogger("datadao.errors")


class ServiceError(Exception):
    """A refusal a person can act on, raised by any app's services; ``field`` names the offending input.

    The API turns it into its error shape (:func:`datadao.api.call_service`), the pages into a form error."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400):
        self.message = message
        self.field = field
        self.status = status
        super().__init__(message)

    def as_errors(self) -> list[dict[str, Any]]:
        out: dict[str, Any] = {"message": self.message}
        if self.field:
            out["field"] = self.field
        return [out]


# Outages worth a retry: the database refusing or dropping connections (a
# deadlock or a cancelled statement is an OperationalError too, and also
# passes on a retry), or the Celery broker refusing a publish.
UNAVAILABLE = (db.OperationalError, db.InterfaceError, BrokerUnavailable)
RETRY_AFTER_SECONDS = 5
UNAVAILABLE_MESSAGE = f"The service is briefly unavailable; retry in {RETRY_AFTER_SECONDS} seconds."
SERVER_ERROR_MESSAGE = "Internal server error."


def is_api(request: HttpRequest) -> bool:
    return (request.path_info + "/").startswith("/api/")


def request_id(request: HttpRequest) -> str | None:
    """The id :class:`datadao.middleware.RequestIdMiddleware` gave the request."""
    return getattr(request, "request_id", None)


def error_body(message: str, **fields) -> dict:
    return {"errors": [{"message": message, **fields}]}


def _json(body: dict, status: int) -> JsonResponse:
    return JsonResponse(body, status=status, json_dumps_params={"separators": (",", ":")})  # compact, as DRF writes


def api_error(message: str, status: int, **fields) -> JsonResponse:
    return _json(error_body(message, **fields), status)


def unavailable_body(request: HttpRequest) -> dict:
    return error_body(UNAVAILABLE_MESSAGE, request_id=request_id(request))


def too_big_message(length: int | None = None, limit: int | None = None) -> str:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE if limit is None else limit
    if length is None:
        return f"the request body is larger than the limit of {limit} bytes."
    return f"the request body is {length} bytes; the limit is {limit} bytes."


def log_unavailable(request: HttpRequest, exc: BaseException) -> None:
    # One line, no traceback: an outage would otherwise log one per request.
    logger.warning("%s %s: service unavailable (%s: %s) [request %s]", request.method, request.path,
                   type(exc).__name__, exc, request_id(request))


def unavailable_headers() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


def _page(request: HttpRequest, template: str, status: int, context: dict | None = None, *,
          with_processors: bool = True) -> HttpResponse:
    """A styled error page. Without processors the page touches nothing that may be what failed (the
    database behind the session and user); the request alone gives the CSP nonce."""
    context = {"request": request, **(context or {})}
    body = loader.render_to_string(template, context, request=request if with_processors else None)
    return HttpResponse(body, status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):
        if is_api(request):
            return api_error(too_big_message(), 413)
        return _page(request, "400.html", 413, {"message": "That upload is too large."}, with_processors=False)
    if is_api(request):
        return api_error("Bad request.", 400)
    return _page(request, "400.html", 400, with_processors=False)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api(request):
        return api_error("You do not have permission to perform this action.", 403)
    return _page(request, "403.html", 403, {"message": str(exception)})


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api(request):
        return api_error("Not found.", 404)
    return _page(request, "404.html", 404)


def server_error(request: HttpRequest) -> HttpResponse:
    """Any exception nothing else handled (Django calls this inside its ``except`` block)."""
    exc = sys.exc_info()[1]
    if isinstance(exc, UNAVAILABLE):
        log_unavailable(request, exc)
        if is_api(request):
            response = _json(unavailable_body(request), 503)
        else:
            response = _page(request, "503.html", 503, with_processors=False)
        for name, value in unavailable_headers().items():
            response[name] = value
    else:
        logger.error("Internal Server Error: %s %s [request %s]", request.method, request.path, request_id(request),
                     exc_info=exc is not None)
        if is_api(request):
            response = api_error(SERVER_ERROR_MESSAGE, 500, request_id=request_id(request))
        else:
            response = _page(request, "500.html", 500, {"request_id": request_id(request)}, with_processors=False)
    response._has_been_logged = True  # logged above, with the request id; Django would log it again without
    return response
