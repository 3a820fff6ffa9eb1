"""Epoch settlement: the split, dust, stake weighting, slashing, exactly-once, claims, epochs and close."""
from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from annotations.models import Campaign, Judgment
from annotations.services import ServiceError, campaign_transition
from rewards import ledger, services, settlement
from rewards.merkle import verify_claim
from rewards.models import Account, Epoch, EpochClaim, EpochReward, LedgerTransaction, Slash
from rewards.selectors import expert_balances, ledger_differences
from rewards.tasks import epochs_roll, settle_epoch
from tests import factories

pytestmark = pytest.mark.django_db
Kind = LedgerTransaction.Kind
TOKEN = 1_000_000
TRUTH = [[1, 2], [2, 1]]  # task k: the better response is position k % 2


def available(expert) -> int:
    return expert_balances(expert=expert).available


def escrow(campaign) -> int:
    return ledger.escrow_account(campaign).balance


def treasury() -> int:
    return ledger.treasury_account().balance


def funded_campaign(*, escrow_amount: int, reward_per_judgment: int = TOKEN, **kwargs) -> Campaign:
    campaign = factories.CampaignFactory(reward_per_judgment=reward_per_judgment, **kwargs)
    factories.lab_deposit(campaign.lab, escrow_amount)
    services.campaign_fund(campaign=campaign, amount=escrow_amount, actor=None)
    return campaign


def rate(campaign, experts_and_votes, *, tasks: int = 10, at=None, tasks_list=None):
    """Each (expert, "truth" | "contrarian" | "always-first") rates the same tasks."""
    at = at or timezone.now() - timedelta(days=3)
    task_rows = tasks_list or [factories.TaskFactory(campaign=campaign) for _ in range(tasks)]
    for expert, style in experts_and_votes:
        for k, task in enumerate(task_rows):
            truth = TRUTH[k % 2]
            ranks = {"truth": truth, "contrarian": truth[::-1], "always-first": [1, 2]}[style]
            factories.rated_judgment(task=task, expert=expert, ranks=list(ranks), submitted_at=at)
    return task_rows


@pytest.fixture
def honest():
    return [factories.ExpertFactory() for _ in range(3)]


@pytest.fixture
def contrarian():
    return factories.ExpertFactory()


def test_budget_is_split_by_quality_and_dust_goes_to_the_treasury(honest, contrarian):
    campaign = funded_campaign(escrow_amount=200 * TOKEN, reward_per_judgment=TOKEN + 2)
    tasks = rate(campaign, [(e, "truth") for e in honest[:2]] + [(contrarian, "contrarian")], tasks=40)
    rate(campaign, [(honest[2], "truth")], tasks_list=tasks[:38])
    rate(campaign, [(honest[2], "contrarian")], tasks_list=tasks[38:39])  # one slip
    epoch = factories.EpochFactory(campaign=campaign, index=0)

    settled = settlement.epoch_settle(epoch_id=epoch.pk)

    # The lab pays for the 119 judgments that earn; the contrarian's 40 stay in escrow for it.
    # Equal quality would split by judgments exactly; the slip makes the shares uneven, leaving dust.
    budget = 119 * (TOKEN + 2)
    paid = [available(e) for e in honest]
    assert (settled.state, settled.budget) == ("settled", budget)
    assert paid[0] == paid[1] > paid[2] > 0  # less work, and a slip, earn less
    assert available(contrarian) == 0  # agreeing with nobody earns nothing
    assert 0 < settled.dust < 3 and treasury() == settled.dust
    assert sum(paid) + settled.dust == budget == settled.paid_total + settled.dust
    assert escrow(campaign) == 200 * TOKEN - budget
    assert escrow(campaign) == 200 * TOKEN - budget
    # The epoch's ledger entries out of escrow sum exactly to the budget.
    out = sum(
        -amount for amount in ledger.escrow_account(campaign).entries.filter(
            transaction__epoch=epoch).values_list("amount", flat=True)
    )
    assert out == budget
    assert ledger_differences() == []


