"""With a broker, completions queue one consensus drain per burst, and the drain computes every marked task in
batches per campaign, with the same consensus the one-task job computes."""
from __future__ import annotations

import os

import pytest
import redis
from django.utils import timezone

from annotations import assignment, followup
from annotations.judgments import JudgmentInput, judgment_submit
from annotations.models import Task, TaskConsensus
from annotations.quality import services as quality_services
from datadao.celery import app
from tests import factories

pytestmark = pytest.mark.django_db

RATIONALE = "B names the contraindication; A misses it."
BROKER = os.environ.get("CELERY_BROKER_URL", "")


def _judge(campaign, task_count: int, experts: int, *, prefer_first: bool = True):
    """Every expert judges every task; returns the tasks (complete, marked due)."""
    tasks = [factories.TaskFactory(campaign=campaign) for _ in range(task_count)]
    k = campaign.responses_per_task
    for e in range(experts):
        expert = factories.ExpertFactory()
        for _ in tasks:
            lease = assignment.assignment_next(expert=expert, campaign=campaign)
            if k == 2:
                first_shown = lease.display_order[0] == 0
                better_first = prefer_first != (e == experts - 1)  # the last expert disagrees
                ranking = ["A", "B"] if first_shown == better_first else ["B", "A"]
                data = JudgmentInput(ranking=ranking, strength=-2 if ranking[0] == "A" else 2, rationale=RATIONALE)
            else:
                letters = "ABC"
                ranking = [letters[lease.display_order.index(p)] for p in (1, 0, 2)]  # upload 1 > 0 > 2
                data = JudgmentInput(ranking=ranking, rationale=RATIONALE)
            judgment_submit(expert=expert, assignment_id=lease.pk, data=data)
    return tasks


@pytest.mark.parametrize("k", [2, 3])
def test_the_batch_computes_what_the_one_task_job_computes(k):
    campaign = factories.open_campaign(responses_per_task=k, overlap=3, max_overlap=5)
    tasks = _judge(campaign, 4, 3)
    single = {}
    for task in tasks:
        row = quality_services.task_consensus_update(task_id=task.pk)
        single[task.pk] = (row.ranks, row.margin, row.n_raters, row.effective_votes, row.pairs, row.tokens)
    TaskConsensus.objects.filter(task__in=tasks).delete()
    Task.objects.filter(pk__in=[t.pk for t in tasks]).update(state=Task.State.COMPLETE, target_overlap=3)

    written = quality_services.tasks_consensus_update(campaign=campaign, task_ids=[t.pk for t in tasks])
    assert written == 4
    batch = {c.task_id: (c.ranks, c.margin, c.n_raters, c.effective_votes, c.pairs, c.tokens)
             for c in TaskConsensus.objects.filter(task__in=tasks)}
    assert batch == single
    if k == 2:  # two against one: under the default margin, so each task gets another rater, as one by one
        assert set(Task.objects.filter(pk__in=batch).values_list("target_overlap", flat=True)) == {4}


def test_the_drain_computes_every_marked_task_of_every_campaign_and_clears_the_marks():
    first, second = factories.open_campaign(overlap=1, max_overlap=1), factories.open_campaign(overlap=1, max_overlap=1)
    tasks = _judge(first, 3, 1) + _judge(second, 2, 1)  # in-process mode: each computed at once
    TaskConsensus.objects.all().delete()
    now = timezone.now()
    Task.objects.filter(pk__in=[t.pk for t in tasks]).update(consensus_due_at=now)

    assert followup.consensus_drain() == 5
    assert TaskConsensus.objects.filter(task__in=tasks).count() == 5
    assert not Task.objects.filter(consensus_due_at__isnull=False).exists()
    assert followup.consensus_drain() == 0  # nothing marked: nothing computed


def test_a_bad_task_in_a_batch_stays_marked_and_the_others_are_computed(monkeypatch):
    campaign = factories.open_campaign(overlap=1, max_overlap=1)
    tasks = _judge(campaign, 3, 1)
    TaskConsensus.objects.all().delete()
    Task.objects.filter(pk__in=[t.pk for t in tasks]).update(consensus_due_at=timezone.now())
    bad = tasks[1].pk
    real_batch, real_one = quality_services.tasks_consensus_update, quality_services.task_consensus_update

    def batch(**kwargs):
        if bad in kwargs["task_ids"]:
            raise ValueError("a task the maths cannot read")
        return real_batch(**kwargs)

    def one(*, task_id):
        if task_id == bad:
            raise ValueError("a task the maths cannot read")
        return real_one(task_id=task_id)

    monkeypatch.setattr(quality_services, "tasks_consensus_update", batch)
    monkeypatch.setattr(quality_services, "task_consensus_update", one)
    assert followup.consensus_drain(budget_s=2) == 2
    assert set(TaskConsensus.objects.values_list("task_id", flat=True)) == {tasks[0].pk, tasks[2].pk}
    assert list(Task.objects.filter(consensus_due_at__isnull=False).values_list("id", flat=True)) == [bad]


@pytest.mark.skipif(not BROKER.startswith("redis://"), reason="needs CELERY_BROKER_URL on Redis")
def test_with_a_broker_a_burst_of_completions_queues_one_drain(monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(app.conf, "task_always_eager", False)
    monkeypatch.setattr(app.conf, "broker_url", BROKER)
    monkeypatch.setattr(followup, "_paused_until", 0.0)
    queued = []
    monkeypatch.setattr(followup, "job_queue", lambda name, *args, **kwargs: queued.append((name, args, kwargs.get("countdown"))))
    flags = redis.Redis.from_url(BROKER)
    flags.delete(followup.DRAIN_FLAG)
    campaign = factories.open_campaign(overlap=1, max_overlap=1)
    with django_capture_on_commit_callbacks(execute=True):
        tasks = _judge(campaign, 4, 1)
    assert queued == [("annotations.consensus_drain", (), None)]
    assert Task.objects.filter(pk__in=[t.pk for t in tasks], consensus_due_at__isnull=False).count() == 4

    # The drain clears the flag before it reads: a completion from then on queues the next drain.
    assert followup.consensus_drain(wait_s=0.1) == 4
    assert flags.get(followup.DRAIN_FLAG) is None
    with django_capture_on_commit_callbacks(execute=True):
        _judge(campaign, 1, 1)
    assert queued[-1][:2] == ("annotations.consensus_drain", ()) and len(queued) == 2
    flags.delete(followup.DRAIN_FLAG)


def test_a_second_drain_leaves_the_marks_to_the_one_running(django_db_blocker):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the one-drain lock is PostgreSQL's (SQLite runs one writer anyway)")
    import psycopg

    campaign = factories.open_campaign(overlap=1, max_overlap=1)
    tasks = _judge(campaign, 2, 1)
    Task.objects.filter(pk__in=[t.pk for t in tasks]).update(consensus_due_at=timezone.now())
    settings = connection.settings_dict
    with psycopg.connect(dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"] or None,
                         port=settings["PORT"] or None, autocommit=True) as running:
        running.execute("SELECT pg_advisory_lock(%s)", [followup._DRAIN_LOCK])
        assert followup.consensus_drain() == 0
        assert Task.objects.filter(consensus_due_at__isnull=False).count() == 2
    assert followup.consensus_drain() == 2  # the lock went with that session
