"""Vetting: applying, moderator review in admin, qualification tests, eligibility."""
import random
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from annotations import experts, roles
from annotations.models import Assignment, Expert, ExpertDomain, QualificationAttempt, Task
from annotations.services import ServiceError
from tests import factories

pytestmark = pytest.mark.django_db

CREDENTIALS = "MD, board-certified internist, 12 years in practice"


def apply(user=None, **overrides):
    fields = {"domains": ["medicine"], "credentials": CREDENTIALS, "wallet_address": factories.wallet(1), **overrides}
    return experts.expert_apply(user=user or factories.UserFactory(), **fields)


def approved(**overrides) -> Expert:
    return experts.expert_approve(expert=apply(**overrides))


def gold_pool(domain="medicine", n=6, k=2):
    campaign = factories.CampaignFactory(domain=domain, responses_per_task=k)
    return [factories.GoldTaskFactory(campaign=campaign) for _ in range(n)]


def answer_all(attempt, *, correct: int):
    """Answer the first ``correct`` items right (gold: the first upload is best), the rest wrong."""
    answers = {}
    for index, item in enumerate(attempt.items.all()):
        best_slot = item.display_order.index(0)
        wrong_slot = 1 - best_slot if len(item.display_order) == 2 else (best_slot + 1) % len(item.display_order)
        slot = best_slot if index < correct else wrong_slot
        letters = "ABCDEFGH"[: len(item.display_order)]
        answers[item.id] = [letters[slot], [x for x in letters if x != letters[slot]]]
    return experts.qualification_submit(attempt=attempt, answers=answers)


# --- applying ------------------------------------------------------------------


def test_apply_creates_pending_application_without_expert_role():
    user = factories.UserFactory()
    expert = apply(user)
    assert expert.state == Expert.State.APPLIED
    assert expert.wallet_address == factories.wallet(1)
    assert not roles.has_role(User.objects.get(pk=user.pk), roles.EXPERT)


@pytest.mark.parametrize("address, message", [
    ("", "must start with '0x'"),
    ("0x12345", "40 hex digits"),
    ("0x" + "g" * 40, "non-hex"),
    (factories.wallet(1).lower(), "did you mean " + factories.wallet(1)),
])
def test_wallet_must_be_eip55_checksummed(address, message):
    with pytest.raises(ServiceError) as info:
        apply(wallet_address=address)
    assert info.value.field == "wallet_address"
    assert message in info.value.message
    assert Expert.objects.count() == 0


def test_wallet_cannot_be_shared_between_experts():
    apply(wallet_address=factories.wallet(7))
    with pytest.raises(ServiceError, match="registered to another expert"):
        apply(wallet_address=factories.wallet(7))


def test_application_needs_domains_and_real_credentials():
    with pytest.raises(ServiceError) as info:
        apply(domains=[])
    assert info.value.field == "domains"
    with pytest.raises(ServiceError) as info:
        apply(domains=["astrology"])
    assert info.value.field == "domains"
    with pytest.raises(ServiceError) as info:
        apply(credentials="doctor")
    assert info.value.field == "credentials"


# --- moderator review ----------------------------------------------------------


def test_approve_grants_role_and_starts_qualification_per_domain():
    expert = approved(domains=["medicine", "law"])
    assert expert.state == Expert.State.QUALIFYING
    assert roles.has_role(User.objects.get(pk=expert.user_id), roles.EXPERT)
    assert set(expert.domain_vettings.values_list("domain", "state")) == {
        ("medicine", "qualifying"), ("law", "qualifying"),
    }


def test_reject_only_pending_and_rejected_may_reapply():
    expert = apply()
    experts.expert_reject(expert=expert, note="no evidence of licence")
    expert.refresh_from_db()
    assert expert.state == Expert.State.REJECTED and expert.review_note == "no evidence of licence"
    again = apply(expert.user, credentials=CREDENTIALS + ", licence no. 1234")
    assert again.pk == expert.pk and again.state == Expert.State.APPLIED
    approved_expert = experts.expert_approve(expert=again)
    with pytest.raises(ServiceError, match="suspend"):
        experts.expert_reject(expert=approved_expert)


def test_suspend_releases_live_leases_and_blocks_rating(open_campaign):
    expert = factories.ExpertFactory()
    task = factories.TaskFactory(campaign=open_campaign)
    from annotations.assignment import assignment_next

    lease = assignment_next(expert=expert, campaign=open_campaign)
    assert Task.objects.get(pk=task.pk).filled == 1
    experts.expert_suspend(expert=expert, note="copied rationales")
    lease.refresh_from_db()
    assert lease.state == Assignment.State.EXPIRED
    assert Task.objects.get(pk=task.pk).filled == 0
    expert.refresh_from_db()
    result = experts.expert_eligibility(expert=expert, campaign=open_campaign)
    assert not result and "suspended" in result.reason
    with pytest.raises(ServiceError, match="suspended"):
        apply(expert.user)


def test_reinstating_a_suspended_expert_keeps_passed_domains(open_campaign):
    expert = factories.ExpertFactory()
    experts.expert_suspend(expert=expert)
    reinstated = experts.expert_approve(expert=expert)
    assert reinstated.state == Expert.State.VETTED
    assert experts.expert_eligibility(expert=reinstated, campaign=open_campaign)


