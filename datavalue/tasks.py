"""Celery tasks of the data-value app. Each is safe to run twice.

The registered names keep their ``annotations.`` prefix from before the app was split out: the beat
schedule (``datadao.settings``), ``datadao.jobs.job_queue`` callers and messages already queued name them so.
The services are imported inside the tasks, so registering the tasks (every process, ``AppConfig.ready``)
does not load SciPy and the encoder module.
"""
from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError, transaction
from django.utils import timezone

from annotations.embeddings import EncoderUnavailable
from annotations.models import Campaign
from datavalue.models import GenerationJob

logger = logging.getLogger(__name__)

# Only a database hiccup is worth retrying; both services are idempotent. A missing encoder
# (torch, transformers or the packaged weights) is recorded on the campaign's
# CampaignDataValueReport and logged; it is not raised, so the worker loop
# never crashes and the message is not retried forever.
_RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": True, "max_retries": 5}


@shared_task(name="annotations.campaign_embed", ignore_result=True, **_RETRY)
def campaign_embed(campaign_id: int, batch_size: int = 64, compute_value: bool = True) -> int:
    """Embed the campaign's new prompts, responses and rationales; then compute data values."""
    from datavalue import services

    try:
        encoded = services.campaign_embed(campaign_id, batch_size=batch_size)
    except EncoderUnavailable as exc:
        logger.error("campaign_embed %s: sentence encoder unavailable: %s", campaign_id, exc)
        services.record_failure(campaign_id, f"sentence encoder unavailable: {exc}")
        return 0
    except Campaign.DoesNotExist:
        logger.warning("campaign_embed: campaign %s does not exist", campaign_id)
        return 0
    if compute_value:
        campaign_data_value.delay(campaign_id)
    return encoded


@shared_task(name="annotations.campaign_data_value", ignore_result=True, **_RETRY)
def campaign_data_value(campaign_id: int) -> None:
    """Per-expert KNN-Shapley data value, probe accuracy and near-duplicate tasks of one campaign."""
    from datavalue import services

    try:
        services.campaign_data_value(campaign_id)
    except services.MissingEmbeddings as exc:
        logger.warning("campaign_data_value %s: %s", campaign_id, exc)
        services.record_failure(campaign_id, str(exc))
    except Campaign.DoesNotExist:
        logger.warning("campaign_data_value: campaign %s does not exist", campaign_id)


@shared_task(name="annotations.data_value_refresh_open_campaigns", ignore_result=True)
def data_value_refresh_open_campaigns() -> int:
    """Queue embedding + data value of every open or paused campaign whose inputs changed (by beat, hourly)."""
    from datavalue import services

    with transaction.atomic():
        due = services.data_value_refresh_due()
        for campaign_id in due:
            transaction.on_commit(lambda campaign_id=campaign_id: campaign_embed.delay(campaign_id))
    return len(due)


@shared_task(name="annotations.campaign_generate_responses", ignore_result=True)
def campaign_generate_responses(campaign_id: int, checkpoint_path: str, job_id: int | None = None) -> None:
    """Sample candidate responses for a campaign's prompt-only tasks (progress and cancellation on GenerationJob)."""
    from datavalue import candidates

    try:
        candidates.campaign_generate_responses(campaign_id, checkpoint_path, job_id=job_id)
    except Exception as exc:  # never crash the worker loop; the job row says why
        logger.exception("campaign_generate_responses %s failed", campaign_id)
        if job_id is not None:
            GenerationJob.objects.filter(pk=job_id).exclude(state__in=["done", "cancelled"]).update(
                state="failed", error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now())
