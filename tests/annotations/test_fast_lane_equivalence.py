"""The experts' fast lane (datadao.hotpath) and the DRF view it stands in front of answer every request alike.

The same random request (a JSON body around the valid shape, random Accept, Content-Type, charset and
Authorization headers) goes once through the URL's view (the fast lane, which hands anything it does
not take to DRF) and once through the DRF view itself, each from the same state: every call runs in a
savepoint that is rolled back, with the same clock, the same random draw and an empty throttle cache.
Status, body and the headers a client reads must be the same.
"""
import json
import random
import re
from datetime import datetime, timezone as dt_timezone

import pytest
from django.core.cache import cache
from django.db import transaction
from django.test import RequestFactory
from django.urls import resolve
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from annotations import assignment as assignment_services
from tests import factories

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 3, 9, 30, 15, 123456, tzinfo=dt_timezone.utc)
HEADERS = ("Content-Type", "Allow", "Retry-After", "WWW-Authenticate", "Vary", "Content-Length")

ACCEPTS = st.sampled_from([
    None, "application/json", "*/*", "application/json", "application/json; charset=utf-8", "text/html", "application/xml",
    "text/html, application/json;q=0.5", "application/*", "application/json; indent=2", "text/plain", "",
])
CONTENT_TYPES = st.sampled_from([
    "application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8",
    "application/json;charset=utf8", "application/json; charset=latin-1", "application/json; charset=utf-16",
    "application/json; charset=nonsense", "text/plain", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz", "application/vnd.api+json", "",
])
AUTHORIZATIONS = st.sampled_from(["valid", "valid", "valid", "lower", "wrong", "bare", "extra", "bearer", None])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70), st.floats(allow_nan=False),
    st.text(max_size=30),
)
TEXT = st.one_of(st.text(max_size=60), st.just("B names the contraindication; A misses it."),
                 st.just("nul \x00 inside, long enough to count"), st.just("  padded rationale that is long enough  "))


def _campaign_values(campaign_id):
    return st.one_of(st.just(campaign_id), st.just(campaign_id), st.just(campaign_id), st.just(str(campaign_id)), st.just(float(campaign_id)),
                     st.just(campaign_id + 10_000), SCALARS)


def _judgment_bodies():
    slots = st.sampled_from(["A", "B", "C", "a", ""])
    ranking = st.one_of(st.sampled_from([["A", "B"], ["B", "A"], [["A", "B"]], ["A", ["B"]], "AB", []]),
                        st.sampled_from([["A", "B"], ["B", "A"]]),
                        st.lists(st.one_of(slots, st.lists(slots, max_size=2)), max_size=3), SCALARS)
    strength = st.one_of(st.integers(-5, 5), st.integers(-3, 3), st.sampled_from(["-2", "2", 2.0, True, None]), SCALARS)
    ratings = st.one_of(st.dictionaries(st.sampled_from(["correctness", "style"]),
                                        st.dictionaries(slots, st.one_of(st.integers(0, 6), SCALARS), max_size=2),
                                        max_size=2), SCALARS)
    flags = st.one_of(st.lists(st.sampled_from(["unsafe", "ambiguous", "not-a-flag", "pii"]), max_size=3), SCALARS)
    fields = st.fixed_dictionaries({"ranking": ranking}, optional={
        "strength": strength, "rationale": st.one_of(TEXT, SCALARS), "ratings": ratings, "flags": flags,
        "extra": SCALARS,
    })
    return st.one_of(fields, fields, fields, SCALARS, st.lists(SCALARS, max_size=2))


def _body_bytes(draw, value, content_type, malformed):
    charset = re.search(r"charset=([\w-]+)", content_type or "")
    encoding = charset.group(1) if charset else "utf-8"
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    if malformed and draw(st.integers(0, 15)) == 0:
        text = text[:-1]  # malformed JSON
    try:
        return text.encode(encoding, errors="replace")
    except LookupError:
        return text.encode()


VALID = {"method": "POST", "content_type": "application/json", "accept": None, "authorization": "valid"}
DIMENSIONS = {"method": st.sampled_from(["POST"] * 6 + ["GET", "PUT"]), "content_type": CONTENT_TYPES,
              "accept": ACCEPTS, "authorization": AUTHORIZATIONS}


