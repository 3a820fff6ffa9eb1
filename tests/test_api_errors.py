"""Every answer under /api/ is JSON in the error shape, whatever fails; pages get styled error pages.

Covers deep JSON (both lanes), database and broker outages (503 with
Retry-After, recovery without a restart), unhandled errors (500 with a
request id, nothing internal), unknown routes and methods, oversized bodies
(413), the fast lane's content negotiation and id bounds, and the browser's
400/403/404/500/503 pages.
"""
from __future__ import annotations

import json
import logging
import re
from contextlib import contextmanager
from unittest import mock

import pytest
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from kombu.exceptions import OperationalError as BrokerOperationalError
from rest_framework.test import APIClient

from annotations.models import Campaign
from tests import factories

pytestmark = pytest.mark.django_db

# What a real outage's message looks like; none of it may reach a client.
DB_DOWN = 'connection to server at "10.9.8.7", port 5432 failed: Connection refused'
SECRET = "ledger-key fund:1:internal at /srv/datadao/annotations/selectors.py"


def assert_error_shape(response, status: int) -> list[dict]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body["errors"], list) and body["errors"], body
    for error in body["errors"]:
        assert isinstance(error["message"], str) and error["message"]
    return body["errors"]


def assert_styled_page(response, status: int, text: str) -> str:
    """The site's page (its header and stylesheet, the stylesheet allowed by the page's own CSP nonce)."""
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
    assert f'<style nonce="{nonce}">' in page
    assert 'class="brand"' in page
    assert text in page
    return page


def raw_client(**credentials) -> APIClient:
    """A client that gets the server's answer to an exception instead of re-raising it in the test."""
    client = APIClient(raise_request_exception=False)
    client.credentials(**credentials)
    return client


@pytest.fixture
def lab_api(lab_user):
    return raw_client(HTTP_AUTHORIZATION=f"Token {factories.api_token(lab_user)}")


@pytest.fixture
def expert_token_client(expert):
    """Token auth: the expert loop's fast lane (datadao.hotpath) answers."""
    return raw_client(HTTP_AUTHORIZATION=f"Token {factories.api_token(expert.user)}")


@pytest.fixture
def expert_session_client(expert):
    """No token: the same endpoints through DRF."""
    client = raw_client()
    client.force_authenticate(expert.user)
    return client


@contextmanager
def database_down():
    """Every new query and connection attempt fails, as while PostgreSQL is stopped."""
    error = OperationalError(DB_DOWN)
    with mock.patch.object(BaseDatabaseWrapper, "ensure_connection", side_effect=error), \
            mock.patch.object(BaseDatabaseWrapper, "cursor", side_effect=error):
        yield


