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

With a broker, completions are not one job each: a completion sets a flag in
Redis (``SET NX`` with a :data:`DRAIN_FLAG_TTL_S` expiry) and only the
completion that set it publishes ``annotations.consensus_drain``. The drain
waits :data:`DRAIN_DELAY_S`, clears the flag, then computes every marked
task in batches per campaign (``quality.services.tasks_consensus_update``
reads once per batch, not once per task), so the worker pays a job's
overhead once per burst of completions. A completion committed before the
flag was cleared is read by that drain; one committed after sets the flag
again and queues the next. A flag whose drain was lost expires; the sweep
computes what it left.
In-process mode (no broker) keeps one job per completion.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from collections.abc import Iterator
from contextlib import contextmanager
from functools import reduce
from operator import or_

import redis
from celery import current_app
from django.db import OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import KombuError

from annotations.models import Campaign, Task
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

# The drain: one queued at a time (the flag), each reading this many marked tasks per statement, and
# stopping after DRAIN_BUDGET_S (what is left sets no flag: the next completion queues the next drain, the
# sweep takes what is older than SWEEP_AFTER_S). A flag outlives a lost drain message by at most its TTL.
DRAIN_FLAG = "datadao:consensus-drain"
DRAIN_FLAG_TTL_S = 20
# The drain waits this long before it clears the flag and reads, so the completions of the next second join
# its batch rather than each paying a job (a consensus a second later changes nothing for anyone). It waits
# in the job, acknowledged on receipt, not as a countdown: a message held unacknowledged in the worker while
# Redis restarts trips kombu (an ack on the dead channel raises and the worker stops consuming), and a lost
# drain costs nothing (the marks stay; the next drain or the sweep reads them).
DRAIN_DELAY_S = 1.0
DRAIN_BATCH = 200
DRAIN_BUDGET_S = 20

_DRAIN_LOCK = 0x64726169  # pg advisory lock key of the drain ("drai")

_PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}
_paused_until = 0.0
_flags: dict[str, redis.Redis] = {}


def _flag_client() -> redis.Redis | None:
    """A Redis client on the broker's server (the Celery app's URL), or None when the broker is not Redis."""
    url = str(current_app.conf.broker_url or "")
    if not url.startswith(("redis://", "rediss://")):
        return None
    client = _flags.get(url)
    if client is None:
        options = current_app.conf.broker_transport_options or {}
        client = _flags[url] = redis.Redis.from_url(
            url, socket_connect_timeout=options.get("socket_connect_timeout", 2.0),
            socket_timeout=options.get("socket_timeout", 5.0))
    return client


def consensus_publish(task_id: int) -> bool:
    """Queue the task's consensus work without waiting on a broker that is down. Call after commit.

    In-process mode runs the task's own job; with a broker, the drain is queued unless one is already
    (see the module's docstring). Returns False when the publish failed or was skipped; the mark stays
    and the sweep computes it.
    """
    global _paused_until
    if time.monotonic() < _paused_until:
        return False
    client = None if current_app.conf.task_always_eager else _flag_client()
    try:
        # One immediate retry (a pooled connection gone stale after a broker restart reconnects); the
        # transport's single connection attempt and short socket timeouts bound the rest (settings).
        if client is None:
            job_queue("annotations.task_consensus_update", task_id, retry=True, retry_policy=_PUBLISH_RETRY)
        elif client.set(DRAIN_FLAG, task_id, nx=True, ex=DRAIN_FLAG_TTL_S):
            try:
                job_queue("annotations.consensus_drain", retry=True, retry_policy=_PUBLISH_RETRY)
            except Exception:
                client.delete(DRAIN_FLAG)  # best effort: let the next completion try again
                raise
    except (KombuError, OSError, redis.RedisError):
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


def consensus_drain(*, budget_s: float = DRAIN_BUDGET_S, wait_s: float = DRAIN_DELAY_S) -> int:
    """Compute the consensus of every marked task, a campaign's batch at a time; returns how many.

    Clears the drain flag before reading, so a completion committed from then on queues another drain.
    Each mark is cleared only if it is still the one read (a later completion keeps its own). A batch that
    fails is retried task by task, so one bad task is logged and left marked for the sweep.
    """
    client = None if current_app.conf.task_always_eager else _flag_client()
    if client is not None:
        time.sleep(wait_s)  # the burst's other completions see the flag and join this drain
        try:
            client.delete(DRAIN_FLAG)
        except redis.RedisError:
            logger.warning("consensus drain: flag not cleared (Redis unavailable); it expires", exc_info=True)
    with _one_drain() as mine:
        # Another drain is running: it reads until no mark is left, this one's included.
        return _drain(budget_s) if mine else 0


@contextmanager
def _one_drain() -> Iterator[bool]:
    """One drain at a time on PostgreSQL (a session advisory lock, not waited on); yields whether it is ours."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_DRAIN_LOCK])
        mine = bool(cursor.fetchone()[0])
    try:
        yield mine
    finally:
        if mine:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_DRAIN_LOCK])


def _drain(budget_s: float) -> int:
    deadline = time.monotonic() + budget_s
    done, failed = 0, set()
    while time.monotonic() < deadline:
        due = list(Task.objects.filter(consensus_due_at__isnull=False).exclude(pk__in=failed)
                   .order_by("consensus_due_at").values_list("id", "campaign_id", "consensus_due_at")[:DRAIN_BATCH])
        if not due:
            break
        by_campaign: dict[int, list[tuple[int, datetime]]] = {}
        for task_id, campaign_id, seen in due:
            by_campaign.setdefault(campaign_id, []).append((task_id, seen))
        campaigns = Campaign.objects.in_bulk(list(by_campaign))
        for campaign_id, marks in by_campaign.items():
            done += _settle_batch(campaigns.get(campaign_id), marks, failed)
    if failed:
        logger.warning("consensus drain: %d tasks failed; they stay due for the sweep", len(failed))
    return done


def _settle_batch(campaign: Campaign | None, marks: list[tuple[int, datetime]], failed: set[int]) -> int:
    from annotations.quality import services as quality_services

    task_ids = [task_id for task_id, _ in marks]
    try:
        if campaign is not None:
            quality_services.tasks_consensus_update(campaign=campaign, task_ids=task_ids)
    except OperationalError:
        raise  # the database is away: the job retries, the marks stay
    except Exception:  # noqa: BLE001 - find the bad task: the others go one by one
        logger.exception("consensus drain: a batch of campaign %s failed; computing its tasks one by one",
                         campaign.pk if campaign else None)
        settled = 0
        for task_id in task_ids:
            try:
                task_consensus_settle(task_id=task_id)
                settled += 1
            except OperationalError:
                raise
            except Exception:  # noqa: BLE001
                logger.exception("consensus drain: task %s failed; it stays due", task_id)
                failed.add(task_id)
        return settled
    Task.objects.filter(reduce(or_, (Q(pk=task_id, consensus_due_at=seen) for task_id, seen in marks))).update(
        consensus_due_at=None)
    return len(marks)


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
