"""Revenue sharing: integer split by data value less the treasury fee; one idempotent ledger posting per export."""
from __future__ import annotations

import pytest

from annotations.models import DataValue, Export
from rewards import selectors
from rewards.models import Account, LedgerTransaction
from rewards.revenue import revenue_share_post, revenue_split
from tests import factories


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


@pytest.mark.django_db
def test_posting_pays_contributors_and_treasury_once_per_export(lab):
    campaign = factories.open_campaign(lab=lab, treasury_fee_bps=1000)
    buyer = factories.LabFactory()
    factories.lab_deposit(buyer, 5_000)
    a, b = factories.ExpertFactory(), factories.ExpertFactory()
    from django.utils import timezone

    for expert, total in ((a, 0.3), (b, 0.1)):
        DataValue.objects.create(campaign=campaign, expert=expert, handle=f"r-{expert.pk}", total=total,
                                 mean=total, n_pairs=1, computed_at=timezone.now())
    export = Export.objects.create(campaign=campaign, format=Export.Format.JUDGMENTS)
    treasury_before = Account.objects.filter(kind=Account.Kind.TREASURY).values_list("balance", flat=True).first() or 0

    first = revenue_share_post(export=export, paying_lab=buyer, amount=4_000)
    again = revenue_share_post(export=export, paying_lab=buyer, amount=4_000)

    assert first.created and not again.created and again.transaction_id == first.transaction_id
    assert selectors.lab_balance(lab=buyer) == 1_000
    assert selectors.expert_balances(expert=a).available == 2_700
    assert selectors.expert_balances(expert=b).available == 900
    assert Account.objects.get(kind=Account.Kind.TREASURY).balance - treasury_before == 400
    assert LedgerTransaction.objects.filter(idempotency_key=f"revenue:export:{export.pk}").count() == 1
