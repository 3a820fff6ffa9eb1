"""The demo's periodic jobs run in-process, so a judgment made in the demo reaches the lab's quality page."""
from __future__ import annotations

import pytest

from annotations.models import QualityReport
from datadao import demo_beat
from tests import factories

pytestmark = pytest.mark.django_db


def test_the_demo_runs_the_beat_schedule_at_most_every_half_minute_without_the_model_side_job(settings):
    periods = demo_beat.schedule(30.0)
    assert periods["annotations.quality_recompute_open_campaigns"] == 30.0  # 10 minutes on a deployment
    assert periods["annotations.leases_reclaim"] == 30.0
    assert periods["rewards.epochs_roll"] == 30.0
    assert "annotations.data_value_refresh_open_campaigns" not in periods
    assert set(periods) | demo_beat.SKIPPED == {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}


def test_a_judgment_shows_in_quality_at_the_next_turn_and_jobs_wait_for_their_period(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    campaign = factories.open_campaign(overlap=2, max_overlap=2)
    experts = [factories.ExpertFactory() for _ in range(2)]
    tasks = factories.tasks_bulk(campaign, 3)
    factories.judgments_bulk([{"task": t, "expert": e, "ranks": [1, 2]} for t in tasks for e in experts])
    assert not QualityReport.objects.filter(campaign=campaign).exists()
    periods = {"annotations.quality_recompute_open_campaigns": 30.0, "annotations.leases_reclaim": 30.0}
    last_run: dict[str, float] = {}

    assert demo_beat.tick(last_run, periods, now=100.0) == list(periods)
    report = QualityReport.objects.get(campaign=campaign)
    assert report.figures["n_judgments"] == 6

    assert demo_beat.tick(last_run, periods, now=110.0) == []  # not yet: 30 s between runs
    assert demo_beat.tick(last_run, periods, now=131.0) == list(periods)


def test_a_failing_job_is_logged_and_the_others_still_run(monkeypatch, caplog):
    ran = []

    def queue(name):
        if name == "boom":
            raise RuntimeError("a job that fails")
        ran.append(name)

    monkeypatch.setattr(demo_beat, "job_queue", queue)
    assert demo_beat.tick({}, {"boom": 30.0, "fine": 30.0}, now=0.0) == ["fine"]
    assert ran == ["fine"] and "demo beat: boom failed" in caplog.text


def test_the_in_process_beat_refuses_to_run_beside_a_broker(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with pytest.raises(RuntimeError, match="celery beat"):
        demo_beat.start()