def test_herding_on_one_answer_earns_nothing(honest):
    # "Always the first response" agrees with the consensus half the time, by chance only.
    herder = factories.ExpertFactory()
    campaign = funded_campaign(escrow_amount=100 * TOKEN)
    rate(campaign, [(e, "truth") for e in honest] + [(herder, "always-first")])
    epoch = factories.EpochFactory(campaign=campaign, index=0)

    settlement.epoch_settle(epoch_id=epoch.pk)

    reward = EpochReward.objects.get(epoch=epoch, expert=herder)
    assert reward.agreement == pytest.approx(0.5)
    assert reward.amount == 0
    assert available(herder) == 0
    assert all(available(e) > 0 for e in honest)


def test_budget_is_capped_by_the_escrow(honest):
    campaign = funded_campaign(escrow_amount=9 * TOKEN)  # 30 judgments would cost 30 tokens
    rate(campaign, [(e, "truth") for e in honest])
    epoch = factories.EpochFactory(campaign=campaign, index=0)

    settled = settlement.epoch_settle(epoch_id=epoch.pk)

    assert settled.budget == 9 * TOKEN
    assert [available(e) for e in honest] == [3 * TOKEN] * 3
    assert escrow(campaign) == 0


def test_voided_judgments_earn_nothing(honest):
    campaign = funded_campaign(escrow_amount=100 * TOKEN)
    # Two raters left per task: enough tasks for their agreement to clear the pay rule's skeptical prior.
    rate(campaign, [(e, "truth") for e in honest], tasks=30)
    Judgment.objects.filter(expert=honest[0]).update(voided=True, voided_reason="copied rationale")
    epoch = factories.EpochFactory(campaign=campaign, index=0)

    settled = settlement.epoch_settle(epoch_id=epoch.pk)

    assert settled.budget == 60 * TOKEN
    assert available(honest[0]) == 0
    assert available(honest[1]) == available(honest[2]) == 30 * TOKEN


def test_when_nobody_clears_the_quality_bar_the_budget_stays_in_escrow():
    raters = [factories.ExpertFactory() for _ in range(2)]
    campaign = funded_campaign(escrow_amount=50 * TOKEN)
    rate(campaign, [(raters[0], "truth"), (raters[1], "contrarian")])  # they only contradict each other
    epoch = factories.EpochFactory(campaign=campaign, index=0)

    settled = settlement.epoch_settle(epoch_id=epoch.pk)

    # Nobody earns, so the lab pays for nothing: the epoch's budget is 0 and the escrow untouched.
    assert (settled.budget, settled.paid_total, settled.dust, settled.retained) == (0, 0, 0, 0)
    assert escrow(campaign) == 50 * TOKEN
    assert treasury() == 0


def test_bonded_stake_raises_a_reward_at_most_to_twice():
    staker, whale, plain = (factories.ExpertFactory() for _ in range(3))
    for e, stake in [(staker, 10 * TOKEN), (whale, 10**6 * TOKEN)]:
        factories.expert_deposit(e, stake)
    campaign = funded_campaign(escrow_amount=1000 * TOKEN, min_stake=10 * TOKEN)
    start = timezone.now() - timedelta(days=7)
    with mock.patch("rewards.ledger.timezone.now", return_value=start - timedelta(days=1)):
        services.stake_bond(expert=staker, amount=10 * TOKEN)
        services.stake_bond(expert=whale, amount=10**6 * TOKEN)
    rate(campaign, [(e, "truth") for e in (staker, whale, plain)])
    epoch = factories.EpochFactory(campaign=campaign, index=0, starts_at=start)

    settlement.epoch_settle(epoch_id=epoch.pk)

    base = available(plain)
    assert base > 0
    # s = s_half gives g = 1.5; a whale's g approaches but never reaches 2.
    assert available(staker) == pytest.approx(1.5 * base, rel=1e-6)
    assert 1.99 * base < available(whale) < 2 * base


