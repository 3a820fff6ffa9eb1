"""The campaign funding page of the lab console: balances, escrow, and funding through ``campaign_fund``
with a per-form idempotency key, so a form sent twice funds once."""
from __future__ import annotations

import html
import re

import pytest

from annotations.models import Campaign
from rewards import selectors
from rewards.amounts import format_amount
from rewards.models import LedgerTransaction
from tests import factories

pytestmark = pytest.mark.django_db
TOKEN = 1_000_000


@pytest.fixture
def funded_lab(lab):
    factories.lab_deposit(lab, 10 * TOKEN)
    return lab


@pytest.fixture
def member(client, lab_user):
    client.force_login(lab_user)
    return client


def _text(response) -> str:
    return html.unescape(response.content.decode())


def _key(page) -> str:
    return re.search(r'name="key" value="([0-9a-f]+)"', page.content.decode()).group(1)


def test_the_page_shows_the_labs_balance_and_the_escrow(member, funded_lab):
    campaign = factories.CampaignFactory(lab=funded_lab, name="Contract clauses")
    page = member.get(f"/wallet/campaigns/{campaign.pk}/fund/")
    assert page.status_code == 200
    text = _text(page)
    assert format_amount(10 * TOKEN) in text and "Nothing has moved through this campaign's escrow yet." in text
    assert f'href="/labs/campaigns/{campaign.pk}/"' in text  # back to the console
    assert _key(page) != _key(member.get(f"/wallet/campaigns/{campaign.pk}/fund/"))  # a key per render


def test_the_same_form_sent_twice_funds_once(member, funded_lab):
    campaign = factories.CampaignFactory(lab=funded_lab)
    url = f"/wallet/campaigns/{campaign.pk}/fund/"
    key = _key(member.get(url))
    first = member.post(url, {"amount": "2.5", "key": key})
    assert first.status_code == 302 and first["Location"] == url
    assert f"Funded {format_amount(2_500_000)}" in _text(member.get(url))
    second = member.post(url, {"amount": "2.5", "key": key})
    assert second.status_code == 302
    assert "it funded once and nothing more moved" in _text(member.get(url))
    assert selectors.escrow_balance(campaign=campaign) == 2_500_000
    assert selectors.lab_balance(lab=funded_lab) == 7_500_000
    assert LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.FUND, campaign=campaign).count() == 1

    member.post(url, {"amount": "1", "key": _key(member.get(url))})  # a new form funds again
    assert selectors.escrow_balance(campaign=campaign) == 3_500_000
    history = _text(member.get(url))
    assert history.count("Campaign funding") == 2 and f"+{format_amount(TOKEN)}" in history


def test_refusals_are_shown_on_the_page(member, funded_lab):
    campaign = factories.CampaignFactory(lab=funded_lab)
    url = f"/wallet/campaigns/{campaign.pk}/fund/"
    typo = member.post(url, {"amount": "ten", "key": "k1"})
    assert typo.status_code == 400 and "Amount: enter an amount such as 12.5" in _text(typo)
    too_much = member.post(url, {"amount": "11", "key": "k2"})
    assert too_much.status_code == 400
    assert (f"the lab's balance is too low; top it up first: the balance is {format_amount(10 * TOKEN)}"
            in _text(too_much))
    reused = member.post(url, {"amount": "1", "key": "k3"})
    assert reused.status_code == 302
    conflict = member.post(url, {"amount": "2", "key": "k3"})
    assert conflict.status_code == 409 and "'k3' was already used for a different funding" in _text(conflict)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.CLOSED)
    closed = member.post(url, {"amount": "1", "key": "k4"})
    assert closed.status_code == 409 and "the campaign is closed; it takes no more funds." in _text(closed)
    assert selectors.escrow_balance(campaign=campaign) == TOKEN


def test_only_members_of_the_campaigns_lab_see_the_page(client, funded_lab):
    campaign = factories.CampaignFactory(lab=funded_lab)
    url = f"/wallet/campaigns/{campaign.pk}/fund/"
    for user in (factories.lab_member(), factories.ExpertFactory().user, factories.rewards_moderator()):
        client.force_login(user)
        assert client.get(url).status_code == 404
        assert client.post(url, {"amount": "1", "key": "outsider"}).status_code == 404
    assert selectors.escrow_balance(campaign=campaign) == 0
    client.logout()
    assert client.get(url).status_code == 302
