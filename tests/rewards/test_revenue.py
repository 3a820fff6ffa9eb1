"""Revenue sharing: a lab buys an export of another lab's campaign; the price goes through escrow to the
contributors of the exported rows by data value, less the treasury fee, exactly once."""
from __future__ import annotations

from collections import Counter

import orjson
import pytest
from django.utils import timezone

from exports.contributors import export_contributions
from annotations.handles import rater_handle
from annotations.licences import licence_allows_sale, sale_refusal
from exports.models import Export
from datavalue.models import DataValue
from rewards import ledger, revenue, selectors
from rewards.models import Account, DataPurchase, LedgerTransaction
from rewards.revenue import revenue_split
from rewards.tasks import purchase_settle, purchases_settle_due
from tests import factories
from tests.exports.export_data import scenario

PRICE = 10_000


# --------------------------------------------------------------------------
# Pure parts: the split and the licence rules
# --------------------------------------------------------------------------


def test_split_is_proportional_exact_and_ignores_non_positive_values():
    fee, shares = revenue_split(10_001, {1: 3.0, 2: 1.0, 3: -0.5, 4: 0.0}, 500)
    assert fee == 500
    assert shares == {1: 7126, 2: 2375}  # 9501 * 3/4 = 7125.75, 9501 / 4 = 2375.25: the leftover unit goes to 1
    assert fee + sum(shares.values()) == 10_001


def test_split_with_no_value_goes_to_the_treasury_and_leftovers_break_ties_by_id():
    assert revenue_split(100, {1: -1.0}, 500) == (100, {})
    assert revenue_split(0, {1: 1.0}, 500) == (0, {})
    assert revenue_split(10, {2: 1.0, 1: 1.0, 3: 1.0}, 0) == (0, {1: 4, 2: 3, 3: 3})
    with pytest.raises(ValueError):
        revenue_split(-1, {}, 0)


def test_licence_rules_for_a_sale():
    assert licence_allows_sale("CC-BY-4.0") is None and licence_allows_sale("cc0-1.0") is None
    assert "no derivatives" in licence_allows_sale("CC-BY-ND-4.0")
    assert "not one the platform can check" in licence_allows_sale("Acme Data Licence")
    ok = {"licence": "CC-BY-4.0", "allowed_uses": ["research", "commercial-training"]}
    assert sale_refusal(**ok, use="research") is None
    assert "may not be used for 'military'" in sale_refusal(**ok, use="military")
    assert "state the use" in sale_refusal(**ok, use=" ")
    assert sale_refusal(licence="CC-BY-4.0", allowed_uses=[], use="anything") is None
    nc = {"licence": "CC-BY-NC-4.0", "allowed_uses": []}
    assert sale_refusal(**nc, use="research") is None
    assert "non-commercial" in sale_refusal(**nc, use="commercial-training")


# --------------------------------------------------------------------------
# End to end through the API
# --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def export_root(settings, tmp_path):
    settings.DATADAO_EXPORT_ROOT = str(tmp_path / "exports")


@pytest.fixture
def seller(lab):
    """The scenario campaign of the export tests, for sale at PRICE with a 5% fee; data values per pair:
    good 0.3, fair 0.1, flagged 0.5 (but flagged raters are left out of exports by default)."""
    data = scenario(lab)
    campaign = data.campaign
    campaign.data_for_sale, campaign.data_price, campaign.treasury_fee_bps = True, PRICE, 500
    campaign.save()
    for name, mean in (("good", 0.3), ("fair", 0.1), ("flagged", 0.5)):
        expert = data.experts[name]
        DataValue.objects.create(campaign=campaign, expert=expert, handle=rater_handle(campaign.pk, expert.pk),
                                 total=mean * 10, mean=mean, n_pairs=10, computed_at=timezone.now())
    return data


@pytest.fixture
def buyer():
    lab = factories.LabFactory()
    user = factories.lab_member(lab)
    factories.lab_deposit(lab, 25_000)
    client = factories_client(user)
    return lab, client


def factories_client(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(user)}")
    return client


