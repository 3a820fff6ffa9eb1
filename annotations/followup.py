"""A judgment's follow-up work (the task's consensus): durable, and never in the expert's way.

The judgment that completes a task also sets ``Task.consensus_due_at`` in
the same statement (PostgreSQL) or transaction (the ORM path), so the need
for a consensus is stored exactly when the judgment is. After commit the job
(``annotations.task_consensus_update``) is published with one immediate
retry, one connection attempt and short socket timeouts (settings): a broker
outage costs the request milliseconds, never seconds; a failed publish is
only logged, and later publishes pause for :data:`PUBLISH_PAUSE_S`. The job
computes the consensus and clears the mark it read (a newer mark, from a
later completion, stays). Every minute the sweep
(``annotations.consensus_due_sweep``) computes the consensus of every task
whose mark is older than :data:`SWEEP_AFTER_S`, which repairs a lost publish
and a job that ran out of retries during a database outage. Computing a
consensus twice gives the same consensus, so every step is safe to repeat.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.db import OperationalError, transaction
from django.utils import timezone
from kombu.exceptions import KombuError

from annotations.models import Task
from datadao.jobs import job_queue

logger = logging.getLogger(__name__)

# A mark older than this is the sweep's: the job published with it has had time to run.
SWEEP_AFTER_S = 30
# The sweep stops starting tasks after this long and leaves the rest to its next run (every minute), so
# one run stays well inside the broker's visibility timeout and two runs seldom overlap.
SWEEP_BUDGET_S = 40
SWEEP_BATCH = 200
# After a failed publish, later ones are skipped this long: a broker that times out rather than refuses
# would otherwise cost every submit the connect timeout. The sweep computes what was skipped.
PUBLISH_PAUSE_S = 5.0

_PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}
_paused_until = 0.0


def consensus_publish(task_id: int) -> bool:
    """Queue the task's consensus job, once, without waiting on a broker that is down. Call after commit.

    Returns False when the publish failed or was skipped; the mark stays and the sweep computes it.
    """
    global _paused_until
    if time.monotonic() < _paused_until:
        return False
    try:
        # One immediate retry (a pooled connection gone stale after a broker restart reconnects); the
        # transport's single connection attempt and short socket timeouts bound the rest (settings).
        job_queue("annotations.task_consensus_update", task_id, retry=True, retry_policy=_PUBLISH_RETRY)
    except (KombuError, OSError):
        _paused_until = time.monotonic() + PUBLISH_PAUSE_S
        logger.warning("consensus of task %s not queued (broker unavailable); the sweep will compute it",
                       task_id, exc_info=True)
        return False
    except Exception:  # noqa: BLE001 - in-process (eager) Celery: the job itself failed; the mark stays
        logger.exception("consensus of task %s failed; the sweep will compute it", task_id)
        return False
    return True


def consensus_request(*, task_id: int, now: datetime | None = None) -> None:
    """Mark the task's consensus due (in the caller's transaction) and queue its job after commit."""
    Task.objects.filter(pk=task_id).update(consensus_due_at=now or timezone.now())
    transaction.on_commit(lambda: consensus_publish(task_id))


def task_consensus_settle(*, task_id: int) -> None:
    """Compute the task's consensus, then clear its mark if it is still the one read before computing.

    The mark is read first, so every judgment committed with it is in the consensus; a later completion
    sets a newer mark, which stays for its own job (or the sweep).
    """
    from annotations.quality import services as quality_services

    seen = Task.objects.filter(pk=task_id).values_list("consensus_due_at", flat=True).first()
    quality_services.task_consensus_update(task_id=task_id)
    if seen is not None:
        Task.objects.filter(pk=task_id, consensus_due_at=seen).update(consensus_due_at=None)


def consensus_due_sweep(*, now: datetime | None = None, older_than_s: float = SWEEP_AFTER_S,
                        budget_s: float = SWEEP_BUDGET_S) -> int:
    """Compute the consensus of tasks whose mark is older than ``older_than_s``, oldest first; returns how
    many were computed. A task that fails is logged and left marked, so it is tried again next run."""
    cutoff = (now or timezone.now()) - timedelta(seconds=older_than_s)
    deadline = time.monotonic() + budget_s
    done, failed = 0, set()
    while time.monotonic() < deadline:
        due = list(Task.objects.filter(consensus_due_at__lte=cutoff).exclude(pk__in=failed)
                   .order_by("consensus_due_at").values_list("id", flat=True)[:SWEEP_BATCH])
        if not due:
            break
        for task_id in due:
            if time.monotonic() >= deadline:
                break
            try:
                task_consensus_settle(task_id=task_id)
            except OperationalError:
                raise  # the database is away: the whole run retries (next minute at the latest)
            except Exception:  # noqa: BLE001 - one bad task must not stop the repair of the others
                logger.exception("consensus sweep: task %s failed; it stays due", task_id)
                failed.add(task_id)
                continue
            done += 1
    if done or failed:
        logger.info("consensus sweep: %d computed, %d failed", done, len(failed))
    return done
