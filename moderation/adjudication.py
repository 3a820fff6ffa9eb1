"""The review queue's way out: a moderator's own ranking becomes the task's consensus.

A task whose raters still disagree at the campaign's maximum overlap waits
in review (``Task.State.REVIEW``). The moderator reads the judgments, ranks
the responses, and ``task_adjudicate_ranking`` stores that ranking as the
task's ``TaskConsensus`` (method ``adjudicated``) and moves the task to
ADJUDICATED. The quality jobs never overwrite it: an adjudicated row carries
``last_judgment_id = ADJUDICATED_LAST_JUDGMENT_ID``, and they rewrite a row
only from computations at least that new.
"""
from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from annotations.audit import audit_record
from annotations.models import Judgment, QualityReport, Task, TaskConsensus
from annotations.services import ServiceError
from moderation.services import can_moderate

ADJUDICATED_LAST_JUDGMENT_ID = 2**62


def normalise_ranks(ranks: list, k: int) -> list[int]:
    """Ranks per response position (1 = best, ties share a rank) -> standard competition ranks (1, 1, 3)."""
    if not isinstance(ranks, (list, tuple)) or len(ranks) != k or any(r in (None, "") for r in ranks):
        raise ServiceError(f"rank all {k} responses.", field="ranks")
    try:
        values = [int(r) for r in ranks]
    except (TypeError, ValueError) as exc:
        raise ServiceError("ranks are whole numbers, 1 = best.", field="ranks") from exc
    if any(r < 1 or r > k for r in values):
        raise ServiceError(f"ranks go from 1 (best) to {k}.", field="ranks")
    return [1 + sum(1 for other in values if other < mine) for mine in values]


def adjudicated_pairs(ranks: list[int]) -> list[dict]:
    """Pairs as the quality jobs store them; the moderator's word is one vote, certain (p is 1, 0 or 0.5)."""
    pairs = []
    for i in range(len(ranks)):
        for j in range(i + 1, len(ranks)):
            p = 0.5 if ranks[i] == ranks[j] else (1.0 if ranks[i] < ranks[j] else 0.0)
            pairs.append({"i": i, "j": j, "p": p, "margin": abs(2 * p - 1), "votes": 1})
    return pairs


@transaction.atomic
def task_adjudicate_ranking(
    *, task: Task, moderator, ranks: list[int], note: str = "", now: datetime | None = None,
) -> TaskConsensus:
    """Store the moderator's ranking as the adjudicated consensus of a task awaiting review.

    Adjudicating an adjudicated task again with the same ranking returns its
    consensus; a different ranking is refused (the decision is made).
    """
    if not can_moderate(moderator):
        raise ServiceError("only moderators may adjudicate a task.", status=403)
    task = Task.objects.select_for_update(of=("self",)).select_related("campaign").get(pk=task.pk)
    ranks = normalise_ranks(ranks, task.campaign.responses_per_task)
    current = TaskConsensus.objects.select_for_update().filter(task=task).first()
    if task.state == Task.State.ADJUDICATED:
        if current is not None and current.method == TaskConsensus.Method.ADJUDICATED and current.ranks == ranks:
            return current
        raise ServiceError("this task has been adjudicated already.", status=409)
    if task.state != Task.State.REVIEW:
        raise ServiceError("only a task awaiting review can be adjudicated.", status=409)
    now = now or timezone.now()
    previous = None if current is None else {"ranks": current.ranks, "margin": current.margin,
                                             "method": current.method, "n_raters": current.n_raters}
    pairs = adjudicated_pairs(ranks)
    latest = QualityReport.objects.filter(campaign_id=task.campaign_id).order_by("-version").values_list(
        "version", flat=True).first()
    values = {
        "campaign_id": task.campaign_id, "ranks": ranks, "pairs": pairs,
        "margin": min(p["margin"] for p in pairs),
        "n_raters": Judgment.objects.filter(task=task, voided=False).count(),
        "method": TaskConsensus.Method.ADJUDICATED, "version": latest or 0,
        "last_judgment_id": ADJUDICATED_LAST_JUDGMENT_ID, "computed_at": now,
    }
    if current is None:
        consensus = TaskConsensus.objects.create(task=task, **values)
    else:
        for name, value in values.items():
            setattr(current, name, value)
        current.save()
        consensus = current
    Task.objects.filter(pk=task.pk).update(state=Task.State.ADJUDICATED)
    audit_record(action="task.adjudicate", actor=moderator, obj=task,
                 details={"ranks": ranks, "note": note, "previous_consensus": previous})
    return consensus
