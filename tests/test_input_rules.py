"""Input rules every API shares: text the database can store, integers it can hold, strings that are
strings, finite numbers; the idempotency conflict names only the caller's key; the test database's name."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import environ
import pytest
from django.db import connection

from annotations.models import Assignment, Campaign, Judgment
from datadao.settings import database_test_name
from rewards.amounts import parse_amount
from tests import factories

NEXT = "/api/v1/assignments/next"
TOKEN = 10**6


def post_json(client, path, payload, **extra):
    # json.dumps escapes a lone surrogate as \ud800, as a client's encoder does.
    return client.post(path, json.dumps(payload), content_type="application/json", **extra)


def error_of(response, status=400) -> dict:
    assert response.status_code == status, response.content
    [error] = response.json()["errors"]
    return error


@pytest.fixture
def lease(open_campaign, expert_client):
    factories.TaskFactory(campaign=open_campaign)
    response = expert_client.post(NEXT, {"campaign": open_campaign.pk}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


# --- strings are strings, and storable ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("rationale", [12345678, 1.5, ["x" * 30]])
def test_a_rationale_that_is_not_a_string_is_refused(expert_client, lease, rationale):
    response = post_json(expert_client, f"/api/v1/assignments/{lease['id']}/judgment",
                         {"ranking": ["A", "B"], "strength": -1, "rationale": rationale})
    assert error_of(response) == {"field": "rationale", "message": "Must be a string."}


@pytest.mark.django_db
def test_an_integer_rationale_is_refused_on_the_token_lane_too(open_campaign, lease, expert):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(expert.user)}")
    response = post_json(client, f"/api/v1/assignments/{lease['id']}/judgment",
                         {"ranking": ["A", "B"], "strength": -1, "rationale": 12345678901234567890})
    assert error_of(response)["field"] == "rationale"
    assert not Judgment.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("reason", [2**70, 12, True])
def test_a_skip_reason_that_is_not_a_string_is_refused(expert_client, lease, reason):
    response = post_json(expert_client, f"/api/v1/assignments/{lease['id']}/skip", {"reason": reason})
    assert error_of(response)["field"] == "reason"
    assert Assignment.objects.get(pk=lease["id"]).skip_reason == ""


@pytest.mark.django_db
@pytest.mark.parametrize(("text", "word"), [("a\u0000b", "NUL character"), ("a\ud800b", "lone surrogate")])
def test_text_the_database_cannot_store_is_a_400_naming_the_field(expert_client, lab_client, lease, text, word):
    judgment = post_json(expert_client, f"/api/v1/assignments/{lease['id']}/judgment",
                         {"ranking": ["A", "B"], "strength": -1, "rationale": f"long enough rationale {text}"})
    skip = post_json(expert_client, f"/api/v1/assignments/{lease['id']}/skip", {"reason": text})
    campaign = post_json(lab_client, "/api/v1/campaigns/", {"name": "ok", "domain": "medicine", "guidelines": text})
    for response, field in [(judgment, "rationale"), (skip, "reason"), (campaign, "guidelines")]:
        error = error_of(response)
        assert error["field"] == field and word in error["message"] and "cannot be stored" in error["message"]
    assert Campaign.objects.count() == 1  # the open campaign only


@pytest.mark.django_db
def test_a_campaign_name_must_be_a_string(lab_client):
    response = post_json(lab_client, "/api/v1/campaigns/", {"name": 12345, "domain": "medicine"})
    assert error_of(response) == {"field": "name", "message": "Must be a string."}


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["status=open%00", "domain=law%00", "status=nonsense"])
def test_a_campaign_filter_is_checked(lab_client, query):
    response = lab_client.get(f"/api/v1/campaigns/?{query}")
    assert error_of(response)["field"] == query.split("=")[0]


@pytest.mark.django_db
def test_a_task_filter_with_a_nul_is_a_400(lab_client, campaign):
    response = lab_client.get(f"/api/v1/campaigns/{campaign.pk}/tasks/?external_id=a%00b")
    assert error_of(response) == {"field": "external_id", "message": "contains a NUL character, which cannot be stored."}


# --- integers the database can hold ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("campaign_id", [10**24, 2**63, 0, -1])
def test_next_with_a_campaign_id_out_of_range_is_a_400(expert_client, campaign_id):
    error = error_of(post_json(expert_client, NEXT, {"campaign": campaign_id}))
    assert error["field"] == "campaign"
    assert "9223372036854775807" in error["message"] or "greater than or equal to 1" in error["message"]


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["reward_per_judgment", "min_stake", "data_price"])
def test_campaign_amounts_beyond_bigint_are_a_400(lab_client, field):
    response = post_json(lab_client, "/api/v1/campaigns/", {"name": "n", "domain": "medicine", field: 10**24})
    assert error_of(response) == {"field": field, "message": "Ensure this value is less than or equal to 9223372036854775807."}


@pytest.mark.django_db
def test_judgment_numbers_beyond_bigint_are_a_400(expert_client, lease):
    response = post_json(expert_client, f"/api/v1/assignments/{lease['id']}/judgment",
                         {"ranking": ["A", "B"], "strength": -(2**70), "rationale": "x" * 30})
    assert error_of(response)["field"] == "strength"


@pytest.mark.django_db
def test_export_numbers_beyond_bigint_are_a_400(lab_client, campaign):
    response = post_json(lab_client, f"/api/v1/campaigns/{campaign.pk}/exports",
                         {"format": "trl_preference", "max_tokens": 10**24})
    assert error_of(response)["field"] == "max_tokens"


@pytest.mark.parametrize("text", ["1e999990", "9223372036854.775808", "1" * 39])
def test_a_typed_amount_beyond_what_the_ledger_holds_is_refused_at_once(settings, text):
    settings.DATADAO_TOKEN_DECIMALS = 6
    with pytest.raises(ValueError, match="at most 9,223,372,036,854.775807"):
        parse_amount(text)  # "1e999990" took 26 s of CPU to become an integer


# --- finite numbers ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["NaN", "nan", "inf", "-inf", "Infinity", "2", "-0.1", "x"])
def test_consensus_max_margin_must_be_a_finite_margin(lab_client, campaign, value):
    response = lab_client.get(f"/api/v1/campaigns/{campaign.pk}/consensus?max_margin={value}")
    assert error_of(response)["field"] == "max_margin"


@pytest.mark.django_db
def test_consensus_max_margin_in_range_or_empty_still_filters(lab_client, campaign):
    for query in ("max_margin=0.5", "max_margin=", ""):
        assert lab_client.get(f"/api/v1/campaigns/{campaign.pk}/consensus?{query}").status_code == 200


# --- the idempotency conflict ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_reused_idempotency_key_names_the_callers_key_only(lab_client, lab, campaign):
    factories.lab_deposit(lab, 10 * TOKEN)
    url = f"/api/v1/campaigns/{campaign.pk}/fund"
    assert post_json(lab_client, url, {"amount": TOKEN}, HTTP_IDEMPOTENCY_KEY="po-77").status_code == 201
    error = error_of(post_json(lab_client, url, {"amount": 2 * TOKEN}, HTTP_IDEMPOTENCY_KEY="po-77"), status=409)
    assert "'po-77'" in error["message"]
    assert f"fund:{campaign.pk}:" not in error["message"]


@pytest.mark.django_db
def test_a_reused_stake_key_names_the_callers_key_only(expert_client, expert):
    factories.expert_deposit(expert, 100 * TOKEN)
    first = post_json(expert_client, "/api/v1/me/stake", {"amount": 10 * TOKEN}, HTTP_IDEMPOTENCY_KEY="s-1")
    assert first.status_code == 201, first.content
    error = error_of(post_json(expert_client, "/api/v1/me/stake", {"amount": 20 * TOKEN},
                               HTTP_IDEMPOTENCY_KEY="s-1"), status=409)
    assert "'s-1'" in error["message"] and "bond:" not in error["message"]


# --- the test database ---------------------------------------------------------------------------


def test_the_test_database_is_named_after_database_url():
    assert database_test_name("feedback") == "test_feedback"
    assert database_test_name("feedback", "") == "test_feedback"
    assert database_test_name("feedback", "test_mine") == "test_mine"


@pytest.mark.django_db
def test_this_run_uses_the_test_database_its_environment_names():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    database = environ.Env.db_url_config(os.environ["DATABASE_URL"])["NAME"]
    assert connection.settings_dict["NAME"] == (os.environ.get("DATABASE_TEST_NAME") or f"test_{database}")


LEAKY_TEST = '''
import threading
import pytest
from django.db import connections

from conftest import django_db_setup  # noqa: F401  (the repository's teardown, as for any test in the tree)

held = []

@pytest.mark.django_db(transaction=True)
def test_a_thread_leaves_its_connection_open():
    def work():
        connections["default"].cursor().execute("SELECT 1")
        held.append(connections["default"])  # never closed: the session stays open after the test
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
'''


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_run_drops_its_test_database_even_with_a_session_left_open(tmp_path):
    """pytest-django only warns when the drop fails, so a thread's open session used to leave it behind."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    name = f"test_h_drop_{os.getpid()}"
    (tmp_path / "test_leaky.py").write_text(textwrap.dedent(LEAKY_TEST))
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error::pytest.PytestWarning",
         "--rootdir", str(root), "-c", str(root / "pytest.ini"), str(tmp_path / "test_leaky.py")],
        cwd=root, env={**os.environ, "DATABASE_TEST_NAME": name}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "teardown test databases" not in result.stdout + result.stderr
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name])
        assert cursor.fetchone()[0] == 0


@pytest.mark.django_db
def test_a_dispute_statement_must_be_a_string_and_ids_fit_bigint(expert_client):
    statement = post_json(expert_client, "/api/v1/disputes", {"kind": "slash", "statement": 10**40, "slash": 1})
    assert error_of(statement) == {"field": "statement", "message": "Must be a string."}
    slash = post_json(expert_client, "/api/v1/disputes", {"kind": "slash", "statement": "x" * 40, "slash": 10**24})
    assert error_of(slash)["field"] == "slash"


@pytest.mark.django_db
def test_a_fraction_must_be_a_number_not_true(lab_client):
    response = post_json(lab_client, "/api/v1/campaigns/", {"name": "n", "domain": "medicine", "gold_bar": True})
    assert error_of(response) == {"field": "gold_bar", "message": "A valid number is required."}


@pytest.mark.django_db
def test_next_with_a_campaign_id_beyond_bigint_is_a_400_on_the_token_lane(expert):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(expert.user)}")
    assert error_of(post_json(client, NEXT, {"campaign": 10**24}))["field"] == "campaign"
