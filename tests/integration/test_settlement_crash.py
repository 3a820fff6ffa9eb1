"""A real Celery worker is killed (SIGKILL) in the middle of settling an epoch of 2,000 experts.

The broker redelivers the unacknowledged task once its visibility timeout
passes, a second worker finishes the settlement, and every expert has been
paid exactly once and the ledger reconciles. Needs PostgreSQL (the worker
must see the test's committed data through its own connection) and Redis.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from annotations.models import Assignment, Expert, Judgment, Task
from rewards import services, settlement
from rewards.models import Account, Epoch, EpochReward, LedgerEntry, LedgerTransaction
from rewards.selectors import ledger_differences
from rewards.tasks import settle_epoch
from tests import factories

BASE_DIR = Path(__file__).resolve().parents[2]
CELERY = BASE_DIR / ".venv" / "bin" / "celery"
EXPERTS = 2000
RATERS_PER_TASK = 4
TASKS_PER_EXPERT = 8  # enough agreement per expert to clear the pay rule's skeptical prior
CHUNK = 10  # payouts per commit in the worker: 200 commits, a wide window to kill in
VISIBILITY_TIMEOUT_S = 3
TOKEN = 1_000_000

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.environ.get("CELERY_BROKER_URL"), reason="CELERY_BROKER_URL is not set"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
    pytest.mark.django_db(transaction=True),
]


def _test_database_url() -> str:
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


def _start_worker(queue: str, log) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),  # the TEST database, where this test commits its data
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
        "CELERY_UNACKED_RESTORE_INTERVAL": "1",
        "CELERY_UNACKED_RESTORE_THROTTLE": "1",
        "DATADAO_SETTLEMENT_CHUNK": str(CHUNK),
        "DATABASE_CONN_MAX_AGE": "0",
    }
    return subprocess.Popen(
        [str(CELERY), "-A", "datadao", "worker", "--pool=solo", "-Q", queue, "-n", f"{queue}@%h",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"],
        cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _kill(worker: subprocess.Popen | None) -> None:
    if worker is None or worker.poll() is not None:
        return
    try:
        os.killpg(worker.pid, signal.SIGKILL)  # the whole worker, no chance to ack or clean up
    except ProcessLookupError:
        return
    worker.wait(timeout=30)


def _wait_for(what: str, predicate, timeout: float, log_path: str, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    with open(log_path) as fh:
        tail = fh.read()[-4000:]
    pytest.fail(f"timed out after {timeout}s waiting for {what}; worker log:\n{tail}")


def _build_epoch() -> Epoch:
    """2,000 experts who all agree with each other: everyone earns, in equal shares."""
    campaign = factories.CampaignFactory(reward_per_judgment=TOKEN + 7)
    factories.lab_deposit(campaign.lab, 10**6 * TOKEN)
    services.campaign_fund(campaign=campaign, amount=10**6 * TOKEN, actor=None)
    users = User.objects.bulk_create(
        [User(username=f"crash-{uuid.uuid4().hex[:12]}-{i}", password="!") for i in range(EXPERTS)]
    )
    experts = Expert.objects.bulk_create(
        [Expert(user=u, domains=["medicine"], state=Expert.State.VETTED) for u in users]
    )
    n_tasks = EXPERTS * TASKS_PER_EXPERT // RATERS_PER_TASK
    tasks = Task.objects.bulk_create(
        [Task(campaign=campaign, external_id=f"t{i}", prompt="p", target_overlap=RATERS_PER_TASK,
              filled=RATERS_PER_TASK, judgment_count=RATERS_PER_TASK) for i in range(n_tasks)]
    )
    at = timezone.now() - timedelta(days=1)
    # Experts work in groups of RATERS_PER_TASK; each group rates its own TASKS_PER_EXPERT tasks.
    pairs = [
        (tasks[(e // RATERS_PER_TASK) * TASKS_PER_EXPERT + k], expert)
        for e, expert in enumerate(experts) for k in range(TASKS_PER_EXPERT)
    ]
    assignments = Assignment.objects.bulk_create(
        [Assignment(task=t, expert=x, campaign=campaign, state=Assignment.State.SUBMITTED, display_order=[0, 1],
                    leased_at=at, expires_at=at, finished_at=at) for t, x in pairs],
        batch_size=2000,
    )
    Judgment.objects.bulk_create(
        [Judgment(assignment=a, task=t, expert=x, campaign=campaign, ranks=[1, 2] if t.pk % 2 else [2, 1],
                  display_order=[0, 1], time_spent_ms=20_000, submitted_at=at) for a, (t, x) in zip(assignments, pairs)],
        batch_size=2000,
    )
    return factories.EpochFactory(campaign=campaign, index=0, starts_at=at - timedelta(days=6))


def test_a_worker_killed_mid_settlement_leaves_every_expert_paid_exactly_once(monkeypatch):
    from datadao.celery import app

    # The task goes to the real broker and worker, whatever an earlier test left in the app's config.
    monkeypatch.setattr(app.conf, "task_always_eager", False)
    epoch = _build_epoch()
    queue = f"settle-crash-{uuid.uuid4().hex[:10]}"
    log = tempfile.NamedTemporaryFile("w+", prefix="settle-crash-", suffix=".log", delete=False)
    paid = LedgerTransaction.objects.filter(epoch=epoch, kind=LedgerTransaction.Kind.REWARD)
    first = second = None
    try:
        first = _start_worker(queue, log)
        settle_epoch.apply_async(args=[epoch.pk], queue=queue)

        # Kill once some, but not all, payout chunks have committed.
        _wait_for("the first payouts", lambda: paid.count() > 0, timeout=120, log_path=log.name)
        _kill(first)
        at_kill = paid.count()
        print(f"killed the worker with {at_kill}/{EXPERTS} experts paid", file=sys.stderr)
        assert 0 < at_kill < EXPERTS, "the worker finished before it could be killed; lower CHUNK"
        assert Epoch.objects.get(pk=epoch.pk).state == Epoch.State.SETTLING

        # Nobody acknowledged the task: after the visibility timeout the broker hands it to the next worker.
        second = _start_worker(queue, log)
        _wait_for(
            "the redelivered task to finish the epoch",
            lambda: Epoch.objects.filter(pk=epoch.pk, state=Epoch.State.SETTLED).exists(),
            timeout=180, log_path=log.name, interval=0.2,
        )
    finally:
        _kill(first)
        _kill(second)
        log.close()
        with settle_epoch.app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
            client = conn.default_channel.client
            for key in client.scan_iter(match=f"*{queue}*"):
                client.delete(key)

    epoch.refresh_from_db()
    assert epoch.experts_paid == EXPERTS
    credits = LedgerEntry.objects.filter(
        transaction__epoch=epoch, transaction__kind=LedgerTransaction.Kind.REWARD, amount__gt=0,
    )
    counts = dict(credits.values("account__expert_id").annotate(n=Count("id")).values_list("account__expert_id", "n"))
    assert len(counts) == EXPERTS and set(counts.values()) == {1}
    planned = dict(EpochReward.objects.filter(epoch=epoch).values_list("expert_id", "amount"))
    balances = dict(
        Account.objects.filter(kind=Account.Kind.AVAILABLE, expert_id__in=planned).values_list("expert_id", "balance")
    )
    assert balances == planned
    assert len(set(planned.values())) == 1  # equal work, equal pay
    assert epoch.paid_total + epoch.dust == epoch.budget == EXPERTS * TASKS_PER_EXPERT * (TOKEN + 7)
    assert ledger_differences() == []
    call_command("ledger_reconcile")
    os.unlink(log.name)
    assert settlement.reward_key(epoch.pk, min(planned)) in set(paid.values_list("idempotency_key", flat=True))