def nested(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + "1" + "}" * depth


# --------------------------------------------------------------------------
# 1. Deeply nested JSON: 400, not RecursionError's 500
# --------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1500, 10_000])
@pytest.mark.parametrize("kind", ["list", "dict"])
def test_deep_json_is_a_400_on_drf_views(lab_api, campaign, depth, kind):
    for url in ("/api/v1/campaigns/", f"/api/v1/campaigns/{campaign.pk}/tasks/import"):
        response = lab_api.post(url, nested(depth, kind), content_type="application/json")
        errors = assert_error_shape(response, 400)
        assert "nested too deeply" in errors[0]["message"]
    assert Campaign.objects.count() == 1 and not campaign.tasks.exists()


@pytest.mark.parametrize("depth", [1500, 10_000])
def test_deep_json_is_a_400_on_the_fast_lane(expert_token_client, depth):
    # orjson refuses past 1024 levels and hands over to DRF, whose parser must refuse too.
    for url in ("/api/v1/assignments/next", "/api/v1/assignments/1/judgment"):
        body = '{"campaign": %s, "ranking": %s}' % (nested(depth, "list"), nested(depth, "list"))
        errors = assert_error_shape(expert_token_client.post(url, body, content_type="application/json"), 400)
        assert "nested too deeply" in errors[0]["message"]


def test_numbers_that_overflow_to_infinity_are_a_400(lab_api, campaign):
    row = {"external_id": "e1", "prompt": "Dose?", "responses": [{"text": "a"}, {"text": "b"}],
           "metadata": {"score": 0}}
    body = json.dumps([row]).replace('"score": 0', '"score": 1e309')
    response = lab_api.post(f"/api/v1/campaigns/{campaign.pk}/tasks/import", body, content_type="application/json")
    assert "1e309" in assert_error_shape(response, 400)[0]["message"]
    assert not campaign.tasks.exists()


def test_an_error_echoing_a_lone_surrogate_is_still_json(lab_api):
    # DRF's choice error quotes the input; "\ud800" cannot be written as UTF-8 unless escaped.
    response = lab_api.post("/api/v1/campaigns/", '{"name": "Dosing", "domain": "\\ud800"}',
                            content_type="application/json")
    errors = assert_error_shape(response, 400)
    assert errors[0]["field"] == "domain" and "\\ud800" in errors[0]["message"]


# --------------------------------------------------------------------------
# 3. Outages: 503 JSON with Retry-After; recovery needs no restart
# --------------------------------------------------------------------------


def test_database_outage_is_a_503_with_retry_after_and_recovers(lab_api, campaign):
    with database_down():
        response = lab_api.get("/api/v1/campaigns/")
    errors = assert_error_shape(response, 503)
    assert int(response["Retry-After"]) > 0
    assert "retry" in errors[0]["message"]
    assert "10.9.8.7" not in response.content.decode()
    # The database is back: the same request works, nothing was restarted.
    assert lab_api.get("/api/v1/campaigns/").json()["results"][0]["id"] == campaign.pk


def test_database_outage_on_a_write_is_a_503(lab_api):
    with database_down():
        response = lab_api.post("/api/v1/campaigns/", {"name": "Dosing", "domain": "medicine"}, format="json")
    assert_error_shape(response, 503)
    assert response["Retry-After"]
    assert not Campaign.objects.exists()


def test_database_outage_on_the_fast_lane_is_a_503(expert_token_client):
    with database_down():
        response = expert_token_client.post("/api/v1/assignments/next", {"campaign": 1}, format="json")
    assert_error_shape(response, 503)
    assert response["Retry-After"]


def test_database_outage_on_a_page_is_the_styled_503(client, expert):
    client.raise_request_exception = False
    client.force_login(expert.user)
    with database_down():
        response = client.get("/wallet/")
    page = assert_styled_page(response, 503, "Briefly unavailable")
    assert response["Retry-After"]
    assert "10.9.8.7" not in page
    assert client.get("/wallet/").status_code == 200


def test_broker_outage_is_a_503(lab_api):
    with mock.patch("annotations.selectors.campaigns_visible_to", side_effect=BrokerOperationalError(DB_DOWN)):
        response = lab_api.get("/api/v1/campaigns/")
    assert_error_shape(response, 503)
    assert response["Retry-After"]


# --------------------------------------------------------------------------
# Unhandled errors: 500 JSON with a request id, in the header and the log too
# --------------------------------------------------------------------------


@pytest.mark.parametrize("lane", ["drf", "fast"])
def test_unhandled_error_is_a_500_with_a_request_id(lab_api, expert_token_client, caplog, lane):
    with caplog.at_level(logging.ERROR, logger="datadao.errors"):
        if lane == "drf":
            with mock.patch("annotations.selectors.campaigns_visible_to", side_effect=RuntimeError(SECRET)):
                response = lab_api.get("/api/v1/campaigns/")
        else:
            with mock.patch("annotations.assignment.assignment_next_in", side_effect=RuntimeError(SECRET)):
                response = expert_token_client.post("/api/v1/assignments/next", {"campaign": 1}, format="json")
    errors = assert_error_shape(response, 500)
    assert errors[0]["message"] == "Internal server error."
    request_id = errors[0]["request_id"]
    assert response["X-Request-ID"] == request_id
    assert SECRET not in response.content.decode() and "RuntimeError" not in response.content.decode()
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info[0] is RuntimeError  # the traceback is in the log, under that id


def test_every_answer_carries_a_request_id(lab_api, client):
    ids = {lab_api.get("/api/v1/campaigns/")["X-Request-ID"], client.get("/accounts/login/")["X-Request-ID"]}
    assert len(ids) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    # A proxy's id is kept, so its logs and ours line up; junk is replaced.
    assert lab_api.get("/api/v1/campaigns/", HTTP_X_REQUEST_ID="edge-7f3a9c01")["X-Request-ID"] == "edge-7f3a9c01"
    assert lab_api.get("/api/v1/campaigns/", HTTP_X_REQUEST_ID="<script>")["X-Request-ID"] != "<script>"


# --------------------------------------------------------------------------
# 4. Unknown routes and methods
# --------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/api/v1/no-such-thing", "/api/v1/campaigns/1/no-such-action", "/api/v2/"])
def test_unknown_api_route_is_a_json_404(lab_api, url):
    assert assert_error_shape(lab_api.get(url), 404)[0]["message"] == "Not found."
    assert_error_shape(lab_api.post(url, {"a": 1}, format="json"), 404)


def test_wrong_method_is_a_json_405(lab_api, expert_token_client):
    assert_error_shape(lab_api.delete("/api/v1/campaigns/"), 405)
    assert_error_shape(expert_token_client.get("/api/v1/assignments/next"), 405)


# --------------------------------------------------------------------------
# 5. Oversized bodies: 413 JSON before the body is read
# --------------------------------------------------------------------------


def test_oversized_body_is_a_json_413(lab_api, expert_token_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"name": "x" * 2000, "domain": "medicine"})
    errors = assert_error_shape(lab_api.post("/api/v1/campaigns/", body, content_type="application/json"), 413)
    assert "limit is 1000 bytes" in errors[0]["message"]
    body = json.dumps({"campaign": 1, "pad": "x" * 2000})
    assert_error_shape(expert_token_client.post("/api/v1/assignments/next", body, content_type="application/json"), 413)
    assert not Campaign.objects.exists()


