"""Leasing work: overlap, never twice, fullest first, gold injection, expiry, skip, completion."""
import random
from datetime import timedelta

import pytest
from django.utils import timezone

from annotations import assignment as svc
from annotations import judgments
from annotations import leases as lease_services
from annotations import experts
from annotations.models import Assignment, QualificationItem, Task
from annotations.services import ServiceError
from tests import factories

pytestmark = pytest.mark.django_db

RATIONALE = "A is safer: it checks renal function first."


def submit(expert, lease, **overrides):
    data = {"ranking": ["A", "B"], "strength": -2, "rationale": RATIONALE, **overrides}
    return judgments.judgment_submit(expert=expert, assignment_id=lease.pk, data=judgments.JudgmentInput(**data))


def rate_once(campaign, expert=None):
    expert = expert or factories.ExpertFactory()
    lease = svc.assignment_next(expert=expert, campaign=campaign)
    submit(expert, lease)
    return lease


def test_lease_has_expiry_and_a_display_order_permutation(open_campaign):
    task = factories.TaskFactory(campaign=open_campaign)
    before = timezone.now()
    lease = svc.assignment_next(expert=factories.ExpertFactory(), campaign=open_campaign)
    assert lease.task_id == task.pk and lease.state == Assignment.State.LEASED
    assert sorted(lease.display_order) == [0, 1]
    assert timedelta(minutes=19) < lease.expires_at - before <= timedelta(minutes=20, seconds=1)
    assert Task.objects.get(pk=task.pk).filled == 1


def test_lease_minutes_come_from_the_campaign():
    campaign = factories.open_campaign(lease_minutes=5)
    factories.TaskFactory(campaign=campaign)
    lease = svc.assignment_next(expert=factories.ExpertFactory(), campaign=campaign)
    assert lease.expires_at - lease.leased_at == timedelta(minutes=5)


def test_display_order_is_random_per_expert(open_campaign):
    task = factories.TaskFactory(campaign=open_campaign)
    orders = set()
    for _ in range(30):
        lease = svc.assignment_next(expert=factories.ExpertFactory(), campaign=open_campaign)
        assert lease.task_id == task.pk
        orders.add(tuple(lease.display_order))
        svc.assignment_skip(expert=lease.expert, assignment_id=lease.pk, reason="test")
    assert orders == {(0, 1), (1, 0)}


def test_unexpired_lease_is_handed_back(open_campaign):
    factories.TaskFactory(campaign=open_campaign)
    factories.TaskFactory(campaign=open_campaign)
    expert = factories.ExpertFactory()
    first = svc.assignment_next(expert=expert, campaign=open_campaign)
    again = svc.assignment_next(expert=expert, campaign=open_campaign)
    assert again.pk == first.pk
    assert sum(Task.objects.values_list("filled", flat=True)) == 1


def test_overlap_is_never_exceeded():
    campaign = factories.open_campaign(overlap=2, max_overlap=5)
    task = factories.TaskFactory(campaign=campaign)
    leases = [svc.assignment_next(expert=factories.ExpertFactory(), campaign=campaign) for _ in range(3)]
    assert [lease.task_id if lease else None for lease in leases] == [task.pk, task.pk, None]
    assert Task.objects.get(pk=task.pk).filled == 2


def test_an_expert_never_gets_a_task_twice(open_campaign):
    task = factories.TaskFactory(campaign=open_campaign)
    expert = factories.ExpertFactory()
    lease = rate_once(open_campaign, expert)
    assert lease.task_id == task.pk
    assert svc.assignment_next(expert=expert, campaign=open_campaign) is None
    other = factories.TaskFactory(campaign=open_campaign)
    assert svc.assignment_next(expert=expert, campaign=open_campaign).task_id == other.pk


def test_tasks_closest_to_completion_come_first(open_campaign, settings):
    # A window of one is the strict order; the default draws among the most-needed
    # (test_assignment_fairness.py shows the preference holds within the window).
    settings.DATADAO_ASSIGN_WINDOW = 1
    empty, fullest, half = (factories.TaskFactory(campaign=open_campaign) for _ in range(3))
    Task.objects.filter(pk=fullest.pk).update(filled=2, judgment_count=2)
    Task.objects.filter(pk=half.pk).update(filled=1, judgment_count=1)
    expert = factories.ExpertFactory()
    served = []
    for _ in range(3):
        lease = svc.assignment_next(expert=expert, campaign=open_campaign)
        served.append(lease.task_id)
        submit(expert, lease)
    assert served == [fullest.pk, half.pk, empty.pk]


def test_no_gold_at_rate_zero(open_campaign):
    for _ in range(20):
        factories.TaskFactory(campaign=open_campaign)
        factories.GoldTaskFactory(campaign=open_campaign)
    expert = factories.ExpertFactory()
    rng = random.Random(3)
    for _ in range(20):
        lease = svc.assignment_next(expert=expert, campaign=open_campaign, rng=rng)
        assert not lease.task.is_gold
        submit(expert, lease)


def test_gold_is_injected_at_the_campaign_rate():
    campaign = factories.open_campaign(gold_rate=0.5)
    for _ in range(60):
        factories.TaskFactory(campaign=campaign)
        factories.GoldTaskFactory(campaign=campaign)
    expert = factories.ExpertFactory()
    rng = random.Random(11)
    gold = 0
    for _ in range(60):
        lease = svc.assignment_next(expert=expert, campaign=campaign, rng=rng)
        gold += lease.task.is_gold
        submit(expert, lease)
    # Binomial(60, 0.5): 30 +- 3.9; these bounds are 3.6 sigma wide.
    assert 16 <= gold <= 44
    # Gold never repeats for an expert and leaves room for regular tasks.
    assert Assignment.objects.filter(expert=expert).values("task").distinct().count() == 60