def test_stake_counts_by_time_bonded_not_by_the_balance_at_the_end():
    early, late = factories.ExpertFactory(), factories.ExpertFactory()
    for e in (early, late):
        factories.expert_deposit(e, 10 * TOKEN)
    campaign = funded_campaign(escrow_amount=1000 * TOKEN, min_stake=10 * TOKEN)
    start = timezone.now() - timedelta(days=7)
    with mock.patch("rewards.ledger.timezone.now", return_value=start):
        services.stake_bond(expert=early, amount=10 * TOKEN)
    with mock.patch("rewards.ledger.timezone.now", return_value=start + timedelta(days=7) - timedelta(hours=1)):
        services.stake_bond(expert=late, amount=10 * TOKEN)  # an hour before the epoch ends
    rate(campaign, [(early, "truth"), (late, "truth"), (factories.ExpertFactory(), "truth")])
    epoch = factories.EpochFactory(campaign=campaign, index=0, starts_at=start)

    settlement.epoch_settle(epoch_id=epoch.pk)

    rewards = {r.expert_id: r for r in EpochReward.objects.filter(epoch=epoch)}
    assert rewards[early.pk].stake == pytest.approx(10 * TOKEN)
    assert rewards[late.pk].stake == pytest.approx(10 * TOKEN / (7 * 24), rel=1e-6)
    assert rewards[early.pk].amount > rewards[late.pk].amount * 1.4


def test_failing_gold_slashes_the_stake_once(honest):
    cheat = factories.ExpertFactory()
    factories.expert_deposit(cheat, 100 * TOKEN)
    services.stake_bond(expert=cheat, amount=100 * TOKEN)
    campaign = funded_campaign(escrow_amount=200 * TOKEN, slash_fraction=0.1, gold_bar=0.7)
    rate(campaign, [(e, "truth") for e in honest + [cheat]])
    at = timezone.now() - timedelta(days=2)
    for _ in range(settlement.SLASH_MIN_GOLD):
        gold = factories.GoldTaskFactory(campaign=campaign)
        factories.rated_judgment(task=gold, expert=cheat, ranks=[2, 1], submitted_at=at, gold_correct=False)
    epoch = factories.EpochFactory(campaign=campaign, index=0)

    settlement.epoch_settle(epoch_id=epoch.pk)
    Epoch.objects.filter(pk=epoch.pk).update(state=Epoch.State.SETTLING)  # as if a re-run after a crash
    settlement.epoch_settle(epoch_id=epoch.pk)

    slash = Slash.objects.get(expert=cheat)
    assert (slash.bonded_amount, slash.epoch_id) == (10 * TOKEN, epoch.pk)
    # Slashed in the epoch: nothing earned for it, though the cheat's ten non-gold answers matched the consensus.
    reward = EpochReward.objects.get(epoch=epoch, expert=cheat)
    assert (reward.slashed, reward.amount, reward.weight) == (True, 0, 0.0)
    assert available(cheat) == 0 and all(available(e) > 0 for e in honest)
    assert expert_balances(expert=cheat).bonded == 90 * TOKEN
    assert treasury() >= 10 * TOKEN
    assert not Slash.objects.exclude(expert=cheat).exists()
    assert ledger_differences() == []


# --------------------------------------------------------------------------
# Exactly once
# --------------------------------------------------------------------------


def test_settling_twice_pays_once(honest):
    campaign = funded_campaign(escrow_amount=100 * TOKEN)
    rate(campaign, [(e, "truth") for e in honest])
    epoch = factories.EpochFactory(campaign=campaign, index=0)

    settlement.epoch_settle(epoch_id=epoch.pk)
    settle_epoch.delay(epoch.pk)  # the Celery task, run again

    assert [available(e) for e in honest] == [10 * TOKEN] * 3
    assert LedgerTransaction.objects.filter(kind=Kind.REWARD).count() == 3


