"""Hostile bodies on every write endpoint: a 4xx JSON answer in the error shape, never a 500, no row written.

The write operations come from the OpenAPI schema, so a new endpoint is
attacked without a change here (a path parameter this file cannot fill
fails loudly). Each operation gets, in its otherwise minimal valid body:
JSON nested up to 10,000 deep, NUL characters and lone surrogates, numbers
past the field's bounds or past 64 bits, NaN and Infinity, a value of the
wrong type, a duplicate key carrying the bad value last; and as the whole
body: 0 bytes, junk, invalid UTF-8, nesting, and a body over the size limit.

Hypothesis draws ``HOSTILE_EXAMPLES`` cases per operation (default 30,
derandomised for CI); the wrong types and the whole-body cases are tried
exhaustively. The whole file runs in well under a minute.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from tests import factories

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "30"))
EXPERT_PATHS = ("/api/v1/assignments/", "/api/v1/me/stake", "/api/v1/me/unstake")
HOLE = "\x01hostile\x01"  # where a raw JSON fragment replaces a value
HOLE_JSON = json.dumps(HOLE)

# Valid bodies where the schema's required fields alone are not enough, so an attacked field is the only fault.
BASE_BODIES = {
    "/api/v1/assignments/{assignment_id}/judgment": {
        "ranking": ["B", "A"], "strength": 2, "rationale": "B gives the weight-based dose; A guesses.",
    },
    "/api/v1/campaigns/{campaign_id}/data-sale": {"for_sale": True, "price": 10},
}
# The task import's body is an array of rows the schema does not spell out: one valid row, and its fields.
IMPORT_PATH = "/api/v1/campaigns/{campaign_id}/tasks/import"
IMPORT_ROW = {
    "external_id": "hostile-1", "prompt": "What dose of amoxicillin for a child of 20 kg?",
    "responses": [{"model": "m-a", "text": "Answer A"}, {"model": "m-b", "text": "Answer B"}],
    "metadata": {"source": "hostile"},
}
IMPORT_FIELDS = {
    (0, "external_id"): {"type": "string"}, (0, "prompt"): {"type": "string"},
    (0, "responses"): {"type": "array"}, (0, "responses", 0, "text"): {"type": "string"},
    (0, "responses", 0, "model"): {"type": "string"}, (0, "metadata"): {"type": "object"},
    (0, "metadata", "source"): {},  # free-form: any JSON the database can store
}


# --------------------------------------------------------------------------
# The write operations, from the OpenAPI schema
# --------------------------------------------------------------------------


@dataclass
class Operation:
    path: str
    method: str
    body: object = None  # a minimal valid body; None when the operation takes none
    fields: dict = field(default_factory=dict)  # target (tuple of keys) -> its JSON schema
    required: bool = False  # an empty body is refused

    def __str__(self):
        return f"{self.method.upper()} {self.path}"


def _valid(schema: dict):
    """A value the schema allows (enough for the body to pass everything but the field under attack)."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    low, high = schema.get("minimum"), schema.get("maximum")
    if kind == "integer":
        return int(low) if low is not None else 1
    if kind == "number":
        return (low + high) / 2 if low is not None and high is not None else (low if low is not None else 0.5)
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    if kind == "string":
        return "A statement long enough for any minimum length on this field."
    return ["A", "B"]  # untyped (the judgment's ranking)


def write_operations() -> list[Operation]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]

    def resolve(node: dict) -> dict:
        while "$ref" in node:
            node = components[node["$ref"].rsplit("/", 1)[1]]
        if "allOf" in node and len(node["allOf"]) == 1:
            return {**resolve(node["allOf"][0]), **{k: v for k, v in node.items() if k != "allOf"}}
        return node

    operations = []
    for path, item in schema["paths"].items():
        for method in ("post", "put", "patch"):
            if method not in item:
                continue
            content = item[method].get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                operations.append(Operation(path, method))
                continue
            body_schema = resolve(content["application/json"]["schema"])
            if path == IMPORT_PATH:
                operations.append(Operation(path, method, [IMPORT_ROW], IMPORT_FIELDS, required=True))
                continue
            properties = {name: resolve(value) for name, value in body_schema.get("properties", {}).items()}
            required = body_schema.get("required", [])
            body = BASE_BODIES.get(path) or {name: _valid(properties[name]) for name in required}
            operations.append(Operation(path, method, body, {(name,): s for name, s in properties.items()},
                                        required=bool(required)))
    return operations


OPERATIONS = write_operations()
WITH_BODY = [op for op in OPERATIONS if op.body is not None]


# --------------------------------------------------------------------------
# The world the requests run against
# --------------------------------------------------------------------------


