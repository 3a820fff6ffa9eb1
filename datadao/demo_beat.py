"""The periodic jobs in-process, for the demo: no broker, no ``celery beat``.

``make demo`` serves the app with Celery in-process (``task_always_eager``),
where nothing runs the beat schedule: campaign quality would stay as the
seed left it and epochs would never settle. :func:`start` runs the same
schedule (``CELERY_BEAT_SCHEDULE``) on a daemon thread of the web process,
each job at most every ``max_period`` seconds (30 by default, so a judgment
made in the demo shows in the lab's quality page within a minute). A job
that fails is logged and tried again at its next turn. Only for the demo:
with a broker, ``celery beat`` and a worker do this.
"""
from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connections

from datadao.jobs import job_queue

logger = logging.getLogger(__name__)

# Jobs left out of the demo's beat: the data-value refresh needs the model-side extras (torch), which the
# demo does not install, and is an hour's job on a real deployment.
SKIPPED = frozenset({"annotations.data_value_refresh_open_campaigns"})


def schedule(max_period: float) -> dict[str, float]:
    """Task name -> period in seconds: the beat schedule's, capped at ``max_period``."""
    out = {}
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        if entry["task"] in SKIPPED:
            continue
        out[entry["task"]] = min(float(entry["schedule"]), max_period)
    return out


def tick(last_run: dict[str, float], periods: dict[str, float], now: float) -> list[str]:
    """Run every job whose period has passed since ``last_run`` (never run: due); returns the names run."""
    ran = []
    for name, period in periods.items():
        if now - last_run.get(name, float("-inf")) < period:
            continue
        last_run[name] = now
        try:
            job_queue(name)
            ran.append(name)
        except Exception:  # noqa: BLE001 - a demo job that fails is tried again at its next turn
            logger.exception("demo beat: %s failed", name)
    return ran


def start(max_period: float = 30.0, *, first_after: float = 5.0) -> threading.Thread:
    """Run the schedule on a daemon thread of this process (in-process Celery only)."""
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        raise RuntimeError("the in-process beat is for the demo; with a broker run `celery beat` and a worker")
    periods = schedule(max_period)
    step = max(1.0, min(periods.values(), default=max_period) / 2)

    def loop() -> None:
        last_run: dict[str, float] = {}
        time.sleep(first_after)
        while True:
            close_old_connections()
            try:
                tick(last_run, periods, time.monotonic())
            finally:
                connections.close_all()  # this thread's connections: SQLite locks nothing between turns
            time.sleep(step)

    thread = threading.Thread(target=loop, name="demo-beat", daemon=True)
    thread.start()
    return thread
