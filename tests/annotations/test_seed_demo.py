"""`make demo` seeds a usable product: open funded campaigns, vetted staked experts, a token."""
import pytest
from django.core.management import call_command

from annotations.models import Campaign, Expert, Task
from rewards import selectors
from rewards.models import LedgerTransaction

pytestmark = pytest.mark.django_db


def test_seed_demo_is_complete_and_idempotent(capsys):
    call_command("seed_demo", tasks=30)
    call_command("seed_demo", tasks=30)
    out = capsys.readouterr().out
    assert "Lab API token:" in out and "demo-password-123" in out
    campaigns = Campaign.objects.filter(lab__slug="acme-ai")
    assert {c.status for c in campaigns} == {"open"} and campaigns.count() == 2
    assert Task.objects.filter(campaign__in=campaigns).count() == 60
    unit = 10**6
    assert all(selectors.escrow_balance(campaign=c) == 1_000 * unit for c in campaigns)
    experts = Expert.objects.filter(state=Expert.State.VETTED)
    assert experts.count() == 3
    assert all(selectors.expert_bonded_stake(expert=e) == 50 * unit for e in experts)
    # Running it twice posted nothing twice, and the books balance.
    assert LedgerTransaction.objects.count() == 1 + 3 * 2 + 2
    assert selectors.ledger_differences() == []