def test_a_crash_mid_settlement_then_a_rerun_pays_each_expert_exactly_once(settings):
    experts = [factories.ExpertFactory() for _ in range(7)]
    campaign = funded_campaign(escrow_amount=1000 * TOKEN)
    rate(campaign, [(e, "truth") for e in experts], tasks=12)
    epoch = factories.EpochFactory(campaign=campaign, index=0)
    real_post_chunk = settlement._post_chunk
    calls = []

    def crash_on_third_chunk(postings):
        calls.append(len(postings))
        if len(calls) == 3:
            raise SystemExit("worker killed")
        real_post_chunk(postings)

    with mock.patch.object(settlement, "_post_chunk", crash_on_third_chunk), pytest.raises(SystemExit):
        settlement.epoch_settle(epoch_id=epoch.pk, chunk_size=2)
    epoch.refresh_from_db()
    assert epoch.state == Epoch.State.SETTLING
    assert sum(1 for e in experts if available(e) > 0) == 4  # two chunks committed

    # Moderation between the crash and the retry must not change what the plan pays.
    Judgment.objects.filter(expert=experts[-1]).update(voided=True)
    settlement.epoch_settle(epoch_id=epoch.pk, chunk_size=2)

    epoch.refresh_from_db()
    assert epoch.state == Epoch.State.SETTLED
    assert [available(e) for e in experts] == [12 * TOKEN] * 7
    keys = list(LedgerTransaction.objects.filter(kind=Kind.REWARD).values_list("idempotency_key", flat=True))
    assert sorted(keys) == sorted(settlement.reward_key(epoch.pk, e.pk) for e in experts)
    assert ledger_differences() == []


def test_an_epoch_that_has_not_ended_is_not_settled(honest):
    campaign = funded_campaign(escrow_amount=10 * TOKEN)
    epoch = factories.EpochFactory(campaign=campaign, index=0, starts_at=timezone.now() - timedelta(days=1))
    with pytest.raises(ServiceError, match="runs until"):
        settlement.epoch_settle(epoch_id=epoch.pk)
    assert Epoch.objects.get(pk=epoch.pk).state == Epoch.State.OPEN


def test_epochs_settle_in_order():
    campaign = funded_campaign(escrow_amount=10 * TOKEN)
    start = timezone.now() - timedelta(days=14)
    first = factories.EpochFactory(campaign=campaign, index=0, starts_at=start)
    second = factories.EpochFactory(campaign=campaign, index=1, starts_at=start + timedelta(days=7))
    with pytest.raises(settlement.EpochNotReady):
        settlement.epoch_settle(epoch_id=second.pk)
    settlement.epoch_settle(epoch_id=first.pk)
    assert settlement.epoch_settle(epoch_id=second.pk).state == Epoch.State.SETTLED


# --------------------------------------------------------------------------
# Merkle claims
# --------------------------------------------------------------------------


def test_experts_with_a_wallet_are_paid_through_a_verifiable_claim(honest):
    honest[0].wallet_address = factories.wallet("ada")
    honest[0].save()
    campaign = funded_campaign(escrow_amount=100 * TOKEN)
    rate(campaign, [(e, "truth") for e in honest])
    epoch = factories.EpochFactory(campaign=campaign, index=0)

    settled = settlement.epoch_settle(epoch_id=epoch.pk)

    claim = EpochClaim.objects.get(epoch=epoch)
    assert (claim.address, claim.amount) == (honest[0].wallet_address, 10 * TOKEN)
    assert verify_claim(settled.merkle_root, claim.index, claim.address, claim.amount, claim.proof_hex)
    # Claimable on-chain, so not spendable here as well: never paid twice.
    assert available(honest[0]) == 0
    assert available(honest[1]) == 10 * TOKEN
    kinds = list(ledger.expert_account(honest[0], Account.Kind.AVAILABLE).entries.order_by("id")
                 .values_list("transaction__kind", "amount"))
    assert kinds == [(Kind.REWARD, 10 * TOKEN), (Kind.CLAIM, -10 * TOKEN)]
    assert settled.claims_total == 10 * TOKEN


