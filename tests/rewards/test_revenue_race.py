"""Double purchases race on PostgreSQL: the same Idempotency-Key from many threads buys once and pays once."""
from __future__ import annotations

import threading

import pytest
from django.db import connection

from exports.models import Export
from datavalue.models import DataValue
from rewards import ledger, revenue, selectors
from rewards.models import DataPurchase, LedgerTransaction
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
THREADS = 8
PRICE = 10_000


@pytest.fixture(autouse=True)
def _postgres_only(settings, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("race test needs PostgreSQL (set DATABASE_URL)")
    settings.DATADAO_EXPORT_ROOT = str(tmp_path)


def test_concurrent_retries_of_one_order_buy_once_and_pay_the_contributors_once():
    campaign = factories.open_campaign(data_for_sale=True, data_price=PRICE, treasury_fee_bps=0)
    experts = [factories.ExpertFactory() for _ in range(2)]
    for n in range(4):
        task = factories.TaskFactory(campaign=campaign)
        for expert in experts:
            factories.rated_judgment(task=task, expert=expert, ranks=[1, 2])
    buyer = factories.LabFactory()
    user = factories.lab_member(buyer)
    factories.lab_deposit(buyer, 5 * PRICE)
    start = threading.Barrier(THREADS)
    results, errors = [], []
    lock = threading.Lock()

    def order() -> None:
        try:
            start.wait()
            result = revenue.data_purchase_create(buyer=buyer, campaign_id=campaign.pk, user=user, use="research",
                                                  format="judgments", client_key="po-42")
            with lock:
                results.append(result)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=order) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors, errors
    assert sum(r.created for r in results) == 1 and len({r.purchase.pk for r in results}) == 1
    assert DataPurchase.objects.count() == 1 and Export.objects.count() == 1
    assert selectors.lab_balance(lab=buyer) == 4 * PRICE
    purchase = DataPurchase.objects.get()
    assert purchase.state == "settled" and purchase.basis == "work"  # no data value computed: split by work
    assert [selectors.expert_balances(expert=e).available for e in experts] == [PRICE // 2] * 2
    assert ledger.sales_account(campaign).balance == 0
    assert LedgerTransaction.objects.filter(idempotency_key__startswith=f"purchase:{purchase.pk}:").count() == 2
    assert not DataValue.objects.exists()
    assert selectors.ledger_differences() == []
