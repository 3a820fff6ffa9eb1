"""A judgment's follow-up work: the consensus mark is stored with the judgment, a lost or failed job is
repaired by the sweep, and a broker that is down costs the expert no waiting."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerDown

from annotations import assignment, followup, judgments, tasks
from annotations.judgments import JudgmentInput, judgment_submit
from annotations.models import Task, TaskConsensus
from datadao.celery import app
from tests import factories

pytestmark = pytest.mark.django_db

RATIONALE = "B names the contraindication; A misses it."


@pytest.fixture(autouse=True)
def _publish_not_paused():
    followup._paused_until = 0.0
    yield
    followup._paused_until = 0.0


@pytest.fixture(params=["fast", "portable"])
def lane(request, monkeypatch):
    """Both submit paths: PostgreSQL's one statement and the ORM's (SQLite always takes the ORM's)."""
    if request.param == "portable":
        monkeypatch.setattr(judgments, "_submit_postgres", lambda *args: None)
    return request.param


def _complete_a_task(capture, *, overlap: int = 1):
    """A one-task campaign judged by ``overlap`` experts, after-commit hooks run as in production."""
    campaign = factories.open_campaign(overlap=overlap, max_overlap=overlap)
    task = factories.TaskFactory(campaign=campaign)
    results = []
    for _ in range(overlap):
        expert = factories.ExpertFactory()
        lease = assignment.assignment_next(expert=expert, campaign=campaign)
        # Everyone finds the first upload better, whichever slot shows it.
        ranking = ["A", "B"] if lease.display_order[0] == 0 else ["B", "A"]
        with capture(execute=True):
            results.append(judgment_submit(expert=expert, assignment_id=lease.pk, data=JudgmentInput(
                ranking=ranking, strength=-2 if ranking[0] == "A" else 2, rationale=RATIONALE)))
    task.refresh_from_db()
    return task, results[-1].judgment


def _publish_fails(monkeypatch):
    def down(*args, **kwargs):
        raise BrokerDown("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.task_consensus_update, "apply_async", down)


def test_the_completing_judgment_marks_the_task_due_in_its_own_write(lane, monkeypatch,
                                                                     django_capture_on_commit_callbacks):
    _publish_fails(monkeypatch)
    task, judgment = _complete_a_task(django_capture_on_commit_callbacks)
    assert task.state == Task.State.COMPLETE
    # Stored with the judgment, although its job was never queued.
    assert task.consensus_due_at == judgment.submitted_at
    assert not TaskConsensus.objects.filter(task=task).exists()


def test_a_judgment_that_does_not_complete_the_task_marks_nothing(lane, django_capture_on_commit_callbacks):
    campaign = factories.open_campaign(overlap=2, max_overlap=2)
    task = factories.TaskFactory(campaign=campaign)
    expert = factories.ExpertFactory()
    lease = assignment.assignment_next(expert=expert, campaign=campaign)
    with django_capture_on_commit_callbacks(execute=True):
        judgment_submit(expert=expert, assignment_id=lease.pk,
                        data=JudgmentInput(ranking=["A", "B"], strength=-2, rationale=RATIONALE))
    task.refresh_from_db()
    assert task.state == Task.State.OPEN and task.consensus_due_at is None


def test_the_job_computes_the_consensus_and_clears_the_mark(lane, django_capture_on_commit_callbacks):
    task, _ = _complete_a_task(django_capture_on_commit_callbacks)
    assert TaskConsensus.objects.get(task=task).n_raters == 1
    assert task.consensus_due_at is None


def test_the_sweep_computes_what_a_lost_publish_left_and_running_it_twice_is_harmless(
        lane, monkeypatch, django_capture_on_commit_callbacks):
    _publish_fails(monkeypatch)
    task, judgment = _complete_a_task(django_capture_on_commit_callbacks, overlap=2)
    assert task.consensus_due_at is not None and not TaskConsensus.objects.filter(task=task).exists()

    # Within 30 s the published job still has its chance: the sweep leaves the task alone.
    assert followup.consensus_due_sweep(now=judgment.submitted_at + timedelta(seconds=5)) == 0
    assert not TaskConsensus.objects.filter(task=task).exists()

    later = judgment.submitted_at + timedelta(seconds=followup.SWEEP_AFTER_S + 1)
    assert followup.consensus_due_sweep(now=later) == 1
    consensus = TaskConsensus.objects.get(task=task)
    assert consensus.n_raters == 2 and consensus.ranks == [1, 2]
    task.refresh_from_db()
    assert task.consensus_due_at is None

    assert followup.consensus_due_sweep(now=later) == 0
    again = TaskConsensus.objects.get(task=task)
    assert (again.computed_at, again.ranks, again.n_raters) == (consensus.computed_at, [1, 2], 2)


def test_a_job_that_ran_out_of_retries_in_a_database_outage_is_repaired(monkeypatch,
                                                                       django_capture_on_commit_callbacks):
    from annotations.quality import services as quality_services

    real = quality_services.task_consensus_update

    def database_away(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(quality_services, "task_consensus_update", database_away)
    task, judgment = _complete_a_task(django_capture_on_commit_callbacks)
    assert task.consensus_due_at is not None and not TaskConsensus.objects.filter(task=task).exists()

    monkeypatch.setattr(quality_services, "task_consensus_update", real)
    assert followup.consensus_due_sweep(now=judgment.submitted_at + timedelta(seconds=60)) == 1
    assert TaskConsensus.objects.filter(task=task).exists()
    task.refresh_from_db()
    assert task.consensus_due_at is None


def test_a_newer_mark_set_while_the_job_ran_stays_for_its_own_job(django_capture_on_commit_callbacks, monkeypatch):
    from annotations.quality import services as quality_services

    task, _ = _complete_a_task(django_capture_on_commit_callbacks)
    first = timezone.now() - timedelta(minutes=5)
    newer = timezone.now()
    Task.objects.filter(pk=task.pk).update(consensus_due_at=first)
    real = quality_services.task_consensus_update

    def another_completion_meanwhile(**kwargs):
        result = real(**kwargs)
        Task.objects.filter(pk=task.pk).update(consensus_due_at=newer)
        return result

    monkeypatch.setattr(quality_services, "task_consensus_update", another_completion_meanwhile)
    followup.task_consensus_settle(task_id=task.pk)
    task.refresh_from_db()
    assert task.consensus_due_at == newer


def test_submit_does_not_wait_on_a_broker_that_is_down(lane, monkeypatch, django_capture_on_commit_callbacks):
    # A real publish to a Redis that refuses connections, with the project's broker settings.
    monkeypatch.setattr(app.conf, "task_always_eager", False)
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    monkeypatch.setattr(app, "_pool", None)
    monkeypatch.setattr(app.amqp, "_producer_pool", None)
    campaign = factories.open_campaign(overlap=1, max_overlap=1)
    tasks_ = [factories.TaskFactory(campaign=campaign) for _ in range(2)]
    took = []
    for _ in tasks_:
        expert = factories.ExpertFactory()
        lease = assignment.assignment_next(expert=expert, campaign=campaign)
        started = time.monotonic()
        with django_capture_on_commit_callbacks(execute=True):
            result = judgment_submit(expert=expert, assignment_id=lease.pk, data=JudgmentInput(
                ranking=["B", "A"], strength=2, rationale=RATIONALE))
        took.append(time.monotonic() - started)
        assert result.created
    assert max(took) < 1.0, took
    assert all(t.consensus_due_at is not None for t in Task.objects.filter(pk__in=[t.pk for t in tasks_]))


def test_beat_runs_the_sweeps_every_few_minutes_and_the_broker_redelivers_within_minutes():
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["annotations.consensus_due_sweep"]["schedule"] == 60.0
    assert "annotations.consensus_due_sweep" in app.tasks and "annotations.exports_sweep" in app.tasks
    assert schedule["annotations.exports_sweep"]["task"] == "annotations.exports_sweep"
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    # A killed job comes back within minutes; a sweep run ends well before it would be redelivered.
    assert followup.SWEEP_BUDGET_S < visibility <= 600
