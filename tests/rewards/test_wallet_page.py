"""The expert wallet page: balances, stake and unstake forms, history, earnings, claim download."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from rewards import services, settlement
from rewards.merkle import verify_claim
from rewards.selectors import expert_balances
from tests import factories

pytestmark = pytest.mark.django_db
TOKEN = 1_000_000


@pytest.fixture
def browser(client, expert):
    client.force_login(expert.user)
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_wallet_shows_balances_and_the_release_date(browser, expert):
    factories.expert_deposit(expert, 50 * TOKEN)
    services.stake_bond(expert=expert, amount=20 * TOKEN)
    unbonding = services.stake_unbond(expert=expert, amount=5 * TOKEN)

    page = browser.get("/wallet/").content.decode()

    assert "30.00 DDF" in page and "15.00 DDF" in page and "5.00 DDF" in page
    assert f"released {unbonding.releases_at:%Y-%m-%d %H:%M} UTC" in page


def test_stake_form_bonds_tokens_typed_in_tokens(browser, expert):
    factories.expert_deposit(expert, 50 * TOKEN)

    response = browser.post("/wallet/stake", {"stake-amount": "12.5"}, follow=True)

    assert messages_of(response) == ["Staked 12.50 DDF."]
    assert expert_balances(expert=expert).bonded == 12_500_000


def test_stake_form_explains_what_went_wrong(browser, expert):
    factories.expert_deposit(expert, 5 * TOKEN)

    too_much = browser.post("/wallet/stake", {"stake-amount": "6"}, follow=True)
    garbage = browser.post("/wallet/stake", {"stake-amount": "1.0000001"}, follow=True)

    assert messages_of(too_much) == ["Could not stake: insufficient balance: you have 5.00 DDF available."]
    assert messages_of(garbage) == ["Amount: at most 6 decimal places"]
    assert expert_balances(expert=expert).bonded == 0


def test_unstake_form_starts_the_cooldown(browser, expert):
    factories.expert_deposit(expert, 50 * TOKEN)
    services.stake_bond(expert=expert, amount=20 * TOKEN)

    response = browser.post("/wallet/unstake", {"unstake-amount": "20"}, follow=True)
    again = browser.post("/wallet/unstake", {"unstake-amount": "1"}, follow=True)

    assert messages_of(response)[0].startswith("Unbonding 20.00 DDF; it is released on ")
    assert messages_of(again)[0].startswith("Could not unstake: already unbonding")
    assert expert_balances(expert=expert).unbonding == 20 * TOKEN


def test_forms_need_the_csrf_token(expert):
    factories.expert_deposit(expert, 50 * TOKEN)
    client = Client(enforce_csrf_checks=True)
    client.force_login(expert.user)

    assert client.post("/wallet/stake", {"stake-amount": "10"}).status_code == 403
    assert expert_balances(expert=expert).bonded == 0


def test_history_is_paginated_and_shows_only_my_entries(browser, expert):
    factories.expert_deposit(expert, 100 * TOKEN)
    for _ in range(30):
        services.stake_bond(expert=expert, amount=TOKEN)  # 60 entries on my accounts
    factories.expert_deposit(factories.ExpertFactory(), 777 * TOKEN)

    first = browser.get("/wallet/")
    last = browser.get("/wallet/?page=3")

    assert len(first.context["page"].object_list) == 25
    assert first.context["page"].paginator.count == 61
    assert "777.00 DDF" not in first.content.decode() + last.content.decode()
    assert "+100.00 DDF" in last.content.decode()


def test_earnings_and_the_claim_proof_download(browser, expert):
    expert.wallet_address = factories.wallet("me")
    expert.save()
    peers = [factories.ExpertFactory() for _ in range(2)]
    campaign = factories.CampaignFactory(reward_per_judgment=TOKEN, name="Clinical safety")
    factories.lab_deposit(campaign.lab, 100 * TOKEN)
    services.campaign_fund(campaign=campaign, amount=100 * TOKEN, actor=None)
    at = timezone.now() - timedelta(days=2)
    for k in range(20):  # enough agreement to clear the pay rule's skeptical prior
        task = factories.TaskFactory(campaign=campaign)
        for e in [expert, *peers]:
            factories.rated_judgment(task=task, expert=e, ranks=[1, 2] if k % 2 else [2, 1], submitted_at=at)
    epoch = settlement.epoch_settle(epoch_id=factories.EpochFactory(campaign=campaign, index=0).pk)

    page = browser.get("/wallet/").content.decode()
    download = browser.get(f"/wallet/claims/{epoch.pk}.json")

    assert "Clinical safety" in page and "20.00 DDF" in page and "claim proof (JSON)" in page
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    claim = json.loads(download.content)
    assert (claim["address"], claim["amount"]) == (expert.wallet_address, 20 * TOKEN)
    assert verify_claim(claim["merkle_root"], claim["index"], claim["address"], claim["amount"], claim["proof"])
    # A peer without a wallet has no claim to download.
    peer_browser = Client()
    peer_browser.force_login(peers[0].user)
    assert peer_browser.get(f"/wallet/claims/{epoch.pk}.json").status_code == 404


def test_the_wallet_is_for_experts(client, lab_user):
    assert client.get("/wallet/").status_code == 302  # to the login page
    client.force_login(lab_user)
    assert client.get("/wallet/").status_code == 403
    assert client.post("/wallet/stake", {"stake-amount": "1"}).status_code == 403