def test_claims_publish_one_root_for_every_wallet(honest):
    for k, e in enumerate(honest):
        e.wallet_address = factories.wallet(k)
        e.save()
    campaign = funded_campaign(escrow_amount=100 * TOKEN)
    rate(campaign, [(e, "truth") for e in honest])
    epoch = factories.EpochFactory(campaign=campaign, index=0)

    settled = settlement.epoch_settle(epoch_id=epoch.pk)

    claims = list(EpochClaim.objects.filter(epoch=epoch))
    assert len(claims) == 3
    for claim in claims:
        assert verify_claim(settled.merkle_root, claim.index, claim.address, claim.amount, claim.proof_hex)
    assert not verify_claim(settled.merkle_root, claims[0].index, claims[0].address, claims[0].amount + 1,
                            claims[0].proof_hex)


# --------------------------------------------------------------------------
# Quality inputs
# --------------------------------------------------------------------------


def test_quality_inputs_use_the_leave_one_out_consensus(honest, contrarian):
    campaign = factories.CampaignFactory()
    rate(campaign, [(e, "truth") for e in honest] + [(contrarian, "contrarian")], tasks=4)
    epoch = factories.EpochFactory(campaign=campaign, index=0)

    inputs = {i.expert_id: i for i in settlement._quality_inputs(epoch)}

    assert (inputs[honest[0].pk].matches, inputs[honest[0].pk].n_compared) == (4, 4)
    assert (inputs[contrarian.pk].matches, inputs[contrarian.pk].n_compared) == (0, 4)
    assert inputs[honest[0].pk].f_rater == 0.5 and inputs[honest[0].pk].n == 4


def test_quality_inputs_count_only_the_epochs_judgments_but_compare_with_all(honest):
    campaign = factories.CampaignFactory()
    tasks = [factories.TaskFactory(campaign=campaign) for _ in range(2)]
    rate(campaign, [(honest[0], "truth"), (honest[1], "truth")], tasks_list=tasks,
         at=timezone.now() - timedelta(days=10))  # before the epoch
    rate(campaign, [(honest[2], "truth")], tasks_list=tasks)
    epoch = factories.EpochFactory(campaign=campaign, index=0)

    inputs = settlement._quality_inputs(epoch)

    assert [(i.expert_id, i.n, i.matches, i.n_compared) for i in inputs] == [(honest[2].pk, 2, 2, 2)]


# --------------------------------------------------------------------------
# Epoch lifecycle and the close hook
# --------------------------------------------------------------------------


def test_roll_tiles_epochs_from_the_opening_and_queues_the_due_ones(settings):
    settings.DATADAO_EPOCH_DAYS = 7
    opened = timezone.now() - timedelta(days=15)
    campaign = factories.CampaignFactory(status=Campaign.Status.OPEN, opened_at=opened)

    due = settlement.campaign_epochs_roll(campaign=campaign)

    epochs = list(Epoch.objects.filter(campaign=campaign).order_by("index"))
    assert [(e.starts_at, e.ends_at) for e in epochs] == [
        (opened + timedelta(days=7 * k), opened + timedelta(days=7 * (k + 1))) for k in range(3)
    ]
    assert due == [epochs[0].pk, epochs[1].pk]
    assert settlement.campaign_epochs_roll(campaign=campaign) == due  # idempotent


def test_roll_task_settles_due_epochs(honest, settings, django_capture_on_commit_callbacks):
    campaign = funded_campaign(escrow_amount=100 * TOKEN, status=Campaign.Status.OPEN,
                               opened_at=timezone.now() - timedelta(days=8))
    rate(campaign, [(e, "truth") for e in honest], at=timezone.now() - timedelta(days=7, hours=12))

    with django_capture_on_commit_callbacks(execute=True):
        epochs_roll.delay()

    first = Epoch.objects.get(campaign=campaign, index=0)
    assert first.state == Epoch.State.SETTLED
    assert [available(e) for e in honest] == [10 * TOKEN] * 3
    assert Epoch.objects.get(campaign=campaign, index=1).state == Epoch.State.OPEN