@pytest.fixture
def world(db, tmp_path, settings):
    from annotations.models import Assignment
    from datavalue.models import GenerationJob
    from rewards import services

    settings.DATADAO_EXPORT_ROOT = str(tmp_path)
    lab = factories.LabFactory()
    lab_user = factories.lab_member(lab)
    expert = factories.ExpertFactory(wallet_address=factories.wallet("hostile"))
    campaign = factories.open_campaign(lab=lab, reward_per_judgment=10)
    tasks = [factories.TaskFactory(campaign=campaign) for _ in range(2)]
    now = timezone.now()
    lease = Assignment.objects.create(task=tasks[0], expert=expert, campaign=campaign, display_order=[0, 1],
                                      leased_at=now, expires_at=now + timedelta(minutes=20))
    tasks[0].filled = 1
    tasks[0].save(update_fields=["filled"])
    factories.lab_deposit(lab, 10**9)
    factories.expert_deposit(expert, 10**8)
    services.stake_bond(expert=expert, amount=10**7)
    seller = factories.open_campaign(data_for_sale=True, data_price=10)
    job = GenerationJob.objects.create(campaign=campaign, checkpoint="tiny", checkpoint_path=str(tmp_path / "tiny"))
    lab_client, expert_client = APIClient(), APIClient()
    lab_client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(lab_user)}")
    expert_client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(expert.user)}")
    return {
        "lab": lab_client, "expert": expert_client,
        "params": {"campaign_id": campaign.pk, "assignment_id": lease.pk, "job_id": job.pk},
        "sale_campaign_id": seller.pk,
    }


def url_of(op: Operation, world: dict) -> str:
    params = dict(world["params"])
    if op.path.startswith("/api/v1/datasets/"):
        params["campaign_id"] = world["sale_campaign_id"]
    try:
        return op.path.format(**params)
    except KeyError as missing:
        raise AssertionError(f"{op}: give the world fixture a row for the path parameter {missing}") from None


def client_for(op: Operation, world: dict) -> APIClient:
    return world["expert"] if op.path.startswith(EXPERT_PATHS) else world["lab"]


_TABLES = None


def row_counts() -> tuple:
    """Rows in every table of the product's apps, in one query."""
    global _TABLES
    if _TABLES is None:
        models = [m for label in ("annotations", "rewards") for m in apps.get_app_config(label).get_models()]
        _TABLES = [m._meta.db_table for m in models if m._meta.managed]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {quote(t)})" for t in _TABLES))
        return tuple(zip(_TABLES, cursor.fetchone()))


def post(op: Operation, world: dict, body: bytes | str, **extra):
    cache.clear()  # throttles would answer 429 long before the body is looked at
    return client_for(op, world).generic(op.method.upper(), url_of(op, world), body,
                                         content_type="application/json", **extra)


def assert_refused(op: Operation, world: dict, body: bytes | str, case: str, *, allow_success: bool = False):
    before = row_counts()
    response = post(op, world, body)
    where = f"{op} with {case}: {response.status_code} {response.content[:300]!r}"
    if allow_success and response.status_code < 300:
        return
    assert 400 <= response.status_code < 500, where
    assert response["Content-Type"] == "application/json", where
    errors = response.json()["errors"]
    assert isinstance(errors, list) and errors, where
    for error in errors:
        assert isinstance(error["message"], str) and error["message"], where
        assert isinstance(error.get("field", ""), str) and isinstance(error.get("line", 0), int), where
    assert row_counts() == before, f"{where}: rows were written"


# --------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------


def with_fragment(op: Operation, target: tuple, fragment: str, *, duplicate: bool = False) -> str:
    """The operation's valid body with ``fragment`` (raw JSON text) as the value at ``target``.
    ``duplicate`` keeps the valid value too, under the same key before it."""
    body = json.loads(json.dumps(op.body))
    node = body
    for key in target[:-1]:
        node = node[key]
    valid = node.get(target[-1], _valid(op.fields[target])) if isinstance(node, dict) else None
    node[target[-1]] = HOLE
    text = json.dumps(body)
    if duplicate:
        key = json.dumps(target[-1])
        return text.replace(f"{key}: {HOLE_JSON}", f"{key}: {json.dumps(valid)}, {key}: {fragment}")
    return text.replace(HOLE_JSON, fragment)


