"""The lab's money pages beside the funding page: the lab ledger (balance and history, 50 lines a page) and a
campaign's data-sale settings, set through the API's serializer and service, so a refusal reads as the API's."""
from __future__ import annotations

import html
import re

import pytest
from rest_framework.test import APIClient

from annotations.models import Campaign
from exports.models import Export
from rewards import services
from rewards.amounts import format_amount
from rewards.models import DataPurchase
from rewards.views import LAB_ENTRIES_PER_PAGE
from tests import factories

pytestmark = pytest.mark.django_db
TOKEN = 1_000_000


@pytest.fixture
def member(client, lab_user):
    client.force_login(lab_user)
    return client


def _text(response) -> str:
    return html.unescape(response.content.decode())


def _rows(response) -> list[str]:
    table = re.search(r'<table id="lab-entries">.*?</table>', response.content.decode(), re.DOTALL)
    return re.findall(r"<tr>\s*<td>.*?</tr>", table.group(0), re.DOTALL) if table else []


def _api_messages(user, campaign: Campaign, body: dict) -> tuple[int, list[str]]:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(user)}")
    response = api.post(f"/api/v1/campaigns/{campaign.pk}/data-sale", body, format="json")
    return response.status_code, [error["message"] for error in response.json()["errors"]]


# --------------------------------------------------------------------------
# The lab ledger
# --------------------------------------------------------------------------


def test_a_member_sees_the_labs_balance_and_its_history_newest_first(member, lab_user, lab):
    factories.lab_deposit(lab, 10 * TOKEN, reference="invoice-2024-06")
    campaign = factories.CampaignFactory(lab=lab, name="Contract clauses")
    services.campaign_fund(campaign=campaign, amount=2_500_000, actor=lab_user)
    page = member.get("/wallet/lab/")
    assert page.status_code == 200
    text = _text(page)
    assert f"{lab.name}'s balance" in text and format_amount(7_500_000) in text
    funding, topup = _rows(page)
    assert "Campaign funding" in funding and "Funding of campaign Contract clauses" in funding
    assert f"-{format_amount(2_500_000)}" in html.unescape(funding)
    assert f'href="/wallet/campaigns/{campaign.pk}/fund/"' in funding  # the campaign, linked to its escrow
    assert "Lab top-up" in topup and "invoice-2024-06" in topup and f"+{format_amount(10 * TOKEN)}" in topup
    assert 'href="/wallet/lab/"' in _text(member.get("/labs/campaigns/"))  # the menu's "Ledger"


def test_the_history_is_paginated_fifty_lines_a_page(member, lab):
    moderator = factories.rewards_moderator()
    for n in range(LAB_ENTRIES_PER_PAGE + 3):
        services.lab_topup(lab=lab, amount=TOKEN, reference=f"deposit-{n:03d}", actor=moderator)
    first = member.get("/wallet/lab/")
    rows = _rows(first)
    assert len(rows) == LAB_ENTRIES_PER_PAGE
    assert "deposit-052" in rows[0] and "deposit-003" in rows[-1]
    assert "page 1 of 2" in _text(first) and f'href="?lab={lab.pk}&amp;page=2"' in first.content.decode()
    second = member.get(f"/wallet/lab/?lab={lab.pk}&page=2")
    assert [re.search(r"deposit-\d+", row).group(0) for row in _rows(second)] == [
        "deposit-002", "deposit-001", "deposit-000"]
    assert "page 2 of 2" in _text(second) and f'href="?lab={lab.pk}&amp;page=1"' in second.content.decode()
    assert format_amount((LAB_ENTRIES_PER_PAGE + 3) * TOKEN) in _text(second)


def test_a_lab_with_no_movements_shows_an_empty_history(member, lab):
    page = member.get("/wallet/lab/")
    assert page.status_code == 200
    text = _text(page)
    assert f"Nothing has moved through {lab.name}'s balance yet." in text
    assert format_amount(0) in text and not _rows(page)


def test_a_member_of_several_labs_picks_one(client, lab):
    second = factories.LabFactory(name="Zeta Lab")
    user = factories.lab_member(lab)
    second.members.add(user)
    factories.lab_deposit(second, 3 * TOKEN, reference="zeta-deposit")
    client.force_login(user)
    default = client.get("/wallet/lab/")
    assert f"Ledger: {lab.name}" in _text(default) and "zeta-deposit" not in _text(default)
    assert f'href="?lab={second.pk}"' in default.content.decode()
    chosen = client.get(f"/wallet/lab/?lab={second.pk}")
    assert "Ledger: Zeta Lab" in _text(chosen) and "zeta-deposit" in _text(chosen)
    assert client.get("/wallet/lab/?lab=nonsense").status_code == 404


def test_only_lab_members_see_a_labs_ledger(client, lab):
    factories.lab_deposit(lab, 10 * TOKEN, reference="secret-invoice")
    other_member = factories.lab_member()
    client.force_login(other_member)
    assert client.get(f"/wallet/lab/?lab={lab.pk}").status_code == 404
    own = client.get("/wallet/lab/")
    assert own.status_code == 200 and "secret-invoice" not in _text(own)
    for user in (factories.ExpertFactory().user, factories.rewards_moderator()):
        client.force_login(user)
        assert client.get("/wallet/lab/").status_code == 404
        assert client.get(f"/wallet/lab/?lab={lab.pk}").status_code == 404
    client.logout()
    assert client.get("/wallet/lab/").status_code == 302


