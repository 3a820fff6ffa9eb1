"""Hardening: login lockout, CSRF on every form, Content-Security-Policy, throttles, deploy checks."""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from annotations.models import AuditEvent
from datadao.api import AssignmentThrottle, ImportThrottle
from tests import factories
from tests.test_access_matrix import MATRIX, ROLES, build_world

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


# --------------------------------------------------------------------------
# Login lockout (django-axes)
# --------------------------------------------------------------------------


def _login(client, username, password, ip="203.0.113.10", path="/accounts/login/"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_five_failures_lock_the_username_from_that_address_for_15_minutes():
    from axes.models import AccessAttempt

    factories.UserFactory(username="dana")
    client = Client()
    for _ in range(4):
        assert _login(client, "dana", "guess").status_code == 200  # the form again, with an error
    assert _login(client, "dana", "guess").status_code == 429  # the fifth failure locks
    locked = _login(client, "dana", PASSWORD)
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    # Another address is a different lock: the owner can still log in from home.
    assert _login(Client(), "dana", PASSWORD, ip="198.51.100.20").status_code == 302
    assert AuditEvent.objects.filter(action="login.locked_out", actor_label="dana").exists()

    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))
    assert _login(Client(), "dana", PASSWORD).status_code == 302  # cooled off


def test_four_failures_do_not_lock_and_a_success_resets_the_count():
    factories.UserFactory(username="erin")
    client = Client()
    for _ in range(4):
        _login(client, "erin", "guess")
    assert _login(client, "erin", PASSWORD).status_code == 302
    client = Client()
    for _ in range(4):
        _login(client, "erin", "guess")
    assert _login(client, "erin", PASSWORD).status_code == 302


def test_the_admin_login_is_locked_out_too():
    factories.rewards_moderator(username="frank")
    client = Client()
    for _ in range(5):
        _login(client, "frank", "guess", path="/admin/login/")
    assert _login(client, "frank", PASSWORD, path="/admin/login/").status_code == 429


# --------------------------------------------------------------------------
# CSRF: every browser form refuses a POST without the token
# --------------------------------------------------------------------------

PAGE_POSTS = sorted(key for key, (method, path, _, _) in MATRIX.items() if method == "post"
                    and not path.startswith("/api/"))


@pytest.mark.parametrize("route", PAGE_POSTS, ids=lambda r: f"{r[0]}[{r[1]}]" if r[1] else r[0])
def test_page_forms_refuse_posts_without_a_csrf_token(route, tmp_path, settings):
    method, path, body, expected = MATRIX[route]
    world = build_world(tmp_path, settings)
    # The role the form is for: the first whose POST the matrix expects to work.
    role = next(r for r in ROLES if r != "anon" and expected[r] < 400)
    from tests.test_access_matrix import _fill

    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users[role])
    url = path.format(**world.ids)
    refused = client.post(url, _fill(body, world.ids))
    assert refused.status_code == 403, f"{url} accepted a POST without a CSRF token"

    page = client.get("/")  # the same client with a token does get through
    token = client.cookies["csrftoken"].value if "csrftoken" in client.cookies else None
    assert page.status_code == 200
    if token:
        ok = client.post(url, {**_fill(body, world.ids), "csrfmiddlewaretoken": token})
        assert ok.status_code == expected[role]


def test_login_and_admin_forms_need_csrf_tokens():
    factories.UserFactory(username="gina")
    client = Client(enforce_csrf_checks=True)
    assert client.post("/accounts/login/", {"username": "gina", "password": PASSWORD}).status_code == 403
    assert client.post("/admin/login/", {"username": "gina", "password": PASSWORD}).status_code == 403
    moderator = factories.rewards_moderator()
    client.force_login(moderator)
    assert client.post("/admin/moderation/dispute/", {"action": "uphold"}).status_code == 403


def test_session_authenticated_api_writes_need_csrf_tokens_but_token_auth_does_not():
    user = factories.lab_member()
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/api/v1/campaigns/", {"name": "x", "domain": "law"}, format="json")
    assert response.status_code == 403
    token_client = APIClient(enforce_csrf_checks=True)
    token_client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(user)}")
    assert token_client.post("/api/v1/campaigns/", {"name": "x", "domain": "law"}, format="json").status_code == 201


