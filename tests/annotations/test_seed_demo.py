"""`make demo` seeds a usable product: open funded campaigns, vetted staked experts, a token."""
from collections import Counter

import pytest
from django.core.management import call_command

from annotations import experts as experts_services
from annotations.models import Campaign, Expert, QualityReport, Response, Task, TaskConsensus
from rewards import selectors
from rewards.models import Epoch, EpochClaim, EpochReward, LedgerTransaction

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
    # Funded with 1,000 each; last week's settled epoch paid part of it out.
    assert all(0 < selectors.escrow_balance(campaign=c) < 1_000 * unit for c in campaigns)
    experts = Expert.objects.filter(state=Expert.State.VETTED)
    assert experts.count() == 8
    assert all(selectors.expert_bonded_stake(expert=e) >= 50 * unit for e in experts)
    # Running it twice posted nothing twice, and the books balance.
    posted = LedgerTransaction.objects.count()
    call_command("seed_demo", tasks=30)
    assert LedgerTransaction.objects.count() == posted
    assert selectors.ledger_differences() == []


def test_seeded_demo_shows_the_whole_cycle():
    call_command("seed_demo", tasks=60)
    for campaign in Campaign.objects.filter(lab__slug="acme-ai"):
        # Enough experts for the overlap, so last week's tasks completed with a consensus.
        raters = [e for e in Expert.objects.filter(state=Expert.State.VETTED) if campaign.domain in e.domains]
        assert len(raters) >= campaign.overlap
        complete = Task.objects.filter(campaign=campaign, state=Task.State.COMPLETE)
        assert complete.count() >= 10
        assert TaskConsensus.objects.filter(task__campaign=campaign).count() >= complete.count()
        assert QualityReport.objects.filter(campaign=campaign).exists()
        # A settled week with earnings and a Merkle claim.
        settled = Epoch.objects.filter(campaign=campaign, state=Epoch.State.SETTLED)
        assert settled.exists()
        assert EpochReward.objects.filter(epoch__in=settled, amount__gt=0).count() >= campaign.overlap
        assert EpochClaim.objects.filter(epoch__in=settled).exists()
        # No task text repeats: each case is its own.
        prompts = [str(p) for p in Task.objects.filter(campaign=campaign).values_list("prompt", flat=True)]
        assert len(set(prompts)) == len(prompts) == 60
        # No boilerplate ending shared by the answers.
        endings = Counter([line for line in t.splitlines() if line.strip() and not line.startswith("```")][-1] for t in
                          Response.objects.filter(task__campaign=campaign).values_list("text", flat=True))
        assert endings.most_common(1)[0][1] < 30
        names = set(Response.objects.filter(task__campaign=campaign).values_list("model_name", flat=True))
        assert not any(n.endswith("-model") for n in names) and len(names) > 2
    # A qualification test exists for each domain offered: the applicant can start one.
    newcomer = Expert.objects.get(user__username="newcomer")
    for domain in {c.domain for c in Campaign.objects.filter(lab__slug="acme-ai")}:
        attempt = experts_services.qualification_start(expert=newcomer, domain=domain)
        assert attempt.items.count() == experts_services.qualification_items()
