"""Self-service API tokens: made by their owner, shown once, stored as a hash, refused at once when revoked or
expired, on DRF's views and on the experts' fast lane alike."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient
from rest_framework.views import APIView

from annotations.models import ApiToken, Assignment, Notification
from datadao import authentication
from datadao.authentication import ApiTokenAuthentication
from tests import factories

pytestmark = pytest.mark.django_db

TOKENS = "/api/v1/me/tokens"
NEXT = "/api/v1/assignments/next"
PAGE = "/account/tokens/"


def session_client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def key_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def make_key(user, **body) -> dict:
    response = session_client(user).post(TOKENS, {"name": "rating script", **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def drf_calls(monkeypatch):
    """Paths DRF's dispatch handled (the experts' fast lane never calls it)."""
    calls = []
    dispatch = APIView.dispatch

    def counting(self, request, *args, **kwargs):
        calls.append(request.path)
        return dispatch(self, request, *args, **kwargs)

    monkeypatch.setattr(APIView, "dispatch", counting)
    return calls


def test_a_new_key_works_on_drf_views_and_on_the_fast_lane(expert, open_campaign, drf_calls):
    factories.TaskFactory(campaign=open_campaign)
    made = make_key(expert.user, expires_in_days=30)
    assert made["key"].startswith("dd_") and made["prefix"] == made["key"][:8]
    assert timedelta(days=29) < parse_datetime(made["expires_at"]) - timezone.now() <= timedelta(days=30)
    client = key_client(made["key"])
    drf_calls.clear()

    lease = client.post(NEXT, {"campaign": open_campaign.pk}, format="json")
    assert lease.status_code == 200, lease.content
    assert Assignment.objects.get(pk=lease.json()["id"]).expert_id == expert.pk
    assert drf_calls == []  # the fast lane answered
    me = client.get("/api/v1/me/")
    assert me.status_code == 200 and me.json()["username"] == expert.user.username


def test_the_key_is_shown_once_and_only_its_hash_is_stored(lab_user):
    made = make_key(lab_user)
    key = made["key"]
    row = ApiToken.objects.get(pk=made["id"])
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    stored = [str(getattr(row, f.attname)) for f in ApiToken._meta.concrete_fields]
    assert not any(key in value for value in stored)
    assert row.prefix == key[:8]

    listed = key_client(key).get(TOKENS)
    assert listed.status_code == 200
    assert key not in listed.content.decode()
    [item] = listed.json()["results"]
    assert item["id"] == made["id"] and item["name"] == "rating script" and item["prefix"] == key[:8]
    assert "key" not in item and "key_hash" not in item


def test_a_user_has_several_tokens_and_the_legacy_token_still_works(lab_user):
    first, second = make_key(lab_user, name="laptop"), make_key(lab_user, name="CI")
    legacy = factories.api_token(lab_user)
    for key in (first["key"], second["key"], legacy):
        assert key_client(key).get("/api/v1/campaigns/").status_code == 200
    names = [t["name"] for t in key_client(legacy).get(TOKENS).json()["results"]]
    assert names == ["CI", "laptop"]


def test_revoking_refuses_the_key_at_once_on_both_lanes(expert, open_campaign, drf_calls):
    factories.TaskFactory(campaign=open_campaign)
    made = make_key(expert.user)
    client = key_client(made["key"])
    assert client.post(NEXT, {"campaign": open_campaign.pk}, format="json").status_code == 200

    assert client.delete(f"{TOKENS}/{made['id']}").status_code == 204
    refused = client.post(NEXT, {"campaign": open_campaign.pk}, format="json")
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["message"] == "Token has been revoked."
    refused = client.get("/api/v1/me/")
    assert refused.status_code == 401 and refused.json()["errors"][0]["message"] == "Token has been revoked."
    assert session_client(expert.user).get(TOKENS).json()["count"] == 0  # revoked tokens leave the list
    assert session_client(expert.user).delete(f"{TOKENS}/{made['id']}").status_code == 404


def test_an_expired_key_is_refused(expert, open_campaign):
    factories.TaskFactory(campaign=open_campaign)
    made = make_key(expert.user, expires_in_days=1)
    ApiToken.objects.filter(pk=made["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    client = key_client(made["key"])
    for response in (client.post(NEXT, {"campaign": open_campaign.pk}, format="json"), client.get("/api/v1/me/")):
        assert response.status_code == 401
        assert response.json()["errors"][0]["message"] == "Token has expired."
    [item] = session_client(expert.user).get(TOKENS).json()["results"]
    assert item["expired"] is True


def test_another_users_token_is_a_404_and_stays_valid(lab_user, expert):
    made = make_key(expert.user)
    response = session_client(lab_user).delete(f"{TOKENS}/{made['id']}")
    assert response.status_code == 404
    assert ApiToken.objects.get(pk=made["id"]).revoked_at is None
    assert key_client(made["key"]).get("/api/v1/me/").status_code == 200
    assert session_client(lab_user).delete(f"{TOKENS}/{10**30}").status_code == 404


@pytest.mark.parametrize("body, field, words", [
    ({}, "name", "required"),
    ({"name": "   "}, "name", "blank"),
    ({"name": "x" * 101}, "name", "100"),
    ({"name": 12345678}, "name", "string"),
    ({"name": "nul \x00 inside"}, "name", "NUL"),
    ({"name": "ok", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at", "future"),
    ({"name": "ok", "expires_at": "tomorrow"}, "expires_at", "format"),
    ({"name": "ok", "expires_in_days": 0}, "expires_in_days", "1"),
    ({"name": "ok", "expires_in_days": 5000}, "expires_in_days", "3650"),
    ({"name": "ok", "expires_in_days": 3, "expires_at": "2999-01-01T00:00:00Z"}, "expires_in_days", "not both"),
])
def test_bad_input_names_the_field(lab_user, body, field, words):
    response = session_client(lab_user).post(TOKENS, body, format="json")
    assert response.status_code == 400, response.content
    [error] = response.json()["errors"]
    assert error["field"] == field and words in error["message"], error
    assert not ApiToken.objects.exists()


def test_at_most_twenty_active_tokens(lab_user):
    for index in range(20):
        make_key(lab_user, name=f"script {index}")
    refused = session_client(lab_user).post(TOKENS, {"name": "one too many"}, format="json")
    assert refused.status_code == 400 and "20 active tokens" in refused.json()["errors"][0]["message"]
    # Revoking one frees a place.
    first = ApiToken.objects.filter(user=lab_user).order_by("id").first()
    assert session_client(lab_user).delete(f"{TOKENS}/{first.pk}").status_code == 204
    make_key(lab_user, name="one more")


def _token_updates(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith("UPDATE") and "apitoken" in q["sql"]]


def test_last_used_is_noted_at_most_once_a_minute(lab_user):
    made = make_key(lab_user)
    assert ApiToken.objects.get(pk=made["id"]).last_used_at is None
    client = key_client(made["key"])
    assert client.get("/api/v1/campaigns/").status_code == 200
    first = ApiToken.objects.get(pk=made["id"]).last_used_at
    assert first is not None and timezone.now() - first < timedelta(seconds=10)

    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/campaigns/").status_code == 200
    assert _token_updates(queries.captured_queries) == []
    assert ApiToken.objects.get(pk=made["id"]).last_used_at == first

    stale = timezone.now() - timedelta(minutes=2)
    ApiToken.objects.filter(pk=made["id"]).update(last_used_at=stale)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/campaigns/").status_code == 200
    assert len(_token_updates(queries.captured_queries)) == 1
    assert ApiToken.objects.get(pk=made["id"]).last_used_at > stale
    [item] = client.get(TOKENS).json()["results"]
    assert item["last_used_at"] is not None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the prepared statement is PostgreSQL's; "
                    "elsewhere it goes through Django's cursor")
def test_a_new_key_costs_the_expert_loop_one_statement_like_the_legacy_token(expert, monkeypatch,
                                                                             django_assert_num_queries):
    made = make_key(expert.user)
    ApiToken.objects.filter(pk=made["id"]).update(last_used_at=timezone.now())
    statements = []
    fetch = authentication.fetch
    monkeypatch.setattr(authentication, "fetch", lambda *a, **k: statements.append(a[0]) or fetch(*a, **k))
    with django_assert_num_queries(0):  # the prepared statement bypasses Django's cursor; nothing else runs
        user, token = ApiTokenAuthentication().authenticate_credentials(made["key"])
    assert len(statements) == 1
    with django_assert_num_queries(0):
        assert user.expert.pk == expert.pk and token.pk == made["id"] and token.user is user


def test_the_page_shows_a_new_key_once_and_revokes(client, expert):
    client.force_login(expert.user)
    page = client.get(PAGE)
    assert page.status_code == 200 and "No tokens yet." in page.content.decode()
    assert 'href="/account/tokens/"' in page.content.decode()  # the menu links here

    made = client.post(PAGE, {"name": "my laptop", "expires_in_days": "7"})
    assert made.status_code == 200
    token = ApiToken.objects.get(user=expert.user)
    html = made.content.decode()
    start = html.index('id="new-key">') + len('id="new-key">')
    key = html[start:html.index("</p>", start)]
    assert key.startswith(token.prefix) and "Copy it now" in html
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key_client(key).get("/api/v1/me/").status_code == 200

    again = client.get(PAGE).content.decode()
    assert key not in again and token.prefix in again and "my laptop" in again

    revoked = client.post(f"/account/tokens/{token.pk}/revoke", follow=True)
    assert revoked.status_code == 200 and "no longer works" in revoked.content.decode()
    assert key_client(key).get("/api/v1/me/").status_code == 401
    assert "my laptop" not in client.get(PAGE).content.decode().split("<h2>Make a token")[0]


def test_the_page_words_bad_input_and_makes_nothing(client, lab_user):
    client.force_login(lab_user)
    for form, words in (({"name": ""}, "name"), ({"name": "ok", "expires_in_days": "soon"}, "whole number"),
                        ({"name": "ok", "expires_in_days": "0"}, "from 1 to")):
        response = client.post(PAGE, form)
        assert response.status_code == 400 and words in response.content.decode()
    assert not ApiToken.objects.exists()


def test_another_users_token_cannot_be_revoked_from_the_page(client, lab_user, expert):
    made = make_key(expert.user)
    client.force_login(lab_user)
    assert client.post(f"/account/tokens/{made['id']}/revoke").status_code == 404
    assert ApiToken.objects.get(pk=made["id"]).revoked_at is None


def test_a_moderator_revokes_a_token_in_admin_and_the_owner_is_told(client, lab_user):
    made = make_key(lab_user, name="leaked script")
    client.force_login(factories.rewards_moderator())
    listed = client.get("/admin/annotations/apitoken/")
    assert listed.status_code == 200 and "leaked script" in listed.content.decode()
    response = client.post("/admin/annotations/apitoken/", {"action": "revoke", "_selected_action": [made["id"]]})
    assert response.status_code == 302
    assert ApiToken.objects.get(pk=made["id"]).revoked_at is not None
    assert key_client(made["key"]).get("/api/v1/me/").status_code == 401
    assert Notification.objects.filter(user=lab_user, kind="api_token_revoked").count() == 1
