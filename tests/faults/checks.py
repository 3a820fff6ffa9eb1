"""What the fault suite asserts about the stored data, read straight from its own PostgreSQL."""
from __future__ import annotations

import time

from tests.faults.loop import ExpertLoop
from tests.faults.stack import Postgres

# A task has completed once it holds this many judgments (the seeded campaigns' overlap).
OVERLAP = 3


def judgment_problems(pg: Postgres, campaign: int, loop: ExpertLoop) -> list[str]:
    """Lost judgments (an answered 200/201 not stored as answered), duplicates, tasks over their overlap."""
    problems = []
    answered = {**loop.repeated, **loop.created}
    stored = dict(pg.query("SELECT id, assignment_id FROM annotations_judgment WHERE id = ANY(%s)",
                           (list(answered),)))
    lost = {j: a for j, a in answered.items() if stored.get(j) != a}
    if lost:
        problems.append(f"{len(lost)} judgments answered 200/201 are not stored as answered: {sorted(lost)[:10]}")
    assignments_answered = list(answered.values())
    if len(set(assignments_answered)) != len(assignments_answered):
        problems.append("two different judgments were answered for one assignment")
    twice = pg.query("SELECT assignment_id, count(*) FROM annotations_judgment WHERE campaign_id = %s"
                     " GROUP BY assignment_id HAVING count(*) > 1", (campaign,))
    if twice:
        problems.append(f"assignments with two judgments: {twice[:10]}")
    same_expert = pg.query("SELECT task_id, expert_id, count(*) FROM annotations_judgment WHERE campaign_id = %s"
                           " GROUP BY task_id, expert_id HAVING count(*) > 1", (campaign,))
    if same_expert:
        problems.append(f"an expert judged a task twice (task, expert, n): {same_expert[:10]}")
    over = pg.query(
        "SELECT t.id, t.target_overlap, t.judgment_count, count(j.id) FROM annotations_task t"
        " LEFT JOIN annotations_judgment j ON j.task_id = t.id AND NOT j.voided WHERE t.campaign_id = %s"
        " GROUP BY t.id HAVING count(j.id) > t.target_overlap OR count(j.id) <> t.judgment_count", (campaign,))
    if over:
        problems.append(f"tasks over their overlap or miscounted (id, target, count, judgments): {over[:10]}")
    return problems


def tasks_without_consensus(pg: Postgres, campaign: int) -> list[tuple]:
    """Completed tasks whose consensus is missing, still marked due, or older than their last judgment."""
    return pg.query(
        "SELECT t.id, t.state, t.judgment_count, t.consensus_due_at IS NOT NULL, c.n_raters"
        " FROM annotations_task t LEFT JOIN annotations_taskconsensus c ON c.task_id = t.id"
        " WHERE t.campaign_id = %s AND t.judgment_count >= %s AND (c.task_id IS NULL OR t.consensus_due_at"
        " IS NOT NULL OR (t.state <> 'open' AND c.n_raters <> t.judgment_count)) ORDER BY t.id",
        (campaign, OVERLAP))


def completed_tasks(pg: Postgres, campaign: int) -> int:
    return pg.query("SELECT count(*) FROM annotations_task WHERE campaign_id = %s AND judgment_count >= %s",
                    (campaign, OVERLAP))[0][0]


def wait_for_consensus(pg: Postgres, campaign: int, *, deadline: float) -> list[tuple]:
    """Polls until every completed task has its consensus or ``deadline`` (monotonic) passes; returns what
    is still missing."""
    while True:
        missing = tasks_without_consensus(pg, campaign)
        if not missing or time.monotonic() >= deadline:
            return missing
        time.sleep(1.0)