def nested(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "list" else '{"a": ' * depth + "1" + "}" * depth


def out_of_bounds(schema: dict) -> list[str]:
    """Numbers the field must refuse: past its bounds, past 64 bits, and the floats that overflow to infinity."""
    values = ["1e309", "-1e309", "NaN", "Infinity", "-Infinity", str(10**24), str(-(10**24)), str(2**63),
              str(-(2**63) - 1), str(2**64)]
    if schema.get("type") in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None:
            values.append(str(low - 1))
        if high is not None:
            values.append(str(high + 1) if schema["type"] == "integer" else repr(high * 2 + 1))
        if low is not None and low >= 0:
            values.append("-1")
        if schema["type"] == "integer":
            values.append("1.5")
    return values


def unstorable_text() -> st.SearchStrategy[str]:
    bad = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"])
    return st.builds(lambda a, b, c: json.dumps(a + b + c), st.text(max_size=8), bad, st.text(max_size=8))


WRONG_TYPES = {
    "integer": ['"twelve"', "[]", "{}", "true"],
    "number": ['"half"', "[]", "{}", "true"],
    "boolean": ['"maybe"', "[]", "{}", "2"],
    "string": ["12345678", "[]", "{}", "true", "1.5"],
    "array": ['"a"', "{}", "7"],
    "object": ['"a"', "[]", "7"],
}


def fragments(schema: dict) -> st.SearchStrategy[str]:
    """Hostile values for one field."""
    deep = st.builds(nested, st.integers(min_value=200, max_value=10_000), st.sampled_from(["list", "dict"]))
    return st.one_of(deep, unstorable_text(), st.sampled_from(out_of_bounds(schema)))


WHOLE_BODIES = {
    "a 0-byte body": b"",
    "whitespace": b"  \n",
    "null": b"null",
    "a number": b"1",
    "a string": b'"x"',
    "an empty object": b"{}",
    "a truncated object": b'{"a": ',
    "a raw NUL byte": b'{"a": "\x00"}',
    "invalid UTF-8": b'{"a": "\xff\xfe"}',
    "NaN": b"NaN",
    "a lone surrogate key": b'{"\\ud800": 1}',
    "nesting 10,000 deep (lists)": nested(10_000, "list").encode(),
    "nesting 10,000 deep (objects)": nested(10_000, "dict").encode(),
    "nesting 1,000 deep": nested(1_000, "list").encode(),
    "nesting 600 deep": nested(600, "list").encode(),
}


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

_given_settings = hypothesis_settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
    phases=[Phase.explicit, Phase.generate],  # a failing case is clear as drawn; shrinking would cost minutes
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("op", WITH_BODY, ids=str)
def test_hostile_field_values_are_refused(op, world):
    targets = sorted(op.fields, key=str)

    @_given_settings
    @given(data=st.data())
    def attack(data):
        target = data.draw(st.sampled_from(targets), label="field")
        fragment = data.draw(fragments(op.fields[target]), label="value")
        duplicate = data.draw(st.booleans(), label="duplicate key") and len(target) == 1
        assert_refused(op, world, with_fragment(op, target, fragment, duplicate=duplicate),
                       f"{'.'.join(map(str, target))}={fragment[:60]}{' (duplicate key)' if duplicate else ''}")

    attack()


@pytest.mark.parametrize("op", WITH_BODY, ids=str)
def test_values_of_the_wrong_type_are_refused(op, world):
    accepted = []
    for target, schema in op.fields.items():
        for fragment in WRONG_TYPES.get(schema.get("type"), []):
            try:
                case = f"{'.'.join(map(str, target))}={fragment}"
                assert_refused(op, world, with_fragment(op, target, fragment), case)
            except AssertionError as failure:  # every accepted wrong type is listed, not just the first
                accepted.append(str(failure).splitlines()[0][:160])
    assert not accepted, "\n".join(accepted)


@pytest.mark.parametrize("op", WITH_BODY, ids=str)
def test_hostile_whole_bodies_are_refused(op, world):
    for case, body in WHOLE_BODIES.items():
        # An operation without required fields (mark all notifications read) may take an empty body, or one
        # whose only key it does not know.
        empty = case in ("a 0-byte body", "whitespace", "an empty object", "a lone surrogate key")
        assert_refused(op, world, body, case, allow_success=empty and not op.required)


@pytest.mark.parametrize("op", OPERATIONS, ids=str)
def test_oversized_bodies_are_a_413(op, world, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    body = json.dumps({"padding": "x" * 5000, **(op.body if isinstance(op.body, dict) else {})})
    for case, extra in (("a body over the limit", {}), ("a Content-Length of 2 GB", {"CONTENT_LENGTH": "2147483648"})):
        before = row_counts()
        response = post(op, world, body if not extra else b'{"a": 1}', **extra)
        assert response.status_code == 413, f"{op} with {case}: {response.status_code} {response.content[:200]!r}"
        assert response.json()["errors"][0]["message"].startswith(("the request body", "upload is")), op
        assert row_counts() == before


def test_every_write_route_is_attacked():
    """The schema lists every POST/PUT/PATCH route of the URL conf, so none escapes the tests above."""
    from django.urls import URLPattern, URLResolver, get_resolver

    def routes(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from routes(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.callback

    attacked = {(op.path, op.method) for op in OPERATIONS}
    missing = []
    for route, view in routes(get_resolver().url_patterns):
        cls = getattr(view, "cls", None)
        if not route.startswith("api/") or cls is None:
            continue
        path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        missing += [(path, m) for m in ("post", "put", "patch") if hasattr(cls, m) and (path, m) not in attacked]
    assert WITH_BODY and not missing, missing