# --------------------------------------------------------------------------
# Data-sale settings
# --------------------------------------------------------------------------


def test_the_console_links_to_the_data_sale_page(member, lab):
    campaign = factories.CampaignFactory(lab=lab)
    console = member.get(f"/labs/campaigns/{campaign.pk}/").content.decode()
    assert f'href="/wallet/campaigns/{campaign.pk}/data-sale/"' in console


def test_the_page_shows_the_settings_and_saves_a_valid_form(member, lab):
    campaign = factories.CampaignFactory(lab=lab, name="Contract clauses", licence="CC-BY-4.0",
                                         allowed_uses=["research"])
    url = f"/wallet/campaigns/{campaign.pk}/data-sale/"
    page = member.get(url)
    assert page.status_code == 200
    text = _text(page)
    assert "CC-BY-4.0" in text and "Allowed uses: research" in text and "No lab has bought" in text
    assert 'name="for_sale"' in text and 'name="price"' in text

    saved = member.post(url, {"for_sale": "on", "price": str(5 * TOKEN)})
    assert saved.status_code == 302 and saved["Location"] == url
    campaign.refresh_from_db()
    assert campaign.data_for_sale and campaign.data_price == 5 * TOKEN
    after = _text(member.get(url))
    assert f"is for sale at {format_amount(5 * TOKEN)} an export" in after
    assert 'value="5000000"' in after and "checked" in after

    off = member.post(url, {"price": str(5 * TOKEN)})  # the box left unticked takes the data off sale
    assert off.status_code == 302
    campaign.refresh_from_db()
    assert not campaign.data_for_sale and campaign.data_price == 5 * TOKEN


@pytest.mark.parametrize(("licence", "form", "body"), [
    ("CC-BY-4.0", {"for_sale": "on", "price": "-1"}, {"for_sale": True, "price": -1}),
    ("CC-BY-4.0", {"for_sale": "on", "price": "lots"}, {"for_sale": True, "price": "lots"}),
    ("CC-BY-4.0", {"for_sale": "on", "price": "0"}, {"for_sale": True, "price": 0}),
    ("CC-BY-ND-4.0", {"for_sale": "on", "price": "1000"}, {"for_sale": True, "price": 1000}),
    ("Acme Data Licence", {"for_sale": "on", "price": "1000"}, {"for_sale": True, "price": 1000}),
])
def test_a_refused_form_shows_the_apis_message_and_saves_nothing(member, lab_user, lab, licence, form, body):
    campaign = factories.CampaignFactory(lab=lab, licence=licence, data_price=7)
    status, api_messages = _api_messages(lab_user, campaign, body)
    assert status == 400 and api_messages
    page = member.post(f"/wallet/campaigns/{campaign.pk}/data-sale/", form)
    assert page.status_code == status
    text = _text(page)
    for message in api_messages:
        assert message in text
    campaign.refresh_from_db()
    assert not campaign.data_for_sale and campaign.data_price == 7


def test_a_refused_licence_is_explained_before_any_form_is_sent(member, lab):
    campaign = factories.CampaignFactory(lab=lab, licence="Acme Data Licence")
    text = _text(member.get(f"/wallet/campaigns/{campaign.pk}/data-sale/"))
    assert "Not for sale under this licence: the campaign's licence (Acme Data Licence) is not one" in text


def test_the_page_shows_the_sales_so_far_without_naming_buyers(member, lab):
    campaign = factories.open_campaign(lab=lab, data_for_sale=True, data_price=TOKEN)
    buyer = factories.LabFactory(name="Buyer Lab Q9")
    export = Export.objects.create(campaign=campaign, format="trl_preference", state="running")
    DataPurchase.objects.create(buyer=buyer, campaign=campaign, export=export, price=TOKEN, fee_bps=500,
                                use="research", licence=campaign.licence)
    text = _text(member.get(f"/wallet/campaigns/{campaign.pk}/data-sale/"))
    purchases = re.search(r'id="sales-purchases">(\d+)<', text).group(1)
    assert purchases == "1" and format_amount(TOKEN) in text and "Buyer Lab Q9" not in text


def test_only_members_of_the_campaigns_lab_see_or_set_its_sale(client, lab):
    campaign = factories.CampaignFactory(lab=lab)
    url = f"/wallet/campaigns/{campaign.pk}/data-sale/"
    for user in (factories.lab_member(), factories.ExpertFactory().user, factories.rewards_moderator()):
        client.force_login(user)
        assert client.get(url).status_code == 404
        assert client.post(url, {"for_sale": "on", "price": "1000"}).status_code == 404
    campaign.refresh_from_db()
    assert not campaign.data_for_sale and campaign.data_price == 0
    client.logout()
    assert client.get(url).status_code == 302