def test_gold_seen_in_a_qualification_test_is_never_a_honeypot():
    campaign = factories.open_campaign(gold_rate=0.5)
    seen = factories.GoldTaskFactory(campaign=campaign)
    fresh = factories.GoldTaskFactory(campaign=campaign)
    factories.TaskFactory(campaign=campaign)
    expert = factories.ExpertFactory()
    from annotations.models import QualificationAttempt

    test = QualificationAttempt.objects.create(expert=expert, domain="medicine", started_at=timezone.now(), pass_mark=0.8)
    QualificationItem.objects.create(attempt=test, expert=expert, task=seen, display_order=[0, 1])

    class AlwaysGold(random.Random):
        def random(self):
            return 0.0

    lease = svc.assignment_next(expert=expert, campaign=campaign, rng=AlwaysGold(1))
    assert lease.task_id == fresh.pk


def test_own_expired_lease_is_reclaimed_on_next(open_campaign):
    first, second = factories.TaskFactory(campaign=open_campaign), factories.TaskFactory(campaign=open_campaign)
    expert = factories.ExpertFactory()
    lease = svc.assignment_next(expert=expert, campaign=open_campaign)
    later = lease.expires_at + timedelta(seconds=1)
    fresh = svc.assignment_next(expert=expert, campaign=open_campaign, now=later)
    lease.refresh_from_db()
    assert lease.state == Assignment.State.EXPIRED
    assert fresh.pk != lease.pk and fresh.task_id != lease.task_id
    assert Task.objects.get(pk=lease.task_id).filled == 0
    assert {first.pk, second.pk} == {lease.task_id, fresh.task_id}


def test_others_expired_leases_free_the_last_places():
    campaign = factories.open_campaign(overlap=1, max_overlap=1)
    task = factories.TaskFactory(campaign=campaign)
    stale = svc.assignment_next(expert=factories.ExpertFactory(), campaign=campaign)
    newcomer = factories.ExpertFactory()
    assert svc.assignment_next(expert=newcomer, campaign=campaign) is None
    lease = svc.assignment_next(expert=newcomer, campaign=campaign, now=stale.expires_at + timedelta(seconds=1))
    assert lease.task_id == task.pk
    stale.refresh_from_db()
    assert stale.state == Assignment.State.EXPIRED
    assert Task.objects.get(pk=task.pk).filled == 1


def test_reclaim_job_is_safe_to_run_twice(open_campaign):
    from annotations.tasks import leases_reclaim

    for _ in range(3):
        factories.TaskFactory(campaign=open_campaign)
    leases = [svc.assignment_next(expert=factories.ExpertFactory(), campaign=open_campaign) for _ in range(2)]
    Assignment.objects.filter(pk=leases[0].pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert leases_reclaim.delay().get() == 1
    assert lease_services.leases_reclaim() == 0
    filled = dict(Task.objects.values_list("pk", "filled"))
    # The first lease went, the second stays: only its task still counts a place.
    assert filled[leases[1].task_id] == 1
    assert sum(filled.values()) == 1
    assert Assignment.objects.get(pk=leases[1].pk).state == Assignment.State.LEASED


def test_skip_releases_the_task_for_others_but_not_for_me():
    campaign = factories.open_campaign(overlap=1, max_overlap=1)
    task = factories.TaskFactory(campaign=campaign)
    expert = factories.ExpertFactory()
    lease = svc.assignment_next(expert=expert, campaign=campaign)
    skipped = svc.assignment_skip(expert=expert, assignment_id=lease.pk, reason="Outside my expertise")
    assert skipped.state == Assignment.State.SKIPPED and skipped.skip_reason == "Outside my expertise"
    assert Task.objects.get(pk=task.pk).filled == 0
    assert svc.assignment_next(expert=expert, campaign=campaign) is None
    assert svc.assignment_next(expert=factories.ExpertFactory(), campaign=campaign).task_id == task.pk
    # Skipping twice is harmless; a reason is required.
    assert svc.assignment_skip(expert=expert, assignment_id=lease.pk, reason="again").state == "skipped"
    assert Task.objects.get(pk=task.pk).filled == 1
    with pytest.raises(ServiceError, match="why"):
        svc.assignment_skip(expert=expert, assignment_id=lease.pk, reason="  ")


def test_task_completes_at_its_overlap_and_the_hook_runs_once(open_campaign, django_capture_on_commit_callbacks, monkeypatch):
    completed = []
    monkeypatch.setattr(judgments, "on_task_complete", completed.append)
    task = factories.TaskFactory(campaign=open_campaign)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            rate_once(open_campaign)
    task.refresh_from_db()
    assert task.state == Task.State.COMPLETE
    assert (task.judgment_count, task.filled) == (3, 3)
    assert completed == [task.pk]
    assert svc.assignment_next(expert=factories.ExpertFactory(), campaign=open_campaign) is None


def test_ineligible_expert_gets_no_work(open_campaign):
    factories.TaskFactory(campaign=open_campaign)
    with pytest.raises(ServiceError) as info:
        svc.assignment_next(expert=factories.ExpertFactory(domains=["law"]), campaign=open_campaign)
    assert info.value.status == 403
    assert Task.objects.get().filled == 0


def test_claim_query_does_not_scan_the_campaign(open_campaign, django_assert_max_num_queries):
    """The claim is a bounded number of queries whatever the campaign's size."""
    for _ in range(50):
        factories.TaskFactory(campaign=open_campaign)
    expert = factories.ExpertFactory()
    with django_assert_max_num_queries(12):
        lease = svc.assignment_next(expert=expert, campaign=open_campaign)
    assert lease is not None
    assert experts.expert_eligibility(expert=expert, campaign=open_campaign)