def _buy(client, campaign, capture, key="order-1", **body):
    body = {"use": "research", "format": "trl_preference", **body}
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    with capture(execute=True):
        return client.post(f"/api/v1/datasets/{campaign.pk}/purchases", body, format="json", **headers)


def _available(expert) -> int:
    return selectors.expert_balances(expert=expert).available


def _nothing_written(buyer_lab, balance_before):
    assert not DataPurchase.objects.exists()
    assert not Export.objects.exists()
    assert selectors.lab_balance(lab=buyer_lab) == balance_before
    assert not LedgerTransaction.objects.filter(kind__in=["purchase", "revenue"]).exists()
    assert not Account.objects.filter(kind=Account.Kind.SALES, balance__gt=0).exists()


def test_a_purchase_pays_the_contributors_of_the_exported_rows_by_data_value_less_the_fee(
        seller, buyer, django_capture_on_commit_callbacks):
    buyer_lab, client = buyer
    good, fair, flagged = (seller.experts[n] for n in ("good", "fair", "flagged"))
    treasury_before = ledger.treasury_account().balance

    response = _buy(client, seller.campaign, django_capture_on_commit_callbacks)

    assert response.status_code == 201, response.json()
    body = response.json()
    purchase = DataPurchase.objects.get(pk=body["id"])
    assert body["state"] == "escrowed" and body["price"] == PRICE  # as it stood when the request was answered
    assert (purchase.state, purchase.basis) == ("settled", "data_value")
    # Six exported tasks (clear-0..4 and chat), each judged by good and fair; flagged's task is left out.
    # Weights 6 x 0.3 and 6 x 0.1 share 9,500 after the 500 fee.
    assert _available(good) == 7_125 and _available(fair) == 2_375 and _available(flagged) == 0
    assert ledger.treasury_account().balance - treasury_before == 500
    assert (purchase.fee, purchase.paid_total, purchase.contributors) == (500, 9_500, 2)
    assert selectors.lab_balance(lab=buyer_lab) == 25_000 - PRICE
    assert ledger.sales_account(seller.campaign).balance == 0
    assert selectors.lab_balance(lab=seller.campaign.lab) == 0  # the seller lab is not paid: its contributors are
    kinds = Counter(LedgerTransaction.objects.filter(idempotency_key__startswith=f"purchase:{purchase.pk}:")
                    .values_list("kind", flat=True))
    assert kinds == {"purchase": 1, "revenue": 1}
    assert selectors.ledger_differences() == []

    detail = client.get(f"/api/v1/purchases/{purchase.pk}").json()
    assert detail["state"] == "settled" and detail["export"]["state"] == "done"
    assert detail["export"]["files"]["train"].endswith(f"/api/v1/purchases/{purchase.pk}/download")
    assert client.get("/api/v1/purchases").json()["count"] == 1


def test_retries_double_requests_and_reruns_move_money_once(seller, buyer, django_capture_on_commit_callbacks):
    buyer_lab, client = buyer
    first = _buy(client, seller.campaign, django_capture_on_commit_callbacks)
    again = _buy(client, seller.campaign, django_capture_on_commit_callbacks)
    purchase = DataPurchase.objects.get()
    balances = {e.pk: _available(e) for e in seller.experts.values()}
    transactions = LedgerTransaction.objects.count()

    revenue.data_purchase_settle(purchase_id=purchase.pk)
    purchase_settle(purchase.pk)
    purchase_settle.apply(args=[purchase.pk])
    assert purchases_settle_due() == 0

    assert first.status_code == 201 and again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert Export.objects.count() == 1 and DataPurchase.objects.count() == 1
    assert LedgerTransaction.objects.count() == transactions
    assert {e.pk: _available(e) for e in seller.experts.values()} == balances
    assert selectors.lab_balance(lab=buyer_lab) == 25_000 - PRICE
    # A new key is a new order.
    assert _buy(client, seller.campaign, django_capture_on_commit_callbacks, key="order-2").status_code == 201
    assert selectors.lab_balance(lab=buyer_lab) == 25_000 - 2 * PRICE


