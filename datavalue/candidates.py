"""Candidate generation for prompt-only uploads: the Django side of ``datavalue.generation``.

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

Labs start jobs through :func:`generation_job_request` (one active job per
campaign) and stop them with :func:`generation_job_cancel`. A lab names a
checkpoint the platform holds (:func:`checkpoint_path`): a name registered
in ``DATADAO_CHECKPOINTS`` or a directory inside ``DATADAO_CHECKPOINT_ROOTS``;
never an arbitrary server path, never a hub id.
"""
from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotations.models import Campaign, Response, Task
from annotations.services import ServiceError
from datadao.jobs import job_queue
from datavalue.generation import CheckpointError, GenerationCancelled, generate_responses
from datavalue.models import GenerationJob

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
        # A job requested through the API carries its own sampling settings.
        stored = {k: v for k, v in (job.params or {}).items() if k in params}
        params.update(stored)
        max_new_tokens, temperature, top_p = params["max_new_tokens"], params["temperature"], params["top_p"]
        seed, chunk_size = params["seed"], params["chunk_size"]
    if job.state in (GenerationJob.State.DONE, GenerationJob.State.CANCELLED, GenerationJob.State.FAILED):
        return job
    pending = list(Task.objects.filter(campaign=campaign, responses__isnull=True).order_by("id")
                   .only("id", "prompt", "metadata"))
    done = 0
    # Claim the job: a job cancelled while queued (or finished by a concurrent run) stays as it is.
    claimed = GenerationJob.objects.filter(pk=job.pk, state__in=GenerationJob.ACTIVE_STATES).update(
        state=GenerationJob.State.RUNNING, started_at=timezone.now(), progress_total=len(pending), progress_done=0)
    if not claimed:
        job.refresh_from_db()
        return job
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


# --------------------------------------------------------------------------
# Jobs requested by labs
# --------------------------------------------------------------------------


def checkpoint_path(name: str) -> Path:
    """The local directory of a checkpoint named by a lab: a registered name (``DATADAO_CHECKPOINTS``) or an
    absolute path inside one of ``DATADAO_CHECKPOINT_ROOTS``. Nothing is downloaded."""
    name = (name or "").strip()
    registered = settings.DATADAO_CHECKPOINTS.get(name)
    path = Path(registered) if registered else Path(name)
    if not registered:
        roots = [Path(root).resolve() for root in settings.DATADAO_CHECKPOINT_ROOTS]
        if not name or not path.is_absolute() or not any(path.resolve().is_relative_to(root) for root in roots):
            names = ", ".join(sorted(settings.DATADAO_CHECKPOINTS)) or "none"
            raise ServiceError(
                f"unknown checkpoint {name!r}: name a registered checkpoint ({names}) or a directory inside the "
                "checkpoint folders this server was given.",
                field="checkpoint",
            )
    if not (path / "config.json").is_file():
        raise ServiceError(f"no transformers checkpoint (config.json) in {name!r}.", field="checkpoint")
    return path


def generation_job_request(
    *, campaign: Campaign, user, checkpoint: str, max_new_tokens: int = 64, temperature: float = 0.8,
    top_p: float = 0.95, seed: int = 0,
) -> tuple[GenerationJob, bool]:
    """Queue a job sampling responses for the campaign's prompt-only tasks; ``(job, created)``.

    One job runs at a time per campaign: asking again for the same checkpoint
    while one is queued or running returns it (a retried request starts
    nothing); asking for another is a 409.
    """
    if campaign.status == Campaign.Status.CLOSED:
        raise ServiceError("the campaign is closed.", field="status", status=409)
    if not 1 <= max_new_tokens <= 4096:
        raise ServiceError("must be between 1 and 4096.", field="max_new_tokens")
    if temperature <= 0:
        raise ServiceError("must be positive (sampling only).", field="temperature")
    if not 0 < top_p <= 1:
        raise ServiceError("must be in (0, 1].", field="top_p")
    path = checkpoint_path(checkpoint)
    active = GenerationJob.objects.filter(campaign=campaign, state__in=GenerationJob.ACTIVE_STATES).first()
    if active is not None:
        if active.checkpoint_path == str(path):
            return active, False
        raise ServiceError(f"generation job {active.pk} is {active.state} for this campaign; cancel it first.",
                           status=409)
    if not Task.objects.filter(campaign=campaign, responses__isnull=True).exists():
        raise ServiceError("every task of this campaign already has its responses.", field="tasks", status=409)
    params = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed,
              "chunk_size": DEFAULT_CHUNK}
    try:
        with transaction.atomic():
            job = GenerationJob.objects.create(
                campaign=campaign, requested_by=user if getattr(user, "is_authenticated", False) else None,
                checkpoint=checkpoint.strip()[:200], checkpoint_path=str(path), params=params,
            )
    except IntegrityError:  # a concurrent request created the campaign's active job first
        active = GenerationJob.objects.filter(campaign=campaign, state__in=GenerationJob.ACTIVE_STATES).first()
        if active is None:
            raise
        return active, False
    transaction.on_commit(lambda: job_queue("annotations.campaign_generate_responses", campaign.pk, str(path), job.pk))
    return job, True


def generation_job_cancel(*, job: GenerationJob) -> GenerationJob:
    """Stop a job: a queued one is cancelled at once, a running one at its next check (responses of the
    prompts already finished are kept). 409 for a job that has finished."""
    now = timezone.now()
    if GenerationJob.objects.filter(pk=job.pk, state=GenerationJob.State.QUEUED).update(
            state=GenerationJob.State.CANCELLED, cancel_requested=True, finished_at=now):
        job.refresh_from_db()
        return job
    if not GenerationJob.objects.filter(pk=job.pk, state=GenerationJob.State.RUNNING).update(cancel_requested=True):
        job.refresh_from_db()
        raise ServiceError(f"the job is {job.state}; there is nothing to cancel.", status=409)
    job.refresh_from_db()
    return job
