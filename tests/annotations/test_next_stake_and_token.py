"""The Next request reads the expert's bonded stake with its context (one statement, no cache: a stake that
falls below the campaign's minimum is refused on the very next request), and an API token is checked once
per request even when the fast lane hands the request to DRF."""
import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from rewards import selectors as rewards_selectors
from rewards import services as rewards_services
from tests import factories

pytestmark = pytest.mark.django_db

NEXT = "/api/v1/assignments/next"


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(user)}")
    return client


@pytest.mark.parametrize("as_string", [False, True], ids=["fast lane", "DRF (a numeric string)"])
def test_next_refuses_below_the_minimum_stake_at_once(expert, lab, as_string):
    unit = 10**settings.DATADAO_TOKEN_DECIMALS
    campaign = factories.open_campaign(lab=lab, min_stake=20 * unit)
    factories.TaskFactory(campaign=campaign)
    client = token_client(expert.user)
    # The fast lane takes an int id; DRF coerces a numeric string (the fast lane declines it).
    payload = {"campaign": str(campaign.pk) if as_string else campaign.pk}

    refused = client.post(NEXT, payload, format="json")
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["message"] == f"this campaign needs a bonded stake of {20 * unit}; you have 0."

    factories.expert_deposit(expert, 30 * unit)
    rewards_services.stake_bond(expert=expert, amount=25 * unit)
    assert client.post(NEXT, payload, format="json").status_code == 200

    rewards_services.stake_unbond(expert=expert, amount=10 * unit)
    stake = rewards_selectors.expert_bonded_stake(expert=expert)
    assert stake == 15 * unit
    again = client.post(NEXT, payload, format="json")
    assert again.status_code == 403
    assert again.json()["errors"][0]["message"] == f"this campaign needs a bonded stake of {20 * unit}; you have {stake}."


def test_a_campaign_without_minimum_ignores_the_stake(expert, open_campaign):
    factories.TaskFactory(campaign=open_campaign)
    assert open_campaign.min_stake == 0
    assert token_client(expert.user).post(NEXT, {"campaign": open_campaign.pk}, format="json").status_code == 200


def _token_reads(queries) -> int:
    return sum(1 for query in queries if "authtoken_token" in query["sql"])


@pytest.mark.skipif("connection.vendor != 'sqlite'", reason="the hot path's statements bypass the query log on "
                    "PostgreSQL (prepared through psycopg); SQLite logs them")
@pytest.mark.parametrize("valid, status", [(False, 400), (True, 200)], ids=["DRF takes over", "fast lane"])
def test_the_token_is_read_once_per_request(expert, open_campaign, valid, status):
    factories.TaskFactory(campaign=open_campaign)
    client = token_client(expert.user)
    body = {"campaign": open_campaign.pk if valid else "abc"}
    with CaptureQueriesContext(connection) as queries:
        response = client.post(NEXT, body, format="json")
    assert response.status_code == status
    assert _token_reads(queries.captured_queries) == 1


def test_a_bad_token_is_refused_with_drfs_words(expert, open_campaign):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-key")
    response = client.post(NEXT, {"campaign": open_campaign.pk}, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["errors"][0]["message"] == "Invalid token."
