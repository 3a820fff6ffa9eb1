"""PostgreSQL stops dead (``pg_ctl stop -m immediate``) for a few seconds while experts loop Next -> submit.

What an operator and a client must see: every API answer during the outage
is a JSON 503 with ``Retry-After`` (retryable, never an HTML 500); once the
database is back the same gunicorn and Celery processes carry on; no
judgment is lost or stored twice; and every completed task has its
consensus within 90 s of the recovery.
"""
from __future__ import annotations

import time

import pytest

from tests.faults import checks
from tests.faults.loop import ExpertLoop

pytestmark = pytest.mark.faults

OUTAGE_S = 5
CONSENSUS_WITHIN_S = 90


def test_a_database_outage_answers_json_503_and_loses_nothing(stack):
    seeded = stack.seed("loop", "--name", "db-outage", "--experts", "4", "--tasks", "1500")
    campaign = seeded["campaign"]
    web_workers, worker_pid = stack.gunicorn.children(), stack.worker.pid
    with ExpertLoop(stack.base_url, campaign, seeded["tokens"]) as loop:
        before = loop.wait_for_submits(30, since=loop.origin, timeout=60)
        assert before >= 30, f"the loop made {before} judgments before the outage\n{stack.logs()}"

        stack.postgres.stop_immediately()
        down = time.monotonic()
        time.sleep(OUTAGE_S)
        restarting = time.monotonic()
        stack.postgres.start()
        up = time.monotonic()

        after = loop.wait_for_submits(30, since=up, timeout=60)
        loop.stop()

    answers = loop.answers
    during = [a for a in answers if a.sent >= down and a.done <= restarting]
    print(f"{len(during)} answers during the {OUTAGE_S} s outage, {sum(a.status == 503 for a in answers)} 503s in "
          f"all; {before} judgments before, {after} after")
    assert len(during) >= 10, f"only {len(during)} answers came back during the outage"
    not_503 = [a.describe() for a in during if a.status != 503]
    assert not not_503, "answers during the database outage that are not 503:\n" + "\n".join(not_503[:10])
    bad_503 = [a.describe() for a in answers if a.status == 503 and not (a.is_json_error() and a.retry_after)]
    assert not bad_503, "503 answers without the JSON error shape or Retry-After:\n" + "\n".join(bad_503[:10])
    # Before, around and after the outage: nothing but the loop's answers and retryable 503s.
    unexpected = [a.describe() for a in answers if a.status not in (200, 201, 204, 503)]
    assert not unexpected, "answers other than 200/201/204/503:\n" + "\n".join(unexpected[:10])

    # Recovery by reconnecting, not by restarting: same gunicorn master and workers, same Celery worker.
    assert after >= 30, f"only {after} judgments after the database came back\n{stack.logs()}"
    assert stack.gunicorn.alive() and stack.gunicorn.children() == web_workers, "gunicorn workers were restarted"
    assert stack.worker.alive() and stack.worker.pid == worker_pid, "the Celery worker did not survive the outage"

    problems = checks.judgment_problems(stack.postgres, campaign, loop)
    assert not problems, "\n".join(problems)
    missing = checks.wait_for_consensus(stack.postgres, campaign, deadline=up + CONSENSUS_WITHIN_S)
    assert checks.completed_tasks(stack.postgres, campaign) > 0
    assert not missing, (
        f"{len(missing)} completed tasks without consensus {CONSENSUS_WITHIN_S} s after the database came back "
        f"(id, state, judgments, still marked, n_raters): {missing[:10]}\n{stack.logs()}"
    )
