"""Disputes: opening, the frozen evidence, moderating, ledger corrections, notifications."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotations.handles import rater_handle
from annotations.models import AuditEvent, Judgment, Notification, RaterQuality
from annotations.services import ServiceError
from moderation import services as disputes
from moderation.models import Dispute
from rewards import ledger, services, settlement
from rewards.models import LedgerTransaction
from rewards.selectors import expert_balances, ledger_differences
from tests import factories

pytestmark = pytest.mark.django_db
TOKEN = 1_000_000
STATEMENT = "I followed the guidelines exactly; please look again at my rationale."
REASON = "Checked the evidence against the guidelines."


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()


@pytest.fixture
def moderator():
    return factories.rewards_moderator()


def available(expert) -> int:
    return expert_balances(expert=expert).available


def bonded(expert) -> int:
    return expert_balances(expert=expert).bonded


def staked_expert(amount: int = 10 * TOKEN):
    expert = factories.ExpertFactory()
    factories.expert_deposit(expert, amount)
    services.stake_bond(expert=expert, amount=amount)
    return expert


# Enough work per expert for pay: settlement judges quality on its lower confidence bound.
SETTLED_TASKS = 40


def settled_campaign(experts, *, tasks: int = SETTLED_TASKS, reward: int = TOKEN):
    """A funded campaign whose experts all ranked the same tasks the same way, settled."""
    campaign = factories.CampaignFactory(reward_per_judgment=reward)
    factories.lab_deposit(campaign.lab, 200 * TOKEN)
    services.campaign_fund(campaign=campaign, amount=200 * TOKEN, actor=None)
    at = timezone.now() - timedelta(days=3)
    task_rows = [factories.TaskFactory(campaign=campaign) for _ in range(tasks)]
    # Alternating answers that everyone agrees on: chance-corrected agreement well above q_min.
    judgments = {e.pk: [factories.rated_judgment(task=t, expert=e, ranks=[1, 2] if k % 2 else [2, 1], submitted_at=at)
                        for k, t in enumerate(task_rows)]
                 for e in experts}
    epoch = factories.EpochFactory(campaign=campaign, index=0)
    settlement.epoch_settle(epoch_id=epoch.pk)
    return campaign, task_rows, judgments


# --------------------------------------------------------------------------
# Slashes
# --------------------------------------------------------------------------


def test_overturning_a_slash_returns_the_stake_once_and_notifies(moderator):
    expert = staked_expert()
    slash = services.stake_slash(expert=expert, fraction=0.1, key="test:gold", reason="gold accuracy below the bar")
    assert bonded(expert) == 9 * TOKEN
    dispute, created = disputes.dispute_open_expert(expert=expert, user=expert.user, kind="slash",
                                                    slash_id=slash.pk, statement=STATEMENT)
    assert created and dispute.evidence["slash"]["bonded_amount"] == TOKEN

    resolved = disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="overturned", reason=REASON)
    again = disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="overturned", reason=REASON)

    assert bonded(expert) == 10 * TOKEN  # given back exactly once
    assert resolved.state == again.state == "resolved"
    assert LedgerTransaction.objects.filter(reverses=slash.transaction).count() == 1
    note = Notification.objects.get(user=expert.user)
    assert note.title.startswith("Slash reversed: ") and REASON in note.body and note.subject == f"dispute:{dispute.pk}"
    assert AuditEvent.objects.filter(action="dispute.resolve", object_id=str(dispute.pk)).count() == 1
    assert ledger_differences() == []


def test_a_resolved_dispute_is_final(moderator):
    expert = staked_expert()
    slash = services.stake_slash(expert=expert, fraction=0.1, key="test:final", reason="gold")
    dispute, _ = disputes.dispute_open_expert(expert=expert, user=expert.user, kind="slash", slash_id=slash.pk,
                                              statement=STATEMENT)
    disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="upheld", reason=REASON)

    with pytest.raises(ServiceError) as exc:
        disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="overturned", reason=REASON)
    assert exc.value.status == 409
    with pytest.raises(ServiceError):
        disputes.dispute_escalate(dispute=dispute, moderator=moderator, note="second opinion please")
    assert bonded(expert) == 9 * TOKEN  # the slash stands


def test_the_database_refuses_a_resolved_dispute_without_a_reason():
    expert = staked_expert()
    slash = services.stake_slash(expert=expert, fraction=0.1, key="test:db", reason="gold")
    dispute, _ = disputes.dispute_open_expert(expert=expert, user=expert.user, kind="slash", slash_id=slash.pk,
                                              statement=STATEMENT)
    with pytest.raises(IntegrityError), transaction.atomic():
        Dispute.objects.filter(pk=dispute.pk).update(state="resolved", resolution="upheld",
                                                     resolved_at=timezone.now(), resolution_reason="")
    with pytest.raises(IntegrityError), transaction.atomic():
        Dispute.objects.filter(pk=dispute.pk).update(state="resolved", resolution="", resolution_reason="x",
                                                     resolved_at=timezone.now())


def test_only_moderators_resolve_and_escalated_disputes_need_a_senior(moderator):
    expert = staked_expert()
    slash = services.stake_slash(expert=expert, fraction=0.1, key="test:esc", reason="gold")
    dispute, _ = disputes.dispute_open_expert(expert=expert, user=expert.user, kind="slash", slash_id=slash.pk,
                                              statement=STATEMENT)
    with pytest.raises(ServiceError) as exc:
        disputes.dispute_resolve(dispute=dispute, moderator=expert.user, resolution="overturned", reason=REASON)
    assert exc.value.status == 403

    disputes.dispute_escalate(dispute=dispute, moderator=moderator, note="needs a second opinion")
    with pytest.raises(ServiceError) as exc:
        disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="overturned", reason=REASON)
    assert exc.value.status == 403
    senior = factories.UserFactory(is_staff=True, is_superuser=True)
    disputes.dispute_resolve(dispute=dispute, moderator=senior, resolution="overturned", reason=REASON)
    assert bonded(expert) == 10 * TOKEN
    titles = list(Notification.objects.filter(user=expert.user).values_list("kind", flat=True))
    assert sorted(titles) == ["dispute.escalated", "dispute.resolved"]


def test_another_experts_slash_is_not_found():
    victim, other = staked_expert(), factories.ExpertFactory()
    slash = services.stake_slash(expert=victim, fraction=0.1, key="test:other", reason="gold")
    with pytest.raises(ServiceError) as exc:
        disputes.dispute_open_expert(expert=other, user=other.user, kind="slash", slash_id=slash.pk,
                                     statement=STATEMENT)
    assert exc.value.status == 404


def test_opening_twice_returns_the_first_dispute_and_old_slashes_are_out_of_time(settings):
    expert = staked_expert()
    slash = services.stake_slash(expert=expert, fraction=0.1, key="test:twice", reason="gold")
    first, created = disputes.dispute_open_expert(expert=expert, user=expert.user, kind="slash", slash_id=slash.pk,
                                                  statement=STATEMENT)
    second, created_again = disputes.dispute_open_expert(expert=expert, user=expert.user, kind="slash",
                                                         transaction_id=slash.transaction_id, statement=STATEMENT)
    assert created and not created_again and first.pk == second.pk

    old = services.stake_slash(expert=expert, fraction=0.1, key="test:old", reason="gold",
                               now=timezone.now() - timedelta(days=settings.DATADAO_DISPUTE_WINDOW_DAYS + 1))
    with pytest.raises(ServiceError) as exc:
        disputes.dispute_open_expert(expert=expert, user=expert.user, kind="slash", slash_id=old.pk,
                                     statement=STATEMENT)
    assert exc.value.status == 409


# --------------------------------------------------------------------------
# Voided judgments and gold verdicts
# --------------------------------------------------------------------------


def test_voiding_after_settlement_claws_back_and_overturning_pays_it_back(moderator):
    a, b = factories.ExpertFactory(), factories.ExpertFactory()
    campaign, tasks, judgments = settled_campaign([a, b])
    paid = available(a)
    assert paid > 0
    per_judgment = paid // SETTLED_TASKS
    judgment = judgments[a.pk][0]

    assert disputes.judgment_void(judgment=judgment, moderator=moderator, reason="rationale copied from elsewhere")
    assert available(a) == paid - per_judgment
    assert Notification.objects.filter(user=a.user, kind="judgment.voided").exists()

    dispute, _ = disputes.dispute_open_expert(expert=a, user=a.user, kind="voided_judgment",
                                              judgment_id=judgment.pk, statement=STATEMENT)
    assert dispute.evidence["judgment"]["voided"] is True
    assert dispute.evidence["judgment"]["rater"] == rater_handle(campaign.pk, a.pk)
    disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="overturned", reason=REASON)
    disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="overturned", reason=REASON)

    judgment.refresh_from_db()
    assert not judgment.voided
    assert available(a) == paid  # exactly what was clawed back, once
    assert ledger_differences() == []


def test_a_judgment_voided_before_settlement_is_paid_its_share_when_restored(moderator):
    from rewards.models import EpochReward

    a, b, c = (factories.ExpertFactory() for _ in range(3))
    campaign = factories.CampaignFactory(reward_per_judgment=TOKEN)
    factories.lab_deposit(campaign.lab, 200 * TOKEN)
    services.campaign_fund(campaign=campaign, amount=200 * TOKEN, actor=None)
    at = timezone.now() - timedelta(days=3)
    # Enough work for the skeptical prior of the pay rule to let a's agreement earn (rewards.weighting).
    tasks = [factories.TaskFactory(campaign=campaign) for _ in range(30)]
    rows = {e.pk: [factories.rated_judgment(task=t, expert=e, ranks=[1, 2] if k % 2 else [2, 1], submitted_at=at)
                   for k, t in enumerate(tasks)] for e in (a, b, c)}
    disputes.judgment_void(judgment=rows[a.pk][0], moderator=moderator, reason="looked like a random click")
    epoch = factories.EpochFactory(campaign=campaign, index=0)
    settlement.epoch_settle(epoch_id=epoch.pk)
    reward = EpochReward.objects.get(epoch=epoch, expert=a)
    assert reward.judgments == 29 and reward.amount > 0  # the plan left the voided judgment out
    before = available(a)
    dispute, _ = disputes.dispute_open_expert(expert=a, user=a.user, kind="voided_judgment",
                                              judgment_id=rows[a.pk][0].pk, statement=STATEMENT)

    resolved = disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="overturned", reason=REASON)

    assert available(a) == before + reward.amount // 29
    assert resolved.outcome["reward_restored"] == reward.amount // 29
    assert resolved.outcome["paid_from"] == "escrow"
    assert LedgerTransaction.objects.filter(idempotency_key__startswith=f"dispute:{dispute.pk}:restore").count() == 1


def test_gold_verdicts_are_disputable_only_once_they_cost_something(moderator):
    expert = factories.ExpertFactory()
    campaign = factories.CampaignFactory()
    gold = factories.GoldTaskFactory(campaign=campaign)
    judgment = factories.rated_judgment(task=gold, expert=expert, ranks=[2, 1], gold_correct=False)
    with pytest.raises(ServiceError) as exc:  # which tasks were gold stays secret until then
        disputes.dispute_open_expert(expert=expert, user=expert.user, kind="gold_verdict", judgment_id=judgment.pk,
                                     statement=STATEMENT)
    assert exc.value.status == 404

    RaterQuality.objects.create(campaign=campaign, expert=expert, handle=rater_handle(campaign.pk, expert.pk),
                                flag_gold=True, flagged=True, computed_at=timezone.now(),
                                evidence={"gold": {"statistic": "wilson_lower_bound", "value": 0.1}})
    dispute, _ = disputes.dispute_open_expert(expert=expert, user=expert.user, kind="gold_verdict",
                                              judgment_id=judgment.pk, statement=STATEMENT)
    assert dispute.evidence["gold"] == [1, 2]
    assert dispute.evidence["signals"]["flags"] == ["gold"]
    disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="overturned", reason=REASON)
    judgment.refresh_from_db()
    assert judgment.gold_correct is True


def test_the_evidence_is_frozen_when_the_dispute_opens(moderator):
    expert = factories.ExpertFactory()
    task = factories.TaskFactory()
    judgment = factories.rated_judgment(task=task, expert=expert, ranks=[1, 2], voided=True)
    dispute, _ = disputes.dispute_open_expert(expert=expert, user=expert.user, kind="voided_judgment",
                                              judgment_id=judgment.pk, statement=STATEMENT)
    Judgment.objects.filter(pk=judgment.pk).update(rationale="edited later")
    task.responses.filter(position=0).update(text="changed later")
    dispute.refresh_from_db()
    assert dispute.evidence["judgment"]["rationale"] == ""
    assert dispute.evidence["task"]["responses"][0]["text"] == f"Answer 0 to {task.external_id}"


# --------------------------------------------------------------------------
# Labs
# --------------------------------------------------------------------------


def test_a_lab_disputes_by_handle_and_an_overturn_voids_claws_back_and_slashes(moderator):
    a, b = staked_expert(), staked_expert()
    campaign, tasks, judgments = settled_campaign([a, b])
    member = factories.lab_member(campaign.lab)
    paid, stake = available(a), bonded(a)
    escrow_before = ledger.escrow_account(campaign).balance
    handle = rater_handle(campaign.pk, a.pk)

    dispute, created = disputes.dispute_open_lab(user=member, campaign_id=campaign.pk,
                                                 task_external_id=tasks[1].external_id, rater=handle,
                                                 statement="This rater clicked through without reading the answers.")
    assert created and dispute.judgment_id == judgments[a.pk][1].pk and dispute.expert_id == a.pk
    # The evidence a lab could ever be shown names the rater by handle only.
    assert a.user.username not in str(dispute.evidence)

    disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="overturned", reason=REASON,
                             fraud_slash=True)
    disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="overturned", reason=REASON,
                             fraud_slash=True)

    share = paid // SETTLED_TASKS
    assert Judgment.objects.get(pk=judgments[a.pk][1].pk).voided
    assert available(a) == paid - share
    assert ledger.escrow_account(campaign).balance == escrow_before + share
    assert bonded(a) == stake - stake // 10  # the campaign's slash fraction, once
    assert {n.user_id for n in Notification.objects.filter(subject=f"dispute:{dispute.pk}")} == {member.pk, a.user_id}
    assert ledger_differences() == []


def test_a_lab_cannot_reach_another_labs_judgments():
    expert = factories.ExpertFactory()
    task = factories.TaskFactory()
    factories.rated_judgment(task=task, expert=expert, ranks=[1, 2])
    stranger = factories.lab_member()
    with pytest.raises(ServiceError) as exc:
        disputes.dispute_open_lab(user=stranger, campaign_id=task.campaign_id, task_external_id=task.external_id,
                                  rater=rater_handle(task.campaign_id, expert.pk), statement=STATEMENT)
    assert exc.value.status == 404


def test_upholding_a_lab_dispute_moves_nothing(moderator):
    a, b, c = (factories.ExpertFactory() for _ in range(3))
    campaign, tasks, judgments = settled_campaign([a, b, c])
    member = factories.lab_member(campaign.lab)
    paid = available(a)
    count = LedgerTransaction.objects.count()
    dispute, _ = disputes.dispute_open_lab(user=member, campaign_id=campaign.pk, task_external_id=tasks[0].external_id,
                                           rater=rater_handle(campaign.pk, a.pk), statement=STATEMENT)
    disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="upheld", reason=REASON)
    assert available(a) == paid and LedgerTransaction.objects.count() == count
    assert not Judgment.objects.get(pk=judgments[a.pk][0].pk).voided
    with pytest.raises(ServiceError):  # a fraud slash goes only with an overturn
        disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="upheld", reason=REASON,
                                 fraud_slash=True)


# --------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------


def _client(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(user)}")
    return client


def test_api_expert_opens_and_lists_own_disputes():
    expert = staked_expert()
    slash = services.stake_slash(expert=expert, fraction=0.1, key="test:api", reason="gold")
    client = _client(expert.user)

    response = client.post("/api/v1/disputes", {"kind": "slash", "slash": slash.pk, "statement": STATEMENT},
                           format="json")
    repeat = client.post("/api/v1/disputes", {"kind": "slash", "slash": slash.pk, "statement": STATEMENT},
                         format="json")
    listed = client.get("/api/v1/disputes")

    assert response.status_code == 201 and repeat.status_code == 200
    assert response.data["id"] == repeat.data["id"]
    assert response.data["subject"]["slash"] == slash.pk and response.data["role"] == "disputant"
    assert [d["id"] for d in listed.data["results"]] == [response.data["id"]]
    assert "evidence" not in response.data


def test_api_lab_dispute_shows_handles_and_the_expert_sees_it_without_the_lab():
    expert = factories.ExpertFactory()
    task = factories.TaskFactory()
    factories.rated_judgment(task=task, expert=expert, ranks=[1, 2])
    member = factories.lab_member(task.campaign.lab)
    handle = rater_handle(task.campaign_id, expert.pk)

    response = _client(member).post("/api/v1/disputes", {
        "kind": "judgment_quality", "campaign": task.campaign_id, "task_external_id": task.external_id,
        "rater": handle, "statement": STATEMENT}, format="json")
    as_expert = _client(expert.user).get(f"/api/v1/disputes/{response.data['id']}")

    assert response.status_code == 201
    assert response.data["subject"]["rater"] == handle and response.data["subject"]["judgment"] is None
    assert expert.user.username not in str(response.data)
    assert as_expert.status_code == 200
    assert as_expert.data["role"] == "respondent" and as_expert.data["statement"] is None
    assert member.username not in str(as_expert.data) and task.campaign.lab.name not in str(as_expert.data)


def test_api_validation_errors_and_wrong_roles():
    expert = factories.ExpertFactory()
    member = factories.lab_member()
    assert _client(expert.user).post("/api/v1/disputes", {"kind": "slash", "statement": "short"},
                                     format="json").status_code == 400
    assert _client(expert.user).post("/api/v1/disputes", {
        "kind": "judgment_quality", "campaign": 1, "task_external_id": "x", "rater": "r-1",
        "statement": STATEMENT}, format="json").status_code == 403
    assert _client(member).post("/api/v1/disputes", {"kind": "slash", "slash": 1, "statement": STATEMENT},
                                format="json").status_code == 403
    missing = _client(member).post("/api/v1/disputes", {"kind": "judgment_quality", "statement": STATEMENT},
                                   format="json")
    assert missing.status_code == 400
    assert {e["field"] for e in missing.data["errors"]} == {"campaign", "task_external_id", "rater"}


def test_api_notifications_are_ones_own_and_can_be_marked_read(moderator):
    expert = staked_expert()
    other = factories.ExpertFactory()
    slash = services.stake_slash(expert=expert, fraction=0.1, key="test:notes", reason="gold")
    dispute, _ = disputes.dispute_open_expert(expert=expert, user=expert.user, kind="slash", slash_id=slash.pk,
                                              statement=STATEMENT)
    disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="upheld", reason=REASON)

    mine = _client(expert.user).get("/api/v1/me/notifications?unread=true")
    theirs = _client(other.user).get("/api/v1/me/notifications")
    marked = _client(expert.user).post("/api/v1/me/notifications/read", {}, format="json")

    assert mine.status_code == 200 and mine.data["unread"] == 1
    assert mine.data["results"][0]["dispute"] == dispute.pk
    assert theirs.data["count"] == 0
    assert marked.data == {"marked": 1}
    assert _client(expert.user).get("/api/v1/me/notifications?unread=1").data["count"] == 0


# --------------------------------------------------------------------------
# Pages and admin
# --------------------------------------------------------------------------


def test_expert_disputes_a_voided_judgment_from_the_page(client):
    expert = factories.ExpertFactory()
    judgment = factories.rated_judgment(task=factories.TaskFactory(), expert=expert, ranks=[1, 2], voided=True)
    client.force_login(expert.user)
    page = client.get("/disputes/")
    assert page.status_code == 200 and f'name="judgment" value="{judgment.pk}"' in page.content.decode()

    response = client.post("/disputes/", {"kind": "voided_judgment", "judgment": judgment.pk,
                                          "statement": STATEMENT}, follow=True)
    assert response.status_code == 200
    dispute = Dispute.objects.get()
    assert dispute.kind == "voided_judgment" and dispute.raised_by == expert.user
    assert f'id="dispute-{dispute.pk}"' in response.content.decode()


def test_admin_queue_filters_and_overturn_action(client, moderator):
    expert = staked_expert()
    slash = services.stake_slash(expert=expert, fraction=0.1, key="test:admin", reason="gold")
    dispute, _ = disputes.dispute_open_expert(expert=expert, user=expert.user, kind="slash", slash_id=slash.pk,
                                              statement=STATEMENT)
    client.force_login(moderator)
    for query in ("", "?state__exact=open", "?kind__exact=slash", "?age=1d", f"?q={expert.user.username}",
                  f"?campaign__id__exact={dispute.campaign_id or ''}"):
        response = client.get(f"/admin/moderation/dispute/{query}")
        assert response.status_code == 200, query
    assert f"/admin/moderation/dispute/{dispute.pk}/change/" in client.get(
        "/admin/moderation/dispute/?state__exact=open").content.decode()
    assert client.get(f"/admin/moderation/dispute/{dispute.pk}/change/").status_code == 200

    form = client.post("/admin/moderation/dispute/", {"action": "overturn", "_selected_action": [dispute.pk]})
    assert form.status_code == 200 and b"Reason" in form.content
    done = client.post("/admin/moderation/dispute/", {"action": "overturn", "_selected_action": [dispute.pk],
                                                       "apply": "1", "reason": REASON}, follow=True)
    assert done.status_code == 200
    dispute.refresh_from_db()
    assert (dispute.state, dispute.resolution, dispute.resolved_by) == ("resolved", "overturned", moderator)
    assert bonded(expert) == 10 * TOKEN
    # Read-only rows: no add, change or delete for anyone.
    assert client.get("/admin/moderation/dispute/add/").status_code == 403
    assert client.post(f"/admin/moderation/dispute/{dispute.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Dispute.objects.filter(pk=dispute.pk).exists()


def test_admin_void_action_notifies_the_expert(client, moderator):
    expert = factories.ExpertFactory()
    judgment = factories.rated_judgment(task=factories.TaskFactory(), expert=expert, ranks=[1, 2])
    client.force_login(moderator)
    client.post("/admin/annotations/judgment/", {"action": "void", "_selected_action": [judgment.pk], "apply": "1",
                                                  "reason": "identical rationale on forty tasks"})
    judgment.refresh_from_db()
    assert judgment.voided and judgment.voided_at is not None
    assert Notification.objects.filter(user=expert.user, kind="judgment.voided").count() == 1


def test_a_disputes_money_moves_carry_the_dispute_in_their_keys(moderator):
    a, b, c = (factories.ExpertFactory() for _ in range(3))
    campaign, tasks, judgments = settled_campaign([a, b, c])
    member = factories.lab_member(campaign.lab)
    dispute, _ = disputes.dispute_open_lab(user=member, campaign_id=campaign.pk, task_external_id=tasks[0].external_id,
                                           rater=rater_handle(campaign.pk, a.pk), statement=STATEMENT)
    before = set(LedgerTransaction.objects.values_list("idempotency_key", flat=True))
    disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="overturned", reason=REASON)
    new = set(LedgerTransaction.objects.values_list("idempotency_key", flat=True)) - before
    assert new and all(key.startswith(f"dispute:{dispute.pk}:") for key in new)
    assert ledger_differences() == []


# --------------------------------------------------------------------------
# Claw-backs on closed campaigns and of rewards sent to an on-chain claim
# --------------------------------------------------------------------------


def _open_lab_dispute(campaign, tasks, expert):
    member = factories.lab_member(campaign.lab)
    dispute, _ = disputes.dispute_open_lab(user=member, campaign_id=campaign.pk, task_external_id=tasks[0].external_id,
                                           rater=rater_handle(campaign.pk, expert.pk), statement=STATEMENT)
    return dispute


def test_a_claw_back_on_a_closed_settled_campaign_goes_back_to_the_lab_once(moderator):
    from annotations.services import campaign_transition

    a, b = factories.ExpertFactory(), factories.ExpertFactory()
    campaign, tasks, _ = settled_campaign([a, b])
    campaign_transition(campaign=campaign, action="close")  # every epoch settled: the unspent escrow is refunded
    escrow, lab = ledger.escrow_account(campaign), ledger.lab_account(campaign.lab)
    escrow.refresh_from_db()
    assert escrow.balance == 0
    paid, lab_before = available(a), lab.balance
    dispute = _open_lab_dispute(campaign, tasks, a)

    resolved = disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="overturned", reason=REASON)
    count = LedgerTransaction.objects.count()
    disputes.dispute_resolve(dispute=dispute, moderator=moderator, resolution="overturned", reason=REASON)

    share = paid // SETTLED_TASKS
    escrow.refresh_from_db()
    lab.refresh_from_db()
    assert resolved.outcome["clawed_back"] == share > 0
    assert available(a) == paid - share
    assert lab.balance == lab_before + share  # the lab gets back what its expert's reward was
    assert escrow.balance == 0  # nothing is stranded in a closed campaign's escrow
    assert LedgerTransaction.objects.count() == count  # resolving again moves nothing
    assert LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.REFUND, campaign=campaign).count() == 2
    assert ledger_differences() == []


def test_a_reward_sent_to_an_on_chain_claim_is_not_taken_from_the_experts_deposit(moderator, settings):
    settings.CHAIN_RPC_URL = ""  # rewards stay off-chain: Merkle proofs via the API only
    from rewards.models import ClaimAdjustment, EpochReward

    a, b = factories.ExpertFactory(wallet_address=factories.wallet("claims")), factories.ExpertFactory()
    campaign, tasks, _ = settled_campaign([a, b])
    reward = EpochReward.objects.get(expert=a, epoch__campaign=campaign)
    assert reward.wallet_address and reward.amount > 0 and available(a) == 0  # the reward went to the claim
    factories.expert_deposit(a, 5 * TOKEN)  # the expert's own tokens
    escrow_before = ledger.escrow_account(campaign).balance

    resolved = disputes.dispute_resolve(dispute=_open_lab_dispute(campaign, tasks, a), moderator=moderator,
                                        resolution="overturned", reason=REASON)

    assert available(a) == 5 * TOKEN
    # Nothing claimed yet: the share is taken off the address's next cumulative root instead. Without a chain
    # (CHAIN_RPC_URL empty) no on-chain claim can race it: it goes back to the escrow at once.
    share = reward.amount // reward.judgments
    assert resolved.outcome["clawed_back"] == resolved.outcome["from_claim"] == share
    assert "not_recovered" not in resolved.outcome and "pending_root" not in resolved.outcome
    assert ledger.escrow_account(campaign).balance == escrow_before + share
    adjustment = ClaimAdjustment.objects.get()
    assert (adjustment.state, adjustment.recovered, adjustment.amount) == (ClaimAdjustment.State.APPLIED, share, -share)
    assert Judgment.objects.get(task=tasks[0], expert=a).voided

    # An expert paid in-platform is clawed back as before.
    paid_b = available(b)
    resolved = disputes.dispute_resolve(dispute=_open_lab_dispute(campaign, tasks, b), moderator=moderator,
                                        resolution="overturned", reason=REASON)
    assert resolved.outcome["clawed_back"] == paid_b // SETTLED_TASKS > 0 and "not_recovered" not in resolved.outcome
    assert available(b) == paid_b - paid_b // SETTLED_TASKS
    assert ledger_differences() == []
