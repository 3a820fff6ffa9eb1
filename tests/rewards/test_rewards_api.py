"""Rewards API: /me/, /me/ledger, campaign funding, Merkle claims. Who may call what."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from rewards import ledger, services, settlement
from rewards.merkle import verify_claim
from tests import factories

pytestmark = pytest.mark.django_db
TOKEN = 1_000_000


# --------------------------------------------------------------------------
# /me/
# --------------------------------------------------------------------------


def test_me_needs_a_login(api_client):
    assert api_client.get("/api/v1/me/").status_code == 401


def test_me_shows_an_expert_their_balances(expert_client, expert):
    factories.expert_deposit(expert, 50 * TOKEN)
    services.stake_bond(expert=expert, amount=20 * TOKEN)
    unbonding = services.stake_unbond(expert=expert, amount=5 * TOKEN)

    body = expert_client.get("/api/v1/me/").json()

    assert body["username"] == expert.user.username
    assert "expert" in body["roles"]
    assert body["token"] == {"symbol": "DDF", "decimals": 6}
    assert body["expert"]["balances"]["available"] == 30 * TOKEN
    assert body["expert"]["balances"]["bonded"] == 15 * TOKEN
    assert body["expert"]["balances"]["unbonding"] == 5 * TOKEN
    assert body["expert"]["balances"]["unbonding_releases_at"].startswith(unbonding.releases_at.strftime("%Y-%m-%d"))
    assert body["labs"] == []


def test_me_shows_a_lab_its_balance_and_escrows(lab_client, lab, campaign):
    factories.lab_deposit(lab, 80 * TOKEN)
    services.campaign_fund(campaign=campaign, amount=30 * TOKEN, actor=None)

    body = lab_client.get("/api/v1/me/").json()

    assert body["expert"] is None
    [lab_row] = body["labs"]
    assert (lab_row["slug"], lab_row["balance"]) == (lab.slug, 50 * TOKEN)
    assert lab_row["campaigns"] == [{"id": campaign.pk, "name": campaign.name, "status": "draft", "escrow": 30 * TOKEN}]


# --------------------------------------------------------------------------
# /me/ledger
# --------------------------------------------------------------------------


def test_my_ledger_lists_only_my_own_entries(expert_client, expert):
    other = factories.ExpertFactory()
    factories.expert_deposit(expert, 7 * TOKEN)
    factories.expert_deposit(other, 9 * TOKEN)
    services.stake_bond(expert=other, amount=9 * TOKEN)

    body = expert_client.get("/api/v1/me/ledger").json()

    assert body["count"] == 1
    [entry] = body["results"]
    assert (entry["account"], entry["amount"], entry["kind"]) == ("available", 7 * TOKEN, "topup")


def test_my_ledger_is_paginated_newest_first_and_filterable(expert_client, expert):
    factories.expert_deposit(expert, 100 * TOKEN)
    for k in range(1, 5):
        services.stake_bond(expert=expert, amount=k * TOKEN)

    page = expert_client.get("/api/v1/me/ledger?page_size=3").json()
    bonded = expert_client.get("/api/v1/me/ledger?account=bonded").json()

    assert page["count"] == 9 and len(page["results"]) == 3 and page["next"]
    assert [e["amount"] for e in bonded["results"]] == [4 * TOKEN, 3 * TOKEN, 2 * TOKEN, 1 * TOKEN]
    assert expert_client.get("/api/v1/me/ledger?account=treasury").json()["count"] == 0
    assert expert_client.get("/api/v1/me/ledger?account=nonsense").status_code == 400


def test_a_lab_sees_its_lab_and_escrow_entries_but_no_expert_identity(lab_client, lab, campaign):
    factories.lab_deposit(lab, 10 * TOKEN)
    services.campaign_fund(campaign=campaign, amount=4 * TOKEN, actor=None)
    factories.expert_deposit(factories.ExpertFactory(), TOKEN)  # someone else's money

    body = lab_client.get("/api/v1/me/ledger").json()

    assert sorted((e["account"], e["amount"]) for e in body["results"]) == [
        ("escrow", 4 * TOKEN), ("lab", -4 * TOKEN), ("lab", 10 * TOKEN),
    ]
    fields = {"id", "created_at", "account", "campaign", "amount", "kind", "memo", "transaction", "epoch"}
    assert all(set(e) == fields for e in body["results"])  # no idempotency keys, no expert ids


def test_anonymous_users_have_no_ledger(api_client):
    assert api_client.get("/api/v1/me/ledger").status_code == 401


# --------------------------------------------------------------------------
# Funding
# --------------------------------------------------------------------------


def test_a_lab_member_funds_their_campaign(lab_client, lab, campaign):
    factories.lab_deposit(lab, 10 * TOKEN)

    response = lab_client.post(f"/api/v1/campaigns/{campaign.pk}/fund", {"amount": 6 * TOKEN}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["campaign"], body["amount"], body["lab_balance"], body["escrow_balance"]) == (
        campaign.pk, 6 * TOKEN, 4 * TOKEN, 6 * TOKEN,
    )


def test_funding_another_labs_campaign_is_not_found(other_lab_client, lab, campaign):
    factories.lab_deposit(lab, 10 * TOKEN)
    response = other_lab_client.post(f"/api/v1/campaigns/{campaign.pk}/fund", {"amount": TOKEN}, format="json")
    assert response.status_code == 404
    assert ledger.escrow_account(campaign).balance == 0


def test_experts_and_strangers_cannot_fund(expert_client, api_client, campaign):
    assert expert_client.post(f"/api/v1/campaigns/{campaign.pk}/fund", {"amount": 1}, format="json").status_code == 403
    assert api_client.post(f"/api/v1/campaigns/{campaign.pk}/fund", {"amount": 1}, format="json").status_code == 401


def test_funding_beyond_the_lab_balance_is_explained(lab_client, lab, campaign):
    factories.lab_deposit(lab, 2 * TOKEN)

    response = lab_client.post(f"/api/v1/campaigns/{campaign.pk}/fund", {"amount": 3 * TOKEN}, format="json")

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == "amount"
    assert "2.00 DDF" in error["message"] and "top it up" in error["message"]


def test_a_closed_campaign_takes_no_funds(lab_client, lab, campaign):
    factories.lab_deposit(lab, 2 * TOKEN)
    campaign.status = campaign.Status.CLOSED
    campaign.save()
    response = lab_client.post(f"/api/v1/campaigns/{campaign.pk}/fund", {"amount": TOKEN}, format="json")
    assert response.status_code == 409


def test_a_retried_fund_request_with_its_idempotency_key_funds_once(lab_client, lab, campaign):
    factories.lab_deposit(lab, 10 * TOKEN)
    url = f"/api/v1/campaigns/{campaign.pk}/fund"

    first = lab_client.post(url, {"amount": 3 * TOKEN}, format="json", HTTP_IDEMPOTENCY_KEY="po-1234")
    retry = lab_client.post(url, {"amount": 3 * TOKEN}, format="json", HTTP_IDEMPOTENCY_KEY="po-1234")
    changed = lab_client.post(url, {"amount": 5 * TOKEN}, format="json", HTTP_IDEMPOTENCY_KEY="po-1234")

    assert (first.status_code, retry.status_code, changed.status_code) == (201, 200, 409)
    assert retry.json()["transaction"] == first.json()["transaction"]
    assert ledger.escrow_account(campaign).balance == 3 * TOKEN


# --------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------


@pytest.fixture
def settled_epoch_with_claims():
    experts = [factories.ExpertFactory(wallet_address=factories.wallet(k)) for k in range(3)]
    campaign = factories.CampaignFactory(reward_per_judgment=TOKEN)
    factories.lab_deposit(campaign.lab, 100 * TOKEN)
    services.campaign_fund(campaign=campaign, amount=100 * TOKEN, actor=None)
    at = timezone.now() - timedelta(days=2)
    for k in range(20):  # enough agreement to clear the pay rule's skeptical prior
        task = factories.TaskFactory(campaign=campaign)
        for e in experts:
            factories.rated_judgment(task=task, expert=e, ranks=[1, 2] if k % 2 else [2, 1], submitted_at=at)
    epoch = factories.EpochFactory(campaign=campaign, index=0)
    return settlement.epoch_settle(epoch_id=epoch.pk), experts


def test_anyone_can_fetch_a_claim_and_its_proof_verifies(api_client, settled_epoch_with_claims):
    epoch, experts = settled_epoch_with_claims

    response = api_client.get(f"/api/v1/epochs/{epoch.pk}/claims/{experts[1].wallet_address}")

    assert response.status_code == 200
    body = response.json()
    assert body["amount"] == 20 * TOKEN and body["merkle_root"] == epoch.merkle_root
    assert verify_claim(body["merkle_root"], body["index"], body["address"], body["amount"], body["proof"])


def test_a_claim_is_found_whatever_the_address_case(api_client, settled_epoch_with_claims):
    epoch, experts = settled_epoch_with_claims
    response = api_client.get(f"/api/v1/epochs/{epoch.pk}/claims/{experts[0].wallet_address.lower()}")
    assert response.status_code == 200
    assert response.json()["address"] == experts[0].wallet_address


def test_no_claim_is_a_404(api_client, settled_epoch_with_claims):
    epoch, _ = settled_epoch_with_claims
    assert api_client.get(f"/api/v1/epochs/{epoch.pk}/claims/{factories.wallet('nobody')}").status_code == 404
    assert api_client.get(f"/api/v1/epochs/{epoch.pk}/claims/not-an-address").status_code == 404
    assert api_client.get(f"/api/v1/epochs/{epoch.pk + 1}/claims/{factories.wallet(0)}").status_code == 404
