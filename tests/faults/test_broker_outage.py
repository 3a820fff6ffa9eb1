"""Redis dies (SIGKILL, its queues with it) for a few seconds while experts loop Next -> submit.

A submit stores the judgment and the task's "consensus due" mark in one
transaction and publishes the consensus job after commit; with the broker
gone that publish fails fast, so the expert does not wait on it, and the
beat sweep computes what was lost once Redis is back.
"""
from __future__ import annotations

import time

import pytest

from tests.faults import checks
from tests.faults.loop import ExpertLoop, percentile

pytestmark = pytest.mark.faults

NORMAL_S = 6
OUTAGE_S = 5
CONSENSUS_WITHIN_S = 90
# Two shared cores: a little absolute slack so scheduling noise alone does not fail the ratio.
NOISE_FLOOR_MS = 50


def test_a_broker_outage_adds_no_submit_latency_and_loses_no_consensus(stack):
    seeded = stack.seed("loop", "--name", "broker-outage", "--experts", "4", "--tasks", "1500")
    campaign = seeded["campaign"]
    with ExpertLoop(stack.base_url, campaign, seeded["tokens"]) as loop:
        loop.wait_for_submits(10, since=loop.origin, timeout=60)  # connections and prepared statements warm
        normal_from = time.monotonic()
        time.sleep(NORMAL_S)

        stack.redis.kill()
        down = time.monotonic()
        time.sleep(OUTAGE_S)
        restarting = time.monotonic()
        stack.redis.start()
        up = time.monotonic()

        after = loop.wait_for_submits(20, since=up, timeout=60)
        loop.stop()

    submits = [a for a in loop.answers if a.kind == "submit"]
    normal = [a.ms for a in submits if normal_from <= a.sent and a.done < down]
    outage = [a.ms for a in submits if down <= a.sent and a.done <= restarting]
    assert len(normal) >= 20 and len(outage) >= 20, f"too few submits measured: {len(normal)} / {len(outage)}"
    normal_p99, outage_p99 = percentile(normal, 99), percentile(outage, 99)
    print(f"submit p99: {normal_p99:.0f} ms normal ({len(normal)}), {outage_p99:.0f} ms without the broker "
          f"({len(outage)})")
    assert outage_p99 < 2 * normal_p99 + NOISE_FLOOR_MS, (
        f"submit p99 {outage_p99:.0f} ms during the broker outage against {normal_p99:.0f} ms before it")

    # The broker is not needed to store a judgment: every answer is a success.
    failed = [a.describe() for a in loop.answers if a.status not in (200, 201, 204)]
    assert not failed, "answers other than 200/201/204:\n" + "\n".join(failed[:10])
    assert after >= 20, f"only {after} judgments after Redis came back\n{stack.logs()}"

    problems = checks.judgment_problems(stack.postgres, campaign, loop)
    assert not problems, "\n".join(problems)
    completed = checks.completed_tasks(stack.postgres, campaign)
    missing = checks.wait_for_consensus(stack.postgres, campaign, deadline=up + CONSENSUS_WITHIN_S)
    assert completed > 0
    assert not missing, (
        f"{len(missing)} of {completed} completed tasks without consensus {CONSENSUS_WITHIN_S} s after Redis came "
        f"back (id, state, judgments, still marked, n_raters): {missing[:10]}\n{stack.logs()}"
    )