def test_admin_actions_call_the_services(client):
    moderator = factories.UserFactory(is_staff=True, is_superuser=True)
    factories.add_role(moderator, roles.MODERATOR)
    client.force_login(moderator)
    pending = apply()
    other = apply(wallet_address=factories.wallet(2))
    url = "/admin/annotations/expert/"
    response = client.post(url, {"action": "approve", "_selected_action": [pending.pk]}, follow=True)
    assert response.status_code == 200
    pending.refresh_from_db()
    assert pending.state == Expert.State.QUALIFYING and pending.reviewed_by == moderator
    client.post(url, {"action": "reject", "_selected_action": [other.pk]})
    other.refresh_from_db()
    assert other.state == Expert.State.REJECTED
    response = client.post(url, {"action": "reject", "_selected_action": [pending.pk]}, follow=True)
    assert "only pending applications" in response.content.decode()
    client.post(url, {"action": "suspend", "_selected_action": [pending.pk]})
    pending.refresh_from_db()
    assert pending.state == Expert.State.SUSPENDED


def test_judgments_are_read_only_in_admin(client, open_campaign):
    moderator = factories.UserFactory(is_staff=True, is_superuser=True)
    client.force_login(moderator)
    assert client.get("/admin/annotations/judgment/").status_code == 200
    assert client.get("/admin/annotations/judgment/add/").status_code == 403
    assert client.get("/admin/annotations/assignment/?state=leased").status_code == 200


# --- qualification ---------------------------------------------------------------


def test_passing_the_test_vets_the_domain():
    gold_pool(n=6)
    expert = approved()
    attempt = experts.qualification_start(expert=expert, domain="medicine", rng=random.Random(1))
    assert attempt.items.count() == experts.QUALIFICATION_ITEMS
    attempt = answer_all(attempt, correct=4)  # 4/5 = 0.8, the default bar
    assert attempt.passed and attempt.score == pytest.approx(0.8)
    expert.refresh_from_db()
    assert expert.state == Expert.State.VETTED
    vetting = ExpertDomain.objects.get(expert=expert, domain="medicine")
    assert vetting.state == ExpertDomain.State.VETTED and vetting.qualified_at


def test_failing_the_test_records_score_and_cooldown():
    gold_pool(n=12)
    expert = approved()
    attempt = answer_all(experts.qualification_start(expert=expert, domain="medicine"), correct=3)
    assert attempt.passed is False
    assert ExpertDomain.objects.get(expert=expert, domain="medicine").state == ExpertDomain.State.FAILED
    expert.refresh_from_db()
    assert expert.state == Expert.State.QUALIFYING
    with pytest.raises(ServiceError, match="retake"):
        experts.qualification_start(expert=expert, domain="medicine")
    later = timezone.now() + timedelta(hours=25)
    retry = experts.qualification_start(expert=expert, domain="medicine", now=later)
    first_tasks = set(attempt.items.values_list("task_id", flat=True))
    assert first_tasks.isdisjoint(retry.items.values_list("task_id", flat=True))


def test_pass_mark_is_configurable(settings):
    settings.DATADAO_QUALIFICATION_PASS_MARK = 1.0
    gold_pool(n=5)
    attempt = answer_all(experts.qualification_start(expert=approved(), domain="medicine"), correct=4)
    assert attempt.pass_mark == 1.0 and attempt.passed is False


def test_test_needs_approval_and_enough_gold():
    gold_pool(n=2)
    with pytest.raises(ServiceError, match="approve"):
        experts.qualification_start(expert=apply(), domain="medicine")
    with pytest.raises(ServiceError, match="no qualification test"):
        experts.qualification_start(expert=approved(wallet_address=factories.wallet(3)), domain="medicine")


def test_unanswered_questions_are_refused_and_nothing_scored():
    gold_pool(n=5)
    attempt = experts.qualification_start(expert=approved(), domain="medicine")
    with pytest.raises(ServiceError, match="question 1"):
        experts.qualification_submit(attempt=attempt, answers={})
    attempt.refresh_from_db()
    assert attempt.finished_at is None and attempt.score is None


def test_restarting_resumes_the_open_attempt():
    gold_pool(n=10)
    expert = approved()
    first = experts.qualification_start(expert=expert, domain="medicine")
    assert experts.qualification_start(expert=expert, domain="medicine").pk == first.pk
    assert QualificationAttempt.objects.count() == 1


# --- eligibility -------------------------------------------------------------------


def test_eligibility_needs_vetting_in_the_campaign_domain(open_campaign):
    law_expert = factories.ExpertFactory(domains=["law"])
    result = experts.expert_eligibility(expert=law_expert, campaign=open_campaign)
    assert not result and "Medicine" in result.reason
    assert experts.expert_eligibility(expert=factories.ExpertFactory(), campaign=open_campaign)


def test_eligibility_needs_the_campaign_minimum_stake(open_campaign, monkeypatch):
    from rewards import selectors as rewards_selectors

    expert = factories.ExpertFactory()
    open_campaign.min_stake = 1_000_000
    monkeypatch.setattr(rewards_selectors, "expert_bonded_stake", lambda *, expert: 999_999)
    result = experts.expert_eligibility(expert=expert, campaign=open_campaign)
    assert not result and "stake" in result.reason
    monkeypatch.setattr(rewards_selectors, "expert_bonded_stake", lambda *, expert: 1_000_000)
    assert experts.expert_eligibility(expert=expert, campaign=open_campaign)


def test_eligibility_needs_an_open_campaign_and_a_vetted_expert(open_campaign):
    expert = factories.ExpertFactory()
    open_campaign.status = "paused"
    assert "paused" in experts.expert_eligibility(expert=expert, campaign=open_campaign).reason
    open_campaign.status = "open"
    qualifying = approved()
    assert "qualification" in experts.expert_eligibility(expert=qualifying, campaign=open_campaign).reason
