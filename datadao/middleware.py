"""Content-Security-Policy (Django 5.2 has none built in; 6.0 does).

Every response gets a policy. HTML gets ``settings.DATADAO_CSP`` with a
fresh nonce per request in place of ``'nonce'``: templates put
``nonce="{{ request.csp_nonce }}"`` on their ``<script>`` and ``<style>``
blocks, so injected markup (which cannot know the nonce) never runs. Other
responses (JSON, files) get ``default-src 'none'``: nothing in them should
ever execute. A view that needs a different policy (the Swagger UI, served
from a CDN) is wrapped in ``csp_override``.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse

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