# --------------------------------------------------------------------------
# Content-Security-Policy
# --------------------------------------------------------------------------


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def test_pages_get_a_strict_policy_with_a_fresh_nonce_on_their_scripts_and_styles(client):
    expert = factories.ExpertFactory()
    campaign = factories.open_campaign()
    client.force_login(expert.user)
    first = client.get(f"/rate/{campaign.pk}/")
    second = client.get(f"/rate/{campaign.pk}/")
    policy = _policy(first)

    nonce = re.search(r"'nonce-([^']+)'", " ".join(policy["script-src"])).group(1)
    assert policy["script-src"] == ["'self'", f"'nonce-{nonce}'"]
    assert "'unsafe-inline'" not in policy["script-src"] + policy["style-src"]
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    html = first.content.decode()
    # Every executable script and every style block carries this response's nonce.
    for tag in re.findall(r"<script\b[^>]*>", html) + re.findall(r"<style\b[^>]*>", html):
        assert 'type="application/json"' in tag or f'nonce="{nonce}"' in tag, tag
    assert nonce not in second["Content-Security-Policy"]


def test_json_and_files_get_a_policy_that_runs_nothing(lab_client):
    response = lab_client.get("/api/v1/campaigns/")
    assert response["Content-Security-Policy"].startswith("default-src 'none'")


def test_the_api_docs_load_scripts_from_the_app_only(client):
    policy = _policy(client.get("/api/v1/docs/"))
    assert policy["script-src"][0] == "'self'" and not [s for s in policy["script-src"] if "://" in s]
    assert policy["frame-ancestors"] == ["'none'"]


def test_admin_pages_carry_the_policy(client):
    client.force_login(factories.rewards_moderator())
    response = client.get("/admin/moderation/dispute/")
    assert "'nonce-" in response["Content-Security-Policy"]


# --------------------------------------------------------------------------
# Throttles on leasing, submitting and importing
# --------------------------------------------------------------------------


def test_next_and_submit_are_throttled(monkeypatch):
    monkeypatch.setattr(AssignmentThrottle, "THROTTLE_RATES", {"assignment": "2/min"})
    expert = factories.ExpertFactory()
    campaign = factories.open_campaign()
    client = APIClient()
    client.force_authenticate(expert.user)
    statuses = [client.post("/api/v1/assignments/next", {"campaign": campaign.pk}, format="json").status_code
                for _ in range(3)]
    assert statuses[:2] != [429, 429] and statuses[2] == 429
    assert client.post("/api/v1/assignments/1/judgment", {}, format="json").status_code == 429


def test_import_is_throttled(monkeypatch, lab_client, campaign):
    monkeypatch.setattr(ImportThrottle, "THROTTLE_RATES", {"import": "1/min"})
    url = f"/api/v1/campaigns/{campaign.pk}/tasks/import"
    first = lab_client.post(url, [], format="json")
    second = lab_client.post(url, [], format="json")
    assert first.status_code == 400 and second.status_code == 429


# --------------------------------------------------------------------------
# Production settings
# --------------------------------------------------------------------------


def _production_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update({"DJANGO_SETTINGS_MODULE": "datadao.settings.production",
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(64), "DJANGO_ALLOWED_HOSTS": "feedback.example.org"})
    return env


def test_deploy_checks_pass_with_production_settings():
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=_production_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_cookies_and_lockout_settings():
    code = ("from django.conf import settings as s; "
            "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.CSRF_COOKIE_HTTPONLY, "
            "s.SESSION_COOKIE_NAME, s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME, s.AXES_LOCKOUT_PARAMETERS, "
            "s.MIDDLEWARE[-1], s.AUTHENTICATION_BACKENDS[0], s.DEBUG)")
    result = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT,
                            env=_production_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "True", "True", "True", "True", "__Host-sessionid", "5", "0:15:00", "[['username',", "'ip_address']]",
        "axes.middleware.AxesMiddleware", "axes.backends.AxesStandaloneBackend", "False",
    ]
