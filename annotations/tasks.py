"""Celery tasks of the annotation side. Each is safe to run twice."""
from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from annotations import followup, leases
from annotations.models import Campaign
from annotations.quality import services as quality_services


@shared_task(name="annotations.leases_reclaim", ignore_result=True)
def leases_reclaim() -> int:
    """Expire leases past their expiry and give their places back to their tasks (every minute, by beat)."""
    return leases.leases_reclaim()


# Quality: consensus, agreement, signals. Only a database hiccup is
# worth retrying; both services are safe to run twice.
_QUALITY_RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": True, "max_retries": 5}


@shared_task(name="annotations.task_consensus_update", ignore_result=True, **_QUALITY_RETRY)
def task_consensus_update(task_id: int) -> None:
    """Consensus of one task that reached its overlap; raises its overlap or sends it to review on disagreement.

    Clears the task's ``consensus_due_at`` mark; a job lost or out of retries leaves it for the sweep below.
    """
    followup.task_consensus_settle(task_id=task_id)


@shared_task(name="annotations.consensus_drain", ignore_result=True, acks_late=False, **_QUALITY_RETRY)
def consensus_drain() -> int:
    """Consensus of every task marked due, in batches per campaign (queued once per burst of completions)."""
    return followup.consensus_drain()


@shared_task(name="annotations.consensus_due_sweep", ignore_result=True)
def consensus_due_sweep() -> int:
    """Compute the consensus of every task marked due more than 30 s ago (every minute, by beat)."""
    return followup.consensus_due_sweep()


@shared_task(name="annotations.campaign_quality_compute", ignore_result=True, **_QUALITY_RETRY)
def campaign_quality_compute(campaign_id: int) -> None:
    """A campaign's reliabilities, consensus, agreement and signals."""
    quality_services.campaign_quality_compute(campaign_id=campaign_id)


@shared_task(name="annotations.quality_recompute_open_campaigns", ignore_result=True)
def quality_recompute_open_campaigns() -> int:
    """Queue the quality job of every open or paused campaign (by beat); unchanged campaigns cost one read."""
    ids = list(Campaign.objects.filter(status__in=[Campaign.Status.OPEN, Campaign.Status.PAUSED])
               .values_list("id", flat=True))
    for campaign_id in ids:
        campaign_quality_compute.delay(campaign_id)
    return len(ids)