def test_lying_content_length_is_a_json_413(lab_api):
    # 2 GB announced, a few bytes sent: refused on the header, not read (or waited for).
    response = lab_api.generic("POST", "/api/v1/campaigns/", b'{"name": "x"}', content_type="application/json",
                               CONTENT_LENGTH="2147483648")
    errors = assert_error_shape(response, 413)
    assert "2147483648 bytes" in errors[0]["message"]


def test_import_keeps_its_own_limit_and_hint(lab_api, campaign, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 500
    rows = [{"external_id": f"e{i}", "prompt": "p" * 50, "responses": [{"text": "a"}, {"text": "b"}]} for i in range(9)]
    response = lab_api.post(f"/api/v1/campaigns/{campaign.pk}/tasks/import", rows, format="json")
    assert "JSONL file" in assert_error_shape(response, 413)[0]["message"]


# --------------------------------------------------------------------------
# 6. The fast lane answers as DRF does
# --------------------------------------------------------------------------


def test_fast_lane_refuses_xml_like_drf(expert_token_client, expert_session_client):
    for client in (expert_token_client, expert_session_client):
        response = client.post("/api/v1/assignments/next", {"campaign": 1}, format="json",
                               HTTP_ACCEPT="application/xml")
        assert_error_shape(response, 406)


@pytest.mark.parametrize("campaign_id", [10**24, 2**63, -(2**63) - 1])
def test_campaign_id_past_bigint_is_a_400_on_both_lanes(expert_token_client, expert_session_client, campaign_id):
    for client in (expert_token_client, expert_session_client):
        response = client.post("/api/v1/assignments/next", f'{{"campaign": {campaign_id}}}',
                               content_type="application/json")
        assert assert_error_shape(response, 400)[0]["field"] == "campaign"


# --------------------------------------------------------------------------
# 7. Browser pages: styled 400, 403, 404, 500, 503
# --------------------------------------------------------------------------


def test_page_not_found_is_styled(client):
    assert_styled_page(client.get("/no-such-page/"), 404, "Page not found")


def test_lab_opening_the_wallet_gets_the_styled_403(client, lab_user):
    client.force_login(lab_user)
    page = assert_styled_page(client.get("/wallet/"), 403, "The wallet is for experts.")
    assert lab_user.username in page  # the usual header, signed in


def test_bad_request_page_is_styled(client):
    # A forged Host header is a SuspiciousOperation: Django answers 400.
    assert_styled_page(client.get("/", HTTP_HOST="evil.example"), 400, "Bad request")


def test_server_error_page_is_styled_and_quotes_the_request_id(client, lab_user):
    client.raise_request_exception = False
    client.force_login(lab_user)
    with mock.patch("annotations.selectors.campaigns_visible_to", side_effect=RuntimeError(SECRET)):
        response = client.get("/")
    page = assert_styled_page(response, 500, "Something went wrong")
    assert response["X-Request-ID"] in page
    assert SECRET not in page
