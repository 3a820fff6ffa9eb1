"""Task import of text the database cannot store: a NUL or a lone surrogate anywhere in a row is a 400
naming its line and field, in every upload form, and nothing is written (PostgreSQL refused it mid-COPY: a 500)."""
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotations.models import Response, Task

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_import_throttle():
    """Many uploads, one lab user: keep the import throttle (60/min) from counting across tests."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()

NUL = "\u0000"
SURROGATE = "\ud800"


def url(campaign):
    return f"/api/v1/campaigns/{campaign.id}/tasks/import"


def row(i, **overrides):
    base = {
        "external_id": f"ext-{i}",
        "prompt": f"Question {i}: is this dose safe?",
        "responses": [{"model": "m-a", "text": f"Answer A {i}"}, {"model": "m-b", "text": f"Answer B {i}"}],
        "metadata": {"source": "unit-test"},
    }
    base.update(overrides)
    return base


def hostile_rows(bad: str):
    """(field the error must name, row holding ``bad`` there)."""
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Dose{bad}?"}]
    return [
        ("prompt", row(3, prompt=f"Dose{bad}?")),
        ("responses[1].text", row(3, responses=[{"model": "m", "text": "A"}, {"model": "m", "text": f"B{bad}"}])),
        ("responses[0].model", row(3, responses=[{"model": f"m{bad}", "text": "A"}, {"model": "m", "text": "B"}])),
        ("external_id", row(3, external_id=f"ext{bad}3")),
        ("prompt[1].content", row(3, prompt=chat)),
        ("metadata.source", row(3, metadata={"source": f"x{bad}"})),
        ("metadata.a.b[2].c", row(3, metadata={"a": {"b": [1, 2, {"c": f"deep{bad}"}]}})),
        ("metadata.a", row(3, metadata={"a": {f"key{bad}": 1}})),
    ]


CASES = [(bad, field, r) for bad in (NUL, SURROGATE) for field, r in hostile_rows(bad)]
IDS = [f"{'nul' if bad == NUL else 'surrogate'}-{field}" for bad, field, _ in CASES]


def body(rows) -> bytes:
    # json.dumps escapes both as \u0000 / \ud800: the bytes a client sends.
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def assert_refused(response, field, bad):
    assert response.status_code == 400, response.content
    [error] = response.json()["errors"]
    assert error["line"] == 3 and error["field"] == field
    word = "NUL character" if bad == NUL else "lone surrogate (U+D800)"
    assert word in error["message"] and "cannot be stored" in error["message"]
    assert not Task.objects.exists() and not Response.objects.exists()


@pytest.mark.parametrize(("bad", "field", "bad_row"), CASES, ids=IDS)
def test_json_array_upload(lab_client, campaign, bad, field, bad_row):
    response = lab_client.post(url(campaign), json.dumps([row(1), row(2), bad_row]), content_type="application/json")
    assert_refused(response, field, bad)


@pytest.mark.parametrize(("bad", "field", "bad_row"), CASES, ids=IDS)
def test_jsonl_file_upload(lab_client, campaign, bad, field, bad_row):
    upload = SimpleUploadedFile("tasks.jsonl", body([row(1), row(2), bad_row]), content_type="application/x-ndjson")
    assert_refused(lab_client.post(url(campaign), {"file": upload}, format="multipart"), field, bad)


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_jsonl_body(lab_client, campaign, bad):
    content = body([row(1), row(2), row(3, prompt=f"x{bad}")])
    response = lab_client.generic("POST", url(campaign), content, content_type="application/x-ndjson")
    assert_refused(response, "prompt", bad)


def test_a_field_name_that_cannot_be_stored_is_not_echoed(lab_client, campaign):
    bad_row = {**row(3), f"extra{SURROGATE}": 1}
    response = lab_client.post(url(campaign), json.dumps([row(1), row(2), bad_row]), content_type="application/json")
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["line"] == 3 and "a field name contains a lone surrogate" in error["message"]
    assert not Task.objects.exists()


def test_a_number_beyond_64_bits_in_metadata_is_refused(lab_client, campaign):
    response = lab_client.post(url(campaign), json.dumps([row(1), row(2, metadata={"n": 2**70})]),
                               content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == [
        {"line": 2, "field": "metadata.n", "message": "is a number beyond 64 bits, which cannot be stored."}]
    assert not Task.objects.exists()


def test_an_escaped_backslash_u0000_is_plain_text_and_imported(lab_client, campaign):
    text = "a literal \\u0000 in a regex tutorial"  # backslash, u, 0000: six ordinary characters
    upload = SimpleUploadedFile("tasks.jsonl", body([row(1, prompt=text)]), content_type="application/x-ndjson")
    response = lab_client.post(url(campaign), {"file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    assert Task.objects.get().prompt == text


def test_an_external_id_must_be_a_string(lab_client, campaign):
    response = lab_client.post(url(campaign), json.dumps([row(1, external_id=12345678)]), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"line": 1, "field": "external_id", "message": "is required and must be a non-empty string."}]
