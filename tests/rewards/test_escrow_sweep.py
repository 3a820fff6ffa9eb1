"""campaign_escrow_sweep: money landing in a closed, fully settled campaign's escrow goes back to the lab."""
from __future__ import annotations

import pytest

from annotations.models import Campaign
from rewards import ledger, services
from rewards.models import Epoch, LedgerTransaction
from rewards.selectors import ledger_differences
from tests import factories

pytestmark = pytest.mark.django_db
TOKEN = 1_000_000


def _funded(amount: int = 10 * TOKEN, **kwargs) -> Campaign:
    campaign = factories.CampaignFactory(**kwargs)
    factories.lab_deposit(campaign.lab, amount)
    services.campaign_fund(campaign=campaign, amount=amount, actor=None)
    return campaign


def test_the_sweep_leaves_an_open_campaigns_escrow_alone():
    campaign = _funded(status=Campaign.Status.OPEN)

    assert services.campaign_escrow_sweep(campaign=campaign) is None
    assert ledger.escrow_account(campaign).balance == 10 * TOKEN


def test_the_sweep_waits_for_a_closed_campaigns_last_epoch():
    campaign = _funded()
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.CLOSED)
    epoch = factories.EpochFactory(campaign=campaign, index=0)  # still to settle: the experts' share stays

    assert services.campaign_escrow_sweep(campaign=campaign) is None
    assert ledger.escrow_account(campaign).balance == 10 * TOKEN

    Epoch.objects.filter(pk=epoch.pk).update(state=Epoch.State.SETTLED)
    posted = services.campaign_escrow_sweep(campaign=campaign)

    assert posted is not None and posted.created
    assert ledger.escrow_account(campaign).balance == 0
    assert ledger.lab_account(campaign.lab).balance == 10 * TOKEN
    assert services.campaign_escrow_sweep(campaign=campaign) is None  # once
    assert LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.REFUND).count() == 1
    assert ledger_differences() == []
