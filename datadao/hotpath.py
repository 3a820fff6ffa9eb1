"""A fast lane through DRF for the two requests an expert makes per judgment.

An expert rates in a loop: ``POST /assignments/next``, then ``POST
/assignments/{id}/judgment``. DRF's request machinery (request wrapping,
content negotiation, parser selection, serializer fields deep-copied per
request, renderer) cost more CPU than the work itself where measured. A
:class:`HotPathMixin` view answers the common, well-formed request of that
loop directly:

* authentication: an ``Authorization: Token`` header, read with the same
  one-query :class:`~datadao.authentication.ApiTokenAuthentication`;
* the view's own permission classes and throttles, called as DRF calls them;
* a JSON body whose fields already have the plain types the view's serializer
  would accept unchanged (the view's ``fast_input``, built from that serializer
  by :func:`datadao.fast_input.plain_reader`, so the rules are not restated);
* the response written with orjson, in the same shape (datetimes in ISO 8601
  with ``Z``, as DRF's encoder writes them) and with the headers DRF adds
  (``Allow``);
* the token is checked once: a request the lane hands to DRF keeps the outcome.

tests/annotations/test_fast_lane_equivalence.py sends the same random requests
through both lanes and compares status, body and headers.

Anything else (no token, a bad or inactive token, a session login, a missing
permission, a throttled client, an ``Accept`` header that refuses JSON,
malformed or unusual input, JSON nested deeper than orjson reads) goes through the
DRF view unchanged, which words the errors as documented. So the fast lane
never decides a refusal of its own; it only skips work for requests that
would pass. A refusal by the service itself (``ServiceError``) is answered in
the API's error shape, as :func:`datadao.api.call_service` does.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse
from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header

from datadao.authentication import ApiTokenAuthentication, remember_token_check

_DUMPS_OPTIONS = orjson.OPT_UTC_Z
_UTF8 = ("utf-8", "utf8")  # orjson reads UTF-8 only; DRF decodes any other declared charset


def json_response(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(data, option=_DUMPS_OPTIONS), status=status, content_type="application/json")


def token_user(request: HttpRequest):
    """The active user behind a well-formed ``Authorization: Token <key>`` header, or None.

    The outcome (the user, or the refusal) is kept on the request, so when the DRF view takes the request
    after all, its :class:`~datadao.authentication.ApiTokenAuthentication` reuses it: one token check per
    request.
    """
    auth = get_authorization_header(request).split()
    if len(auth) != 2 or auth[0].lower() != b"token":
        return None
    try:
        key = auth[1].decode()
    except UnicodeError:
        return None  # DRF words this refusal
    try:
        user, token = ApiTokenAuthentication().authenticate_credentials(key)
    except exceptions.AuthenticationFailed as exc:
        remember_token_check(request, key, exc)
        return None
    remember_token_check(request, key, (user, token))
    return user


class HotPathMixin:
    """Put first in the bases of an ``APIView`` that defines

    * ``fast_input(data, **kwargs)``: the service's input from the parsed JSON
      body when every field is plainly valid, else None (DRF then validates and
      words the errors);
    * ``fast_run(request, value, **kwargs)``: the response for that input.

    Only POST takes the fast lane. The throttle is consulted last, after the
    input is known to take the fast lane, so no request is counted twice.
    """

    fast_input: Callable[..., Any]
    fast_run: Callable[..., HttpResponse]

    @classmethod
    def as_view(cls, **initkwargs):
        drf_view = super().as_view(**initkwargs)
        permissions = [permission() for permission in cls.permission_classes]
        throttles = cls.throttle_classes
        # The headers DRF adds to every response of the view (Allow; Vary: Accept with several renderers).
        headers = cls(**initkwargs).default_response_headers

        def view(request: HttpRequest, *args, **kwargs):
            if (request.method == "POST" and request.content_type == "application/json"
                    and request.content_params.get("charset", "utf-8").lower() in _UTF8
                    and request.accepts("application/json")):
                value = None
                user = token_user(request)
                if user is not None:
                    request.user = user
                    if all(p.has_permission(request, None) for p in permissions):
                        try:
                            value = cls.fast_input(orjson.loads(request.body), **kwargs)
                        except orjson.JSONDecodeError:
                            value = None
                if value is not None and all(t().allow_request(request, None) for t in throttles):
                    response = cls.fast_run(request, value, **kwargs)
                    for name, header in headers.items():
                        response[name] = header
                    return response
            return drf_view(request, *args, **kwargs)

        # The URL resolver, CSRF and drf-spectacular read the DRF view's
        # attributes (cls, initkwargs, csrf_exempt): the schema is unchanged.
        return update_wrapper(view, drf_view)


def refusal(exc) -> HttpResponse:
    """A service's ``ServiceError`` in the API's error shape, as :func:`datadao.api.call_service` gives it."""
    return json_response({"errors": exc.as_errors()}, status=exc.status)
