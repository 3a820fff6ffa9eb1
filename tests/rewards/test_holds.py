"""Payout holds: quality flags hold an epoch reward until a moderator releases (pays) or forfeits it."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from annotations.handles import rater_handle
from annotations.models import AuditEvent, Campaign, Notification, RaterQuality
from annotations.services import ServiceError
from rewards import holds, ledger, selectors, services, settlement
from rewards.models import Epoch, EpochReward, LedgerTransaction
from rewards.selectors import expert_balances, ledger_differences
from tests import factories

pytestmark = pytest.mark.django_db
Kind = LedgerTransaction.Kind
HoldState = EpochReward.HoldState
TOKEN = 1_000_000
TRUTH = [[1, 2], [2, 1]]


def available(expert) -> int:
    return expert_balances(expert=expert).available


def funded_campaign(amount: int) -> Campaign:
    campaign = factories.CampaignFactory(reward_per_judgment=TOKEN)
    factories.lab_deposit(campaign.lab, amount)
    services.campaign_fund(campaign=campaign, amount=amount, actor=None)
    return campaign


def rate_truthfully(campaign, experts, *, at, tasks: int = 30) -> None:
    for k in range(tasks):
        task = factories.TaskFactory(campaign=campaign)
        for expert in experts:
            factories.rated_judgment(task=task, expert=expert, ranks=list(TRUTH[k % 2]), submitted_at=at)


def flag(campaign, expert, **flags) -> RaterQuality:
    evidence = {name: {"statistic": "z", "value": 6.2, "threshold": 4.0, "n": 40, "flagged": True} for name in flags}
    return RaterQuality.objects.create(
        campaign=campaign, expert=expert, handle=rater_handle(campaign.pk, expert.pk), flagged=True,
        computed_at=timezone.now(), evidence=evidence, **{f"flag_{name}": True for name in flags},
    )


def settle_holding(epoch: Epoch, held: dict) -> Epoch:
    """Settle through settlement's own steps, holding ``held`` (expert -> reasons) as the plan does.

    The plan stores holds itself (``holds.hold_reasons_for``); this sets them between plan and pay so the
    release and forfeit tests do not depend on how the plan writes its rows.
    """
    now = timezone.now()
    planned = settlement._plan(epoch.pk, now)
    for expert, reasons in held.items():
        reward = EpochReward.objects.get(epoch=epoch, expert=expert)
        assert reward.amount > 0 and reward.hold_state == HoldState.NONE
        EpochReward.objects.filter(pk=reward.pk).update(hold_state=HoldState.HELD, hold_reasons=reasons)
        Epoch.objects.filter(pk=epoch.pk).update(
            paid_total=F("paid_total") - reward.amount, held_total=F("held_total") + reward.amount,
            experts_paid=F("experts_paid") - 1,
        )
    planned.refresh_from_db()
    settlement._pay(planned, 100)
    return settlement._finish(epoch.pk, now)


@pytest.fixture
def moderator():
    return factories.rewards_moderator()


@pytest.fixture
def settled_with_hold():
    """Three honest experts; the fourth, as good, is held for collusion. Escrow funded for 100 judgments."""
    campaign = funded_campaign(300 * TOKEN)
    experts = [factories.ExpertFactory() for _ in range(4)]
    rate_truthfully(campaign, experts, at=timezone.now() - timedelta(days=3))
    epoch = settle_holding(factories.EpochFactory(campaign=campaign, index=0), {experts[3]: ["collusion"]})
    flag(campaign, experts[3], collusion=True)  # the evidence moderators read
    return campaign, epoch, experts, EpochReward.objects.get(epoch=epoch, expert=experts[3])


def reward_transactions(epoch) -> int:
    return LedgerTransaction.objects.filter(epoch=epoch, kind=Kind.REWARD).count()


# --------------------------------------------------------------------------
# Which flags hold pay
# --------------------------------------------------------------------------


def test_only_collusion_position_bias_speed_and_copied_rationales_hold_pay():
    campaign = factories.CampaignFactory()
    colluder, biased, gold_failer, outsider, clean = (factories.ExpertFactory() for _ in range(5))
    flag(campaign, colluder, collusion=True, speed=True)
    flag(campaign, biased, position_bias=True, copied_rationale=True)
    flag(campaign, gold_failer, gold=True)  # gold failure slashes instead
    flag(campaign, outsider, outside_expertise=True)
    flag(factories.CampaignFactory(), clean, collusion=True)  # another campaign's flag

    reasons = holds.hold_reasons_for(
        campaign_id=campaign.pk, expert_ids=[e.pk for e in (colluder, biased, gold_failer, outsider, clean)],
    )

    assert reasons == {colluder.pk: ["collusion", "speed"], biased.pk: ["position_bias", "copied_rationale"]}


# --------------------------------------------------------------------------
# Settlement
# --------------------------------------------------------------------------


def test_settlement_holds_a_flagged_experts_reward_and_still_settles():
    campaign = funded_campaign(300 * TOKEN)
    experts = [factories.ExpertFactory() for _ in range(4)]
    rate_truthfully(campaign, experts, at=timezone.now() - timedelta(days=3))
    flag(campaign, experts[3], position_bias=True)
    flag(campaign, experts[2], outside_expertise=True)  # not a reason to hold
    epoch = factories.EpochFactory(campaign=campaign, index=0)

    settled = settlement.epoch_settle(epoch_id=epoch.pk)

    held = EpochReward.objects.get(epoch=epoch, expert=experts[3])
    assert (held.hold_state, held.hold_reasons) == (HoldState.HELD, ["position_bias"])
    assert held.amount > 0 and available(experts[3]) == 0
    assert not LedgerTransaction.objects.filter(idempotency_key=settlement.reward_key(epoch.pk, experts[3].pk)).exists()
    assert all(available(e) > 0 for e in experts[:3])
    assert settled.state == Epoch.State.SETTLED
    assert (settled.held_total, settled.experts_paid) == (held.amount, 3)
    assert settled.paid_total == sum(available(e) for e in experts[:3])
    assert settled.paid_total + settled.held_total + settled.dust + settled.retained == settled.budget
    assert EpochReward.objects.get(epoch=epoch, expert=experts[2]).hold_state == HoldState.NONE
    assert ledger_differences() == []


def test_a_held_reward_is_not_paid_and_stays_reserved_in_escrow(settled_with_hold):
    campaign, epoch, experts, held = settled_with_hold

    assert epoch.state == Epoch.State.SETTLED
    assert available(experts[3]) == 0 and all(available(e) == held.amount for e in experts[:3])
    assert reward_transactions(epoch) == 3
    assert selectors.held_outstanding(campaign_id=campaign.pk) == held.amount
    assert ledger.escrow_account(campaign).balance == 300 * TOKEN - epoch.paid_total - epoch.dust

    again = settlement.epoch_settle(epoch_id=epoch.pk)  # a re-run pays nothing more

    assert again.state == Epoch.State.SETTLED and reward_transactions(epoch) == 3


# --------------------------------------------------------------------------
# Release
# --------------------------------------------------------------------------


def test_release_pays_the_reward_once_under_settlements_key(settled_with_hold, moderator):
    campaign, epoch, experts, held = settled_with_hold
    escrow_before = ledger.escrow_account(campaign).balance

    decision = holds.epoch_reward_release(reward_id=held.pk, moderator=moderator, note="false alarm: same lab team")

    posted = LedgerTransaction.objects.get(pk=decision.transaction_id)
    assert posted.idempotency_key == settlement.reward_key(epoch.pk, experts[3].pk)
    assert available(experts[3]) == held.amount
    assert ledger.escrow_account(campaign).balance == escrow_before - held.amount
    held.refresh_from_db()
    assert (held.hold_state, held.hold_resolved_by, held.hold_note) == (
        HoldState.RELEASED, moderator, "false alarm: same lab team")
    assert held.hold_resolved_at is not None
    assert selectors.held_outstanding(campaign_id=campaign.pk) == 0

    with pytest.raises(ServiceError) as again:
        holds.epoch_reward_release(reward_id=held.pk, moderator=moderator)
    with pytest.raises(ServiceError) as forfeit:
        holds.epoch_reward_forfeit(reward_id=held.pk, moderator=moderator)
    settlement.epoch_settle(epoch_id=epoch.pk)

    assert again.value.status == forfeit.value.status == 409
    assert "already resolved" in again.value.message
    assert available(experts[3]) == held.amount
    assert reward_transactions(epoch) == 4
    assert AuditEvent.objects.filter(action="payout.release", object_id=str(held.pk)).count() == 1
    assert not AuditEvent.objects.filter(action="payout.forfeit").exists()
    notes = Notification.objects.filter(user=experts[3].user)
    assert [n.kind for n in notes] == ["payout.released"]
    assert ledger_differences() == []


def test_a_release_while_the_epoch_is_settling_does_not_break_its_finish(moderator):
    campaign = funded_campaign(300 * TOKEN)
    experts = [factories.ExpertFactory() for _ in range(3)]
    rate_truthfully(campaign, experts, at=timezone.now() - timedelta(days=3))
    epoch = factories.EpochFactory(campaign=campaign, index=0)
    now = timezone.now()
    planned = settlement._plan(epoch.pk, now)
    reward = EpochReward.objects.get(epoch=epoch, expert=experts[0])
    EpochReward.objects.filter(pk=reward.pk).update(hold_state=HoldState.HELD, hold_reasons=["speed"])
    Epoch.objects.filter(pk=epoch.pk).update(paid_total=F("paid_total") - reward.amount,
                                             held_total=reward.amount, experts_paid=F("experts_paid") - 1)

    holds.epoch_reward_release(reward_id=reward.pk, moderator=moderator)  # before settlement pays anyone
    planned.refresh_from_db()
    settlement._pay(planned, 100)
    settled = settlement._finish(epoch.pk, now)

    assert settled.state == Epoch.State.SETTLED
    assert [available(e) for e in experts] == [reward.amount] * 3
    assert reward_transactions(epoch) == 3
    assert ledger_differences() == []


def test_a_later_epoch_cannot_spend_a_held_reward_and_settles_after_its_release(moderator):
    experts = [factories.ExpertFactory() for _ in range(3)]
    campaign = funded_campaign(90 * TOKEN)  # exactly epoch 0's work
    week = timedelta(days=7)
    now = timezone.now()
    rate_truthfully(campaign, experts, at=now - week - timedelta(days=3))
    first = factories.EpochFactory(campaign=campaign, index=0, starts_at=now - 2 * week, ends_at=now - week)
    second = factories.EpochFactory(campaign=campaign, index=1, starts_at=now - week, ends_at=now)
    settle_holding(first, {experts[0]: ["copied_rationale"]})
    held = EpochReward.objects.get(epoch=first, expert=experts[0])
    rate_truthfully(campaign, experts, at=now - timedelta(days=3))

    later = settlement.epoch_settle(epoch_id=second.pk)

    assert later.state == Epoch.State.SETTLED and later.paid_total == 0  # the escrow left is the held reward
    assert ledger.escrow_account(campaign).balance == held.amount

    holds.epoch_reward_release(reward_id=held.pk, moderator=moderator)

    assert available(experts[0]) == held.amount
    assert ledger.escrow_account(campaign).balance == 0
    assert ledger_differences() == []


# --------------------------------------------------------------------------
# Forfeit
# --------------------------------------------------------------------------


def test_forfeit_leaves_the_reward_in_escrow_for_the_lab(settled_with_hold, moderator):
    campaign, epoch, experts, held = settled_with_hold
    escrow_before = ledger.escrow_account(campaign).balance

    decision = holds.epoch_reward_forfeit(reward_id=held.pk, moderator=moderator, note="ring confirmed")

    held.refresh_from_db()
    assert held.hold_state == HoldState.FORFEITED and decision.refunded == 0
    assert ledger.escrow_account(campaign).balance == escrow_before  # the lab's again, spendable by later epochs
    assert selectors.held_outstanding(campaign_id=campaign.pk) == 0
    assert available(experts[3]) == 0
    with pytest.raises(ServiceError) as release:
        holds.epoch_reward_release(reward_id=held.pk, moderator=moderator)
    assert release.value.status == 409 and available(experts[3]) == 0
    assert AuditEvent.objects.filter(action="payout.forfeit", object_id=str(held.pk)).count() == 1
    assert [n.kind for n in Notification.objects.filter(user=experts[3].user)] == ["payout.forfeited"]


def test_forfeit_on_a_closed_settled_campaign_refunds_the_lab(settled_with_hold, moderator):
    campaign, epoch, experts, held = settled_with_hold
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.CLOSED)
    services.campaign_escrow_refund(campaign=campaign)  # what the last epoch's finish does on a closed campaign
    lab_before = ledger.lab_account(campaign.lab).balance
    assert ledger.escrow_account(campaign).balance == held.amount  # the hold stayed behind

    decision = holds.epoch_reward_forfeit(reward_id=held.pk, moderator=moderator)

    assert decision.refunded == held.amount
    assert ledger.escrow_account(campaign).balance == 0
    assert ledger.lab_account(campaign.lab).balance == lab_before + held.amount
    with pytest.raises(ServiceError):
        holds.epoch_reward_forfeit(reward_id=held.pk, moderator=moderator)
    assert LedgerTransaction.objects.filter(campaign=campaign, kind=Kind.REFUND).count() == 2
    assert ledger_differences() == []


def test_only_moderators_decide_holds(settled_with_hold):
    _, _, experts, held = settled_with_hold

    with pytest.raises(ServiceError) as exc:
        holds.epoch_reward_release(reward_id=held.pk, moderator=experts[3].user)

    assert exc.value.status == 403 and available(experts[3]) == 0
    held.refresh_from_db()
    assert held.hold_state == HoldState.HELD


def test_a_reward_that_was_never_held_cannot_be_released(settled_with_hold, moderator):
    _, epoch, experts, _ = settled_with_hold
    paid = EpochReward.objects.get(epoch=epoch, expert=experts[0])

    with pytest.raises(ServiceError) as exc:
        holds.epoch_reward_release(reward_id=paid.pk, moderator=moderator)

    assert exc.value.status == 409 and available(experts[0]) == paid.amount


# --------------------------------------------------------------------------
# Admin
# --------------------------------------------------------------------------

URL = "/admin/rewards/heldpayout/"


@pytest.fixture
def moderator_client(client, moderator):
    client.force_login(moderator)
    return client


def test_moderators_see_held_payouts_with_their_evidence(settled_with_hold, moderator_client):
    campaign, epoch, experts, held = settled_with_hold

    page = moderator_client.get(URL).content.decode()
    detail = moderator_client.get(f"{URL}{held.pk}/change/").content.decode()

    assert str(experts[3]) in page and str(experts[0]) not in page  # only the held one
    assert "collusion: z = 6.2 (threshold 4); n 40" in page
    assert campaign.name in moderator_client.get(f"{URL}?reason=collusion").content.decode()
    assert str(experts[3]) not in moderator_client.get(f"{URL}?reason=speed").content.decode()
    assert str(experts[3]) not in moderator_client.get(f"{URL}?decision=released").content.decode()
    assert "collusion" in detail and 'name="_save"' not in detail  # read-only
    assert moderator_client.get(f"{URL}add/").status_code == 403


def test_the_release_action_pays_once_and_tells_the_moderator(settled_with_hold, moderator_client):
    _, epoch, experts, held = settled_with_hold
    form = {"action": "release_payouts", "_selected_action": [held.pk], "note": "reviewed: independent raters"}

    first = moderator_client.post(URL, form, follow=True)
    again = moderator_client.post(f"{URL}?decision=all", form, follow=True)

    assert "released and paid" in first.content.decode()
    assert "already resolved" in again.content.decode()
    assert available(experts[3]) == held.amount and reward_transactions(epoch) == 4
    held.refresh_from_db()
    assert held.hold_note == "reviewed: independent raters"
    assert AuditEvent.objects.filter(action="payout.release").count() == 1
    assert Notification.objects.filter(user=experts[3].user, kind="payout.released").count() == 1


def test_the_forfeit_action_leaves_the_money_to_the_lab(settled_with_hold, moderator_client):
    campaign, epoch, experts, held = settled_with_hold
    escrow_before = ledger.escrow_account(campaign).balance

    response = moderator_client.post(URL, {"action": "forfeit_payouts", "_selected_action": [held.pk]}, follow=True)

    assert "forfeited" in response.content.decode()
    held.refresh_from_db()
    assert held.hold_state == HoldState.FORFEITED and held.hold_resolved_by is not None
    assert ledger.escrow_account(campaign).balance == escrow_before and available(experts[3]) == 0
    assert AuditEvent.objects.filter(action="payout.forfeit").count() == 1


def test_staff_without_the_moderator_role_cannot_decide_holds(settled_with_hold, client):
    _, _, experts, held = settled_with_hold
    client.force_login(factories.UserFactory(is_staff=True))

    response = client.post(URL, {"action": "release_payouts", "_selected_action": [held.pk]})

    assert response.status_code == 403 and available(experts[3]) == 0
