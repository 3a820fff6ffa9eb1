"""Synthetic crowds with a known truth and planted misbehaviour, for the quality tests."""
from __future__ import annotations

import numpy as np

from tests import factories

WORDS = ("dose renal risk guideline trial outcome benefit harm monitor titrate baseline adverse therapy evidence "
         "contraindicated interaction clearance hepatic urgent routine refer assess review").split()


def rationale(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, 14).tolist())


def planted_campaign(*, seed: int = 3, **campaign_fields):
    """A K=2 campaign whose raters include one of each kind a signal should catch.

    Twelve honest raters (85% right, about a minute per judgment); one who
    always prefers the response shown first; one who answers in two seconds;
    one who copies another rater's rationale; one who fails gold; one who
    marks half the tasks outside their expertise; and two who share sixty
    tasks and give the same answer, wrong on forty percent of them.
    Returns ``(campaign, experts by kind, truth per task id)``.
    """
    rng = np.random.default_rng(seed)
    campaign_fields.setdefault("overlap", 5)
    campaign_fields.setdefault("max_overlap", 5)
    campaign = factories.open_campaign(**campaign_fields)
    kinds = {name: factories.ExpertFactory() for name in ("position", "fast", "copier", "gold_fail", "outside")}
    honest = [factories.ExpertFactory() for _ in range(12)]
    colluders = [factories.ExpertFactory(), factories.ExpertFactory()]
    pool = honest + list(kinds.values())
    tasks = factories.tasks_bulk(campaign, 160)
    truth = {task.pk: int(rng.integers(0, 2)) for task in tasks}
    rows: list[dict] = []

    def judge(task, expert, says: int, order: list[int], **extra):
        strength = int(rng.integers(1, 4)) * (1 if says else -1)
        row = {"task": task, "expert": expert, "ranks": [2, 1] if says else [1, 2], "strength": strength,
               "display_order": order, "rationale": rationale(rng),
               "time_spent_ms": int(60_000 * rng.lognormal(0, 0.3))}
        row.update(extra)
        rows.append(row)
        return row

    copies = 0
    for t, task in enumerate(tasks):
        right = truth[task.pk]
        n_pool = 3 if t < 60 else 5
        chosen = [pool[i] for i in rng.choice(len(pool), n_pool, replace=False).tolist()]
        written = []
        for expert in chosen:
            order = [0, 1] if rng.random() < 0.5 else [1, 0]
            says = right if rng.random() < 0.85 else 1 - right
            extra = {}
            if expert is kinds["position"]:
                says = order[0]
            if expert is kinds["fast"]:
                extra["time_spent_ms"] = 2_000
            if expert is kinds["outside"] and rng.random() < 0.5:
                extra["flags"] = ["outside_expertise"]
            if expert is kinds["copier"] and written and copies < 6:
                extra["rationale"] = written[0]["rationale"]
                copies += 1
            row = judge(task, expert, says, order, **extra)
            if expert is not kinds["copier"]:
                written.append(row)
        if t < 60:  # the colluding pair: same answer, wrong 40% of the time
            says = right if t % 5 >= 2 else 1 - right
            for expert in colluders:
                judge(task, expert, says, [0, 1] if rng.random() < 0.5 else [1, 0])
    # Copies are written after their source: the copier's judgment must be the later one.
    rows.sort(key=lambda r: r["expert"] is kinds["copier"])

    gold_tasks = factories.tasks_bulk(campaign, 25, prefix="gold", gold=[1, 2])
    for g, task in enumerate(gold_tasks):
        for expert in honest + [kinds["gold_fail"]]:
            correct = (g < 10) if expert is kinds["gold_fail"] else (g != 7)
            order = [0, 1] if rng.random() < 0.5 else [1, 0]
            judge(task, expert, 0 if correct else 1, order, gold_correct=correct)
    factories.judgments_bulk(rows)
    kinds["honest"] = honest
    kinds["colluders"] = colluders
    return campaign, kinds, truth
