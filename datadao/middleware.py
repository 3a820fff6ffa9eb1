"""Request ids, API body limits, and the Content-Security-Policy.

Content-Security-Policy (Django 5.2 has none built in; 6.0 does): every
response gets a policy. HTML gets ``settings.DATADAO_CSP`` with a fresh
nonce per request in place of ``'nonce'``: templates put
``nonce="{{ request.csp_nonce }}"`` on their ``<script>`` and ``<style>``
blocks, so injected markup (which cannot know the nonce) never runs. Other
responses (JSON, files) get ``default-src 'none'``: nothing in them should
ever execute. A view that needs a different policy (the Swagger UI, served
from a CDN) is wrapped in ``csp_override``.
"""
from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from datadao import errors

HEADER = "Content-Security-Policy"
NON_HTML_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


def build_policy(directives: Mapping[str, Sequence[str]], nonce: str) -> str:
    parts = []
    for name, sources in directives.items():
        values = [f"'nonce-{nonce}'" if source == "'nonce'" else source for source in sources]
        parts.append(" ".join([name, *values]))
    return "; ".join(parts)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.csp_nonce = secrets.token_urlsafe(18)
        response = self.get_response(request)
        if HEADER in response:
            return response
        override = getattr(response, "csp_directives", None)
        if override is not None:
            response[HEADER] = build_policy(override, request.csp_nonce)
        elif response.get("Content-Type", "").startswith("text/html"):
            response[HEADER] = build_policy(settings.DATADAO_CSP, request.csp_nonce)
        else:
            response[HEADER] = NON_HTML_POLICY
        return response


def csp_override(view: Callable, **changes: Sequence[str]) -> Callable:
    """Wrap ``view`` so its responses carry the page policy with some directives replaced
    (``script_src=[...]`` replaces ``script-src``)."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        directives = dict(settings.DATADAO_CSP)
        directives.update({name.replace("_", "-"): list(sources) for name, sources in changes.items()})
        response.csp_directives = directives
        return response

    return wrapped


# A proxy's id (nginx's $request_id, a load balancer's trace id) is kept when it looks like one.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


class RequestIdMiddleware:
    """Gives every request an id, sent back in ``X-Request-ID``; a 500 answer and its log line quote it,
    so a user's report leads to the traceback."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


class ApiBodyLimitMiddleware:
    """Answers 413 to an API request whose declared body is over ``DATA_UPLOAD_MAX_MEMORY_SIZE``, before
    anything reads it.

    DRF's parsers read the request stream without Django's size check, so a
    70 MB body (or a ``Content-Length`` of 2 GB) would otherwise be read into
    memory, or wait for bytes that never come. A view that limits its own
    body (the task import, which streams JSONL files to disk) sets
    ``checks_body_size = True``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        if not errors.is_api(request) or getattr(getattr(view_func, "cls", None), "checks_body_size", False):
            return None
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return errors.api_error("the Content-Length header is not a number.", 400)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and length > limit:
            return errors.api_error(errors.too_big_message(length, limit), 413)
        return None
