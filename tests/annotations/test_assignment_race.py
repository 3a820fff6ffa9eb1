"""Fifty experts race for work on PostgreSQL until the campaign is exhausted."""
import threading
from collections import Counter

import pytest
from django.db import connection

from annotations import assignment as svc
from annotations import judgments, leases
from annotations.models import Assignment, Expert, Judgment, Task
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

EXPERTS = 50
TASKS = 100
OVERLAP = 3


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("race test needs PostgreSQL (set DATABASE_URL)")


def test_fifty_experts_exhaust_a_campaign_without_overfilling_or_repeats():
    campaign = factories.open_campaign(overlap=OVERLAP, max_overlap=OVERLAP)
    for _ in range(TASKS):
        factories.TaskFactory(campaign=campaign)
    expert_ids = [factories.ExpertFactory().pk for _ in range(EXPERTS)]
    start = threading.Barrier(EXPERTS)
    errors: list[BaseException] = []
    served: list[tuple[int, int]] = []
    peak = {"filled": 0}
    lock = threading.Lock()

    def expert_loop(expert_id: int) -> None:
        try:
            expert = Expert.objects.get(pk=expert_id)
            start.wait()
            while True:
                lease = svc.assignment_next(expert=expert, campaign=campaign)
                if lease is None:
                    return
                filled = Task.objects.filter(pk=lease.task_id).values_list("filled", flat=True).get()
                with lock:
                    served.append((lease.task_id, expert_id))
                    peak["filled"] = max(peak["filled"], filled)
                # Everyone prefers the first upload, whichever slot shows it.
                first_is_a = lease.display_order[0] == 0
                judgments.judgment_submit(expert=expert, assignment_id=lease.pk, data=judgments.JudgmentInput(
                    ranking=["A", "B"] if first_is_a else ["B", "A"], strength=-1 if first_is_a else 1,
                    rationale="The first answer is the safer and more complete one.",
                ))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=expert_loop, args=(expert_id,)) for expert_id in expert_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "an expert loop hung"
    assert not errors, errors[:3]

    # Nobody got a task twice, and no task was ever leased past its overlap.
    assert len(served) == len(set(served)) == TASKS * OVERLAP
    assert peak["filled"] <= OVERLAP
    assert max(Counter(task for task, _ in served).values()) == OVERLAP
    # Every task ended with exactly three judgments from three different experts.
    per_task = Counter(Judgment.objects.values_list("task_id", flat=True))
    assert len(per_task) == TASKS and set(per_task.values()) == {OVERLAP}
    assert Judgment.objects.values("task", "expert").distinct().count() == TASKS * OVERLAP
    # Filled to the overlap and out of the pool (consensus may
    # still send a task to review).
    assert set(Task.objects.values_list("filled", "judgment_count").distinct()) == {(OVERLAP, OVERLAP)}
    assert not Task.objects.filter(state=Task.State.OPEN).exists()
    assert not Assignment.objects.filter(state=Assignment.State.LEASED).exists()
    # The work was shared: the race really ran concurrently.
    assert len({expert for _, expert in served}) > EXPERTS // 2


def test_the_claim_walks_the_assignment_index_instead_of_scanning_the_campaign():
    """No sequential scan and no sort of the campaign (only of the window drawn from): the claim's cost does not
    grow with the campaign."""
    from django.utils import timezone

    from annotations.models import Response

    campaign = factories.open_campaign()
    tasks = Task.objects.bulk_create([
        Task(campaign=campaign, external_id=f"t{i}", prompt="q", target_overlap=3, is_gold=i % 20 == 0)
        for i in range(5000)
    ])
    Response.objects.bulk_create([Response(task=t, position=p, text="a") for t in tasks for p in (0, 1)])
    expert = factories.ExpertFactory()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE annotations_task")
        cursor.execute("ANALYZE annotations_assignment")
        for gold in (False, True):
            now = timezone.now()
            cursor.execute("EXPLAIN " + leases._claim_sql(gold=gold, window=32), {
                "campaign": campaign.pk, "expert": expert.pk, "gold": gold, "open": "open", "leased": "leased",
                "order": "[0, 1]", "now": now, "expires": now, "salt": "0.5",
            })
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "task_assign_idx" in plan, plan
            assert "Seq Scan on annotations_task" not in plan, plan
            # The one sort is the random draw among the window's rows (at most 32), never the campaign.
            sorts = [line for line in plan.splitlines() if "Sort Key:" in line]
            assert len(sorts) == 1 and "md5" in sorts[0], plan
            assert "Limit  (cost" in plan and "rows=32 " in plan, plan


def test_a_judgment_sent_eight_times_at_once_is_recorded_once():
    """Double clicks and client retries racing each other: one judgment, one count on the task, and every
    request answered with it (201 once, 200 for the repeats)."""
    campaign = factories.open_campaign(overlap=1, max_overlap=1)
    task = factories.TaskFactory(campaign=campaign)
    expert = factories.ExpertFactory()
    lease = svc.assignment_next(expert=expert, campaign=campaign)
    first_is_a = lease.display_order[0] == 0
    data = judgments.JudgmentInput(ranking=["A", "B"] if first_is_a else ["B", "A"], strength=-1 if first_is_a else 1,
                             rationale="The first answer is the safer and more complete one.")
    senders = 8
    start = threading.Barrier(senders)
    results: list[tuple[bool, int]] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            start.wait()
            result = judgments.judgment_submit(expert=Expert.objects.get(pk=expert.pk), assignment_id=lease.pk, data=data)
            results.append((result.created, result.judgment.pk))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors[:3]
    assert sorted(created for created, _ in results) == [False] * (senders - 1) + [True]
    assert len({judgment for _, judgment in results}) == 1
    assert Judgment.objects.filter(task=task).count() == 1
    task.refresh_from_db()
    assert (task.judgment_count, task.filled, task.state) == (1, 1, Task.State.COMPLETE)