def test_the_buyer_downloads_the_export_with_rater_handles_only(seller, buyer, django_capture_on_commit_callbacks):
    _, client = buyer
    response = _buy(client, seller.campaign, django_capture_on_commit_callbacks, format="judgments")
    purchase_id = response.json()["id"]

    download = client.get(f"/api/v1/purchases/{purchase_id}/download")

    assert download.status_code == 200
    text = b"".join(download.streaming_content).decode()
    rows = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    handles = {rater_handle(seller.campaign.pk, e.pk): name for name, e in seller.experts.items()}
    assert rows and {handles[r["rater"]] for r in rows} == {"good", "fair"}  # the flagged rater is left out
    for expert in seller.experts.values():
        assert expert.user.username not in text and expert.user.email not in text
    # Paid by the rows delivered: each rater's judgments in the file, times their value per pair.
    per_rater = Counter(handles[r["rater"]] for r in rows)
    contributions = export_contributions(DataPurchase.objects.get(pk=purchase_id).export)
    assert contributions == {seller.experts[name].pk: n for name, n in per_rater.items()}
    assert client.get(f"/api/v1/purchases/{purchase_id}/download?part=card").status_code == 200
    # The seller's own export list shows the export; the buyer cannot reach it through /exports.
    assert client.get(f"/api/v1/exports/{DataPurchase.objects.get().export_id}/").status_code == 404


def test_a_use_the_licence_does_not_allow_is_refused_and_nothing_is_written(
        lab, buyer, django_capture_on_commit_callbacks):
    buyer_lab, client = buyer
    data = scenario(lab, licence="CC-BY-NC-4.0", allowed_uses=[])
    data.campaign.data_for_sale, data.campaign.data_price = True, PRICE
    data.campaign.save()

    response = _buy(client, data.campaign, django_capture_on_commit_callbacks, use="commercial-training")

    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["field"] == "use" and "non-commercial" in error["message"]
    _nothing_written(buyer_lab, 25_000)
    allowed = _buy(client, data.campaign, django_capture_on_commit_callbacks, key=None, use="military-targeting",
                   format="trl_preference")
    assert allowed.status_code == 201  # no allowed uses listed and a non-commercial use: the licence allows it


def test_a_campaign_not_for_sale_or_of_ones_own_lab_cannot_be_bought(
        seller, buyer, lab_client, django_capture_on_commit_callbacks):
    buyer_lab, client = buyer
    seller.campaign.data_for_sale = False
    seller.campaign.save()

    not_for_sale = _buy(client, seller.campaign, django_capture_on_commit_callbacks)
    missing = client.post("/api/v1/datasets/999999/purchases", {"use": "research", "format": "ranking"},
                          format="json")
    seller.campaign.data_for_sale = True
    seller.campaign.save()
    own = _buy(lab_client, seller.campaign, django_capture_on_commit_callbacks)

    assert not_for_sale.status_code == 404 and missing.status_code == 404
    assert own.status_code == 400 and own.json()["errors"][0]["field"] == "campaign"
    _nothing_written(buyer_lab, 25_000)
    assert client.get("/api/v1/datasets/").json()["count"] == 1
    assert lab_client.get("/api/v1/datasets/").json()["count"] == 0  # one's own campaigns are not offered


def test_insufficient_funds_is_a_402_and_writes_nothing(seller, django_capture_on_commit_callbacks):
    poor = factories.LabFactory()
    factories.lab_deposit(poor, PRICE - 1)
    client = factories_client(factories.lab_member(poor))

    response = _buy(client, seller.campaign, django_capture_on_commit_callbacks)

    assert response.status_code == 402
    error = response.json()["errors"][0]
    assert error["field"] == "price" and "insufficient balance" in error["message"]
    _nothing_written(poor, PRICE - 1)