@st.composite
def requests_for(draw, valid_bodies, bodies):
    """The usual request of the loop with one part (or none, or all) drawn at random: most examples sit on
    the boundary between what the fast lane takes and what it hands to DRF."""
    vary = draw(st.sampled_from([None, "body", "body", "all", *DIMENSIONS]))
    spec = {name: draw(strategy) if vary in (name, "all") else VALID[name] for name, strategy in DIMENSIONS.items()}
    body = draw(bodies if vary in ("body", "all") else valid_bodies)
    spec["body"] = _body_bytes(draw, body, spec["content_type"], malformed=vary in ("body", "all"))
    return spec


def _authorization(kind, key):
    return {"valid": f"Token {key}", "lower": f"token {key}", "wrong": "Token 0123456789abcdef", "bare": "Token",
            "extra": f"Token {key} more", "bearer": f"Bearer {key}", None: None}[kind]


def _answer(view, path, spec, key, kwargs):
    """The view's response from a fresh copy of today's state (rolled back afterwards)."""
    extra = {}
    if spec["accept"] is not None:
        extra["HTTP_ACCEPT"] = spec["accept"]
    if (authorization := _authorization(spec["authorization"], key)) is not None:
        extra["HTTP_AUTHORIZATION"] = authorization
    request = RequestFactory().generic(spec["method"], path, data=spec["body"], content_type=spec["content_type"],
                                       **extra)
    cache.clear()  # the throttle's history starts the same for both calls
    with transaction.atomic():
        response = view(request, **kwargs)
        if hasattr(response, "render"):
            response.render()
        transaction.set_rollback(True)
    # A new lease or judgment takes the next id of its sequence (PostgreSQL does not roll sequences back).
    body = re.sub(rb'^(\{\s*"id":\s*)\d+', rb"\g<1>0", response.content)
    return response.status_code, body, {h: response.get(h) for h in HEADERS}


@pytest.fixture
def same_draws(monkeypatch):
    """The same clock and the same random draw for both calls."""
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    monkeypatch.setattr(assignment_services.random, "SystemRandom", lambda: random.Random(7))


def _compare(path, spec, key):
    match = resolve(path)
    fast, drf = match.func, match.func.__wrapped__
    assert fast is not drf
    assert _answer(fast, path, spec, key, match.kwargs) == _answer(drf, path, spec, key, match.kwargs), spec


@pytest.fixture
def loop(expert, open_campaign, same_draws):
    for _ in range(3):
        factories.TaskFactory(campaign=open_campaign, responses=["first upload", "second upload"])
    return expert, open_campaign, factories.api_token(expert.user)


SETTINGS = {"max_examples": 150, "deadline": None, "derandomize": True, "database": None,
            "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}


@hypothesis_settings(**SETTINGS)
@given(data=st.data())
def test_next_answers_alike_through_both_lanes(loop, data):
    expert, campaign, key = loop
    spec = data.draw(requests_for(
        st.just({"campaign": campaign.pk}),
        st.one_of(st.fixed_dictionaries({"campaign": _campaign_values(campaign.pk)}, optional={"extra": SCALARS}),
                  SCALARS),
    ))
    _compare("/api/v1/assignments/next", spec, key)


VALID_JUDGMENTS = st.builds(
    lambda first, strength, rationale: {
        "ranking": [first, "B" if first == "A" else "A"], "strength": strength if first == "B" else -strength,
        "rationale": rationale},
    st.sampled_from(["A", "B"]), st.integers(1, 3),
    st.sampled_from(["B names the contraindication; A misses it.", "  Both fine, but A is clearer about doses. ",
                     "Ünïcödé rationale — with a dash and enough length."]),
)


@hypothesis_settings(**SETTINGS)
@given(data=st.data())
def test_judgment_answers_alike_through_both_lanes(loop, data):
    expert, campaign, key = loop
    lease = assignment_services.assignment_next_in(expert=expert, campaign_id=campaign.pk)
    spec = data.draw(requests_for(VALID_JUDGMENTS, _judgment_bodies()))
    _compare(f"/api/v1/assignments/{lease.pk}/judgment", spec, key)
