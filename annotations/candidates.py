"""Candidate generation for prompt-only uploads: the Django side of ``annotations.generation``.

:func:`campaign_generate_responses` samples ``campaign.responses_per_task``
responses for every task of the campaign that has none, from a local
checkpoint, and stores them as :class:`Response` rows (model name
``generated:<checkpoint dir>``) with the sampling record of each in
``task.metadata["generated"]``. Progress is written on a
:class:`GenerationJob`; setting its ``cancel_requested`` stops the job at the
next check (between decoding steps), keeping the chunks already stored.

Prompts go to ``generate_responses`` a chunk at a time (the checkpoint is
loaded once per chunk); prompt ``n`` of the run is sampled with seed
``seed + n`` whatever the chunking. Safe to run twice: tasks that already
have responses are skipped.
"""
from __future__ import annotations

import logging
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from annotations.generation import CheckpointError, GenerationCancelled, generate_responses
from annotations.models import Campaign, GenerationJob, Response, Task

logger = logging.getLogger(__name__)

DEFAULT_CHUNK = 16


def _job_fields(job_id: int, **fields) -> None:
    GenerationJob.objects.filter(pk=job_id).update(**fields)


def campaign_generate_responses(
    campaign_id: int,
    checkpoint_path: str,
    *,
    job_id: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    max_new_tokens: int = 64,
    temperature: float = 0.8,
    top_p: float = 0.95,
    seed: int = 0,
) -> GenerationJob:
    """Generate responses for the campaign's prompt-only tasks; returns the (finished) job."""
    campaign = Campaign.objects.get(pk=campaign_id)
    params = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed,
              "chunk_size": chunk_size}
    if job_id is None:
        job = GenerationJob.objects.create(campaign=campaign, checkpoint_path=str(checkpoint_path), params=params)
    else:
        job = GenerationJob.objects.get(pk=job_id, campaign=campaign)
    if job.state in (GenerationJob.State.DONE, GenerationJob.State.CANCELLED, GenerationJob.State.FAILED):
        return job
    pending = list(Task.objects.filter(campaign=campaign, responses__isnull=True).order_by("id")
                   .only("id", "prompt", "metadata"))
    done = 0
    _job_fields(job.pk, state=GenerationJob.State.RUNNING, started_at=timezone.now(), progress_total=len(pending),
                progress_done=0)
    label = f"generated:{Path(checkpoint_path).name}"[:200]

    def should_cancel() -> bool:
        return GenerationJob.objects.filter(pk=job.pk, cancel_requested=True).exists()

    try:
        for start in range(0, len(pending), chunk_size):
            chunk = pending[start:start + chunk_size]

            results = generate_responses(
                checkpoint_path, [t.prompt for t in chunk], campaign.responses_per_task,
                max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed + start,
                should_cancel=should_cancel,
            )
            with transaction.atomic():
                for task, samples in zip(chunk, results):
                    if Response.objects.filter(task=task).exists():
                        continue  # a concurrent run filled it
                    Response.objects.bulk_create([
                        Response(task=task, position=s.sample_index, model_name=label, text=s.text) for s in samples
                    ])
                    metadata = dict(task.metadata or {})
                    metadata["generated"] = [
                        {"position": s.sample_index, "seed": s.seed, "temperature": s.temperature, "top_p": s.top_p,
                         "max_new_tokens": s.max_new_tokens, "new_tokens": s.new_tokens,
                         "finish_reason": s.finish_reason, "checkpoint": label}
                        for s in samples
                    ]
                    Task.objects.filter(pk=task.pk).update(metadata=metadata)
                done = start + len(chunk)
                _job_fields(job.pk, progress_done=done)
    except GenerationCancelled:
        _job_fields(job.pk, state=GenerationJob.State.CANCELLED, finished_at=timezone.now(), progress_done=done)
    except CheckpointError as exc:
        _job_fields(job.pk, state=GenerationJob.State.FAILED, error=str(exc), finished_at=timezone.now())
    else:
        _job_fields(job.pk, state=GenerationJob.State.DONE, finished_at=timezone.now(), progress_done=done)
    job.refresh_from_db()
    return job