def test_a_failed_export_refunds_the_buyer_once(seller, buyer, django_capture_on_commit_callbacks, monkeypatch):
    buyer_lab, client = buyer
    from exports import services as export_services

    def broken(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_services._Build, "run", broken)
    response = _buy(client, seller.campaign, django_capture_on_commit_callbacks)
    purchase = DataPurchase.objects.get(pk=response.json()["id"])

    revenue.data_purchase_settle(purchase_id=purchase.pk)

    assert purchase.export.state == "failed"
    purchase.refresh_from_db()
    assert purchase.state == "refunded"
    assert selectors.lab_balance(lab=buyer_lab) == 25_000
    assert all(_available(e) == 0 for e in seller.experts.values())
    assert LedgerTransaction.objects.filter(idempotency_key=f"purchase:{purchase.pk}:refund").count() == 1
    assert selectors.ledger_differences() == []


def test_settlement_waits_for_the_export_and_the_sweeper_settles_it(seller, buyer, django_capture_on_commit_callbacks):
    buyer_lab, _ = buyer
    user = buyer_lab.members.get()
    # Bought without running the build (no on_commit callbacks): the export stays queued.
    result = revenue.data_purchase_create(buyer=buyer_lab, campaign_id=seller.campaign.pk, user=user,
                                          use="research", format="ranking")
    with pytest.raises(revenue.PurchaseNotReady):
        revenue.data_purchase_settle(purchase_id=result.purchase.pk)
    assert purchases_settle_due() == 0 and ledger.sales_account(seller.campaign).balance == PRICE

    from exports.services import export_build

    export_build(export_id=result.purchase.export_id)
    assert purchases_settle_due() == 1
    result.purchase.refresh_from_db()
    assert result.purchase.state == "settled" and ledger.sales_account(seller.campaign).balance == 0


def test_without_data_values_the_price_is_split_by_exported_judgments(
        seller, buyer, django_capture_on_commit_callbacks):
    DataValue.objects.all().delete()
    _, client = buyer
    response = _buy(client, seller.campaign, django_capture_on_commit_callbacks)
    purchase = DataPurchase.objects.get(pk=response.json()["id"])
    assert purchase.basis == "work"
    assert _available(seller.experts["good"]) == _available(seller.experts["fair"]) == 4_750


# --------------------------------------------------------------------------
# The seller's side
# --------------------------------------------------------------------------


def test_the_owning_lab_offers_its_data_and_sees_its_sales(seller, lab_client, buyer,
                                                          django_capture_on_commit_callbacks):
    campaign = seller.campaign
    url = f"/api/v1/campaigns/{campaign.pk}/data-sale"
    off = lab_client.post(url, {"for_sale": False}, format="json")
    assert off.status_code == 200 and off.json()["for_sale"] is False
    no_price = lab_client.post(url, {"for_sale": True, "price": 0}, format="json")
    assert no_price.status_code == 400 and no_price.json()["errors"][0]["field"] == "price"
    on = lab_client.post(url, {"for_sale": True, "price": 2 * PRICE}, format="json").json()
    assert on["for_sale"] is True and on["price"] == 2 * PRICE and on["licence_refusal"] is None

    _, client = buyer
    assert _buy(client, campaign, django_capture_on_commit_callbacks).status_code == 201
    sales = lab_client.get(url).json()["sales"]
    assert sales == {"purchases": 1, "shared": 19_000, "fees": 1_000, "escrowed": 0, "refunded": 0}

    campaign.licence = "CC-BY-ND-4.0"
    campaign.save()
    refused = lab_client.post(url, {"for_sale": True, "price": PRICE}, format="json")
    assert refused.status_code == 400 and "no derivatives" in refused.json()["errors"][0]["message"]


def test_a_campaign_created_for_sale_needs_a_licence_that_allows_it(lab_client):
    body = {"name": "Contracts", "domain": "law", "data_for_sale": True, "data_price": PRICE}
    made = lab_client.post("/api/v1/campaigns/", body, format="json")
    assert made.status_code == 201 and made.json()["data_for_sale"] is True
    custom = lab_client.post("/api/v1/campaigns/", {**body, "licence": "Acme Data Licence"}, format="json")
    assert custom.status_code == 400 and custom.json()["errors"][0]["field"] == "licence"