def test_roll_ends_an_epoch_early_when_its_work_would_spend_the_escrow(honest):
    campaign = funded_campaign(escrow_amount=20 * TOKEN, status=Campaign.Status.OPEN,
                               opened_at=timezone.now() - timedelta(days=2))
    rate(campaign, [(e, "truth") for e in honest], at=timezone.now() - timedelta(days=1))  # 30 tokens of work

    due = settlement.campaign_epochs_roll(campaign=campaign)

    first = Epoch.objects.get(campaign=campaign, index=0)
    assert due == [first.pk]
    assert Epoch.objects.get(campaign=campaign, index=1).starts_at == first.ends_at


def test_closing_a_campaign_settles_its_last_epoch_then_refunds_the_rest(
    honest, django_capture_on_commit_callbacks,
):
    lab = factories.LabFactory()
    campaign = funded_campaign(escrow_amount=100 * TOKEN, lab=lab, status=Campaign.Status.OPEN,
                               opened_at=timezone.now() - timedelta(days=3), task_count=10)
    rate(campaign, [(e, "truth") for e in honest], at=timezone.now() - timedelta(days=1))

    with django_capture_on_commit_callbacks(execute=True):
        campaign_transition(campaign=campaign, action="close")

    assert [available(e) for e in honest] == [10 * TOKEN] * 3
    assert escrow(campaign) == 0
    assert ledger.lab_account(lab).balance == 70 * TOKEN  # 100 funded, 30 earned by experts
    assert Epoch.objects.get(campaign=campaign).state == Epoch.State.SETTLED
    assert ledger_differences() == []


def test_closing_a_campaign_that_never_ran_refunds_at_once():
    campaign = funded_campaign(escrow_amount=25 * TOKEN)

    campaign_transition(campaign=campaign, action="close")

    assert escrow(campaign) == 0
    assert ledger.lab_account(campaign.lab).balance == 25 * TOKEN
    assert LedgerTransaction.objects.filter(kind=Kind.REFUND).count() == 1
    assert services.campaign_escrow_refund(campaign=campaign) is None  # nothing left: nothing moves


# --------------------------------------------------------------------------
# Data value as a reward multiplier
# --------------------------------------------------------------------------


def _values(campaign, per_pair: dict) -> None:
    from annotations.handles import rater_handle
    from datavalue.models import DataValue

    for expert, mean in per_pair.items():
        DataValue.objects.create(campaign=campaign, expert=expert, handle=rater_handle(campaign.pk, expert.pk),
                                 total=mean * 10, mean=mean, n_pairs=10, computed_at=timezone.now())


def test_with_data_value_weighting_a_more_valuable_rater_earns_more_than_an_identical_one(honest):
    campaign = funded_campaign(escrow_amount=100 * TOKEN, data_value_weighting=True)
    rate(campaign, [(e, "truth") for e in honest])
    high, low, unvalued = honest
    _values(campaign, {high: 0.375, low: 0.125})  # mean positive value 0.25: multipliers 1.5 and 0.5
    epoch = factories.EpochFactory(campaign=campaign, index=0)

    settlement.epoch_settle(epoch_id=epoch.pk)

    # Same work and agreement; the 30-token budget splits 1.5 : 0.5 : 1 (not valued yet counts 1).
    assert [available(e) for e in (high, low, unvalued)] == [15 * TOKEN, 5 * TOKEN, 10 * TOKEN]
    factors = dict(EpochReward.objects.filter(epoch=epoch).values_list("expert_id", "value_factor"))
    assert factors == {high.pk: pytest.approx(1.5), low.pk: pytest.approx(0.5), unvalued.pk: 1.0}
    assert ledger_differences() == []


def test_without_data_value_weighting_data_values_change_nothing(honest):
    campaign = funded_campaign(escrow_amount=100 * TOKEN)
    rate(campaign, [(e, "truth") for e in honest])
    _values(campaign, {honest[0]: 0.3, honest[1]: -0.1})
    epoch = factories.EpochFactory(campaign=campaign, index=0)

    settlement.epoch_settle(epoch_id=epoch.pk)

    assert [available(e) for e in honest] == [10 * TOKEN] * 3
    assert set(EpochReward.objects.filter(epoch=epoch).values_list("value_factor", flat=True)) == {1.0}
