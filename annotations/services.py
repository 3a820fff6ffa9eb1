"""Writes on the annotation side: campaigns and task imports.

Every write is a keyword-only service; views, the API, admin actions and
commands parse input, call one of these and render the result.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from annotations.importing import ImportErrors, TaskRow, iter_valid, validate_all
from annotations.models import Campaign, Lab, Response, Task

GOLD_TARGET_OVERLAP = 32767  # gold tasks are served to every expert once; no overlap cap
IMPORT_CHUNK = 2000


class ServiceError(Exception):
    """A refusal a person can act on; ``field`` names the offending input."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400):
        self.message = message
        self.field = field
        self.status = status
        super().__init__(message)

    def as_errors(self) -> list[dict[str, Any]]:
        out: dict[str, Any] = {"message": self.message}
        if self.field:
            out["field"] = self.field
        return [out]


def campaign_create(*, lab: Lab, name: str, domain: str, **fields: Any) -> Campaign:
    if fields.get("max_overlap") is None:
        fields["max_overlap"] = max(fields.get("overlap", 3) or 3, 5)
    if fields.get("allowed_uses") is None:
        fields["allowed_uses"] = ["research", "commercial-training"]
    campaign = Campaign(lab=lab, name=name, domain=domain, **fields)
    campaign.full_clean()
    campaign.save()
    return campaign


_TRANSITIONS = {
    "open": ({Campaign.Status.DRAFT, Campaign.Status.PAUSED}, Campaign.Status.OPEN),
    "pause": ({Campaign.Status.OPEN}, Campaign.Status.PAUSED),
    "close": ({Campaign.Status.DRAFT, Campaign.Status.OPEN, Campaign.Status.PAUSED}, Campaign.Status.CLOSED),
}

# Hooks other apps register (e.g. rewards refunds unspent escrow on close),
# so the state machine stays here without importing the ledger.
campaign_transition_hooks: dict[str, list[Callable[[Campaign], None]]] = {"open": [], "pause": [], "close": []}


@transaction.atomic
def campaign_transition(*, campaign: Campaign, action: str) -> Campaign:
    """Move a campaign through draft -> open <-> paused -> closed."""
    allowed, target = _TRANSITIONS[action]
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status not in allowed:
        raise ServiceError(
            f"cannot {action} a campaign that is {campaign.status}.", field="status", status=409,
        )
    if action == "open" and campaign.task_count == 0:
        raise ServiceError("import at least one task before opening the campaign.", field="tasks", status=409)
    campaign.status = target
    now = timezone.now()
    if action == "open" and campaign.opened_at is None:
        campaign.opened_at = now
    if action == "close":
        campaign.closed_at = now
    campaign.save(update_fields=["status", "opened_at", "closed_at", "updated_at"])
    for hook in campaign_transition_hooks[action]:
        hook(campaign)
    return campaign


@dataclass
class ImportResult:
    created: int
    skipped: int
    rows: int


def task_import(
    *, campaign: Campaign, rows: Callable[[], Iterable[tuple[int, Any]]], max_errors: int | None = None,
) -> ImportResult:
    """Import task rows all-or-nothing.

    ``rows`` is called twice (validate, then write), so a file is streamed
    from disk twice instead of held in memory. Ids already in the campaign
    are skipped, which makes re-importing the same file a no-op. Imports into
    one campaign are serialised by a row lock on the campaign.
    """
    if campaign.status == Campaign.Status.CLOSED:
        raise ServiceError("the campaign is closed; it takes no new tasks.", field="status", status=409)
    k = campaign.responses_per_task
    limit = max_errors or settings.DATADAO_MAX_IMPORT_ERRORS
    count, errors, truncated = validate_all(rows(), k, limit)
    if errors:
        raise ImportErrors(errors, truncated)
    if count == 0:
        raise ImportErrors([_empty_error()])
    created = 0
    with transaction.atomic():
        # NO KEY UPDATE serialises imports into one campaign without blocking
        # the foreign-key checks of leases and judgments written meanwhile.
        locked = Campaign.objects.select_for_update(no_key=True).get(pk=campaign.pk)
        # A first import into an empty campaign cannot collide; skip the lookups.
        empty = not Task.objects.filter(campaign=locked).exists()
        for chunk in _chunks(iter_valid(rows(), k), IMPORT_CHUNK):
            existing = set() if empty else set(
                Task.objects.filter(campaign=locked, external_id__in=[r.external_id for r in chunk])
                .values_list("external_id", flat=True)
            )
            fresh = [r for r in chunk if r.external_id not in existing]
            if fresh:
                _insert_tasks(locked, fresh)
                created += len(fresh)
        if created:
            Campaign.objects.filter(pk=locked.pk).update(task_count=F("task_count") + created)
    campaign.refresh_from_db(fields=["task_count"])
    return ImportResult(created=created, skipped=count - created, rows=count)


def _empty_error():
    from annotations.importing import RowError

    return RowError(0, "the upload holds no task rows.")


def _chunks(rows: Iterator[TaskRow], size: int) -> Iterator[list[TaskRow]]:
    chunk: list[TaskRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _task_fields(campaign: Campaign, row: TaskRow) -> dict[str, Any]:
    is_gold = row.gold_ranks is not None
    return {
        "external_id": row.external_id,
        "prompt": row.prompt,
        "metadata": row.metadata,
        "gold": row.gold_ranks,
        "is_gold": is_gold,
        "target_overlap": GOLD_TARGET_OVERLAP if is_gold else campaign.overlap,
    }


def _insert_tasks(campaign: Campaign, rows: list[TaskRow]) -> None:
    if connection.vendor == "postgresql":
        _insert_tasks_copy(campaign, rows)
        return
    tasks = Task.objects.bulk_create([Task(campaign=campaign, **_task_fields(campaign, row)) for row in rows])
    Response.objects.bulk_create(
        [
            Response(task=task, position=position, model_name=response["model"], text=response["text"])
            for task, row in zip(tasks, rows)
            for position, response in enumerate(row.responses)
        ]
    )


def _insert_tasks_copy(campaign: Campaign, rows: list[TaskRow]) -> None:
    """PostgreSQL fast path: reserve ids from the sequence, then COPY both tables."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [Task._meta.db_table, len(rows)],
        )
        ids = [r[0] for r in cursor.fetchall()]
        columns = "id, campaign_id, external_id, prompt, metadata, gold, is_gold, state, target_overlap, filled, judgment_count, created_at"
        with cursor.copy(f"COPY {Task._meta.db_table} ({columns}) FROM STDIN") as copy:
            for task_id, row in zip(ids, rows):
                fields = _task_fields(campaign, row)
                copy.write_row(
                    (
                        task_id, campaign.pk, fields["external_id"], orjson.dumps(fields["prompt"]).decode(),
                        orjson.dumps(fields["metadata"]).decode(), None if fields["gold"] is None else orjson.dumps(fields["gold"]).decode(),
                        fields["is_gold"], Task.State.OPEN, fields["target_overlap"], 0, 0, now,
                    )
                )
        with cursor.copy(f"COPY {Response._meta.db_table} (task_id, position, model_name, text) FROM STDIN") as copy:
            for task_id, row in zip(ids, rows):
                for position, response in enumerate(row.responses):
                    copy.write_row((task_id, position, response["model"], response["text"]))
