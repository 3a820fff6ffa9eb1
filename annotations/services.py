"""Writes on the annotation side: campaigns and task imports.

Every write is a keyword-only service; views, the API, admin actions and
commands parse input, call one of these and render the result.
"""
from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from annotations.audit import audit_record
from annotations.importing import ImportErrors, TaskRow, iter_valid, prompt_key, validate_all
from annotations.models import Campaign, Lab, Response, Task
from datadao.errors import ServiceError  # noqa: F401 (annotations.services.ServiceError: what callers import)

GOLD_TARGET_OVERLAP = 32767  # gold tasks are served to every expert once; no overlap cap
IMPORT_CHUNK = 2000


def campaign_create(*, lab: Lab, name: str, domain: str, **fields: Any) -> Campaign:
    if fields.get("max_overlap") is None:
        fields["max_overlap"] = max(fields.get("overlap", 3) or 3, 5)
    if fields.get("allowed_uses") is None:
        fields["allowed_uses"] = ["research", "commercial-training"]
    if fields.get("data_for_sale"):
        _check_sale(fields.get("data_price"), fields.get("licence") or Campaign._meta.get_field("licence").default)
    campaign = Campaign(lab=lab, name=name, domain=domain, **fields)
    campaign.full_clean()
    campaign.save()
    return campaign


def _check_sale(price: int | None, licence: str) -> None:
    """Refuse data put up for sale without a price, or under a licence that does not allow selling it."""
    from annotations.licences import licence_allows_sale

    if not price:
        raise ServiceError("give the price of one export, in base units.", field="data_price")
    refusal = licence_allows_sale(licence)
    if refusal:
        raise ServiceError(refusal, field="licence")


# Editing. Which fields may change depends on the status, and this is the one place that says so:
# the API (PATCH /api/v1/campaigns/{id}/) and the console's edit page both ask ``campaign_field_lock``.

CAMPAIGN_EDITABLE = (
    "name", "domain", "guidelines", "responses_per_task", "strength_scale", "attribute_axes", "rationale_required",
    "rationale_min_length", "overlap", "max_overlap", "gold_rate", "lease_minutes", "reward_per_judgment",
    "min_stake", "licence", "allowed_uses", "consensus_min_margin", "gold_bar", "q_min", "pay_confidence",
    "gold_weight", "stake_beta", "slash_fraction", "data_for_sale", "data_price", "data_value_weighting",
    "data_value_cap",
)
# Once open (or paused) only what leaves work already done valid may change: the names and texts, the
# rationale length and lease time of judgments still to come, and the overlap upwards (more raters per task).
_RUNNING_EDITABLE = frozenset({"name", "guidelines", "rationale_min_length", "lease_minutes", "overlap", "max_overlap"})
_RISE_ONLY = frozenset({"overlap", "max_overlap"})
_FORM = "judgments already made used the current form"
_TERMS = "experts rate on these terms, and settlement and corrections of work already done read them"
_QUALITY = "quality and pay of work already done are computed with it"
_RIGHTS = "experts contributed under the current data terms"
_DRAFT_ONLY_WHY = {
    "domain": "experts were admitted by their vetting in this domain",
    "responses_per_task": _FORM, "strength_scale": _FORM, "attribute_axes": _FORM, "rationale_required": _FORM,
    "reward_per_judgment": _TERMS, "min_stake": _TERMS, "stake_beta": _TERMS, "slash_fraction": _TERMS,
    "gold_rate": _QUALITY, "consensus_min_margin": _QUALITY, "gold_bar": _QUALITY, "q_min": _QUALITY,
    "pay_confidence": _QUALITY, "gold_weight": _QUALITY, "data_value_weighting": _QUALITY,
    "data_value_cap": _QUALITY,
    "licence": _RIGHTS, "allowed_uses": _RIGHTS,
    "data_for_sale": "the sale is set through POST /api/v1/campaigns/{id}/data-sale",
    "data_price": "the sale is set through POST /api/v1/campaigns/{id}/data-sale",
}
CLOSED_REFUSAL = "a closed campaign cannot be edited."


def campaign_field_lock(campaign: Campaign, name: str) -> str | None:
    """Why field ``name`` cannot change in the campaign's status; None when it may (``campaign_field_limit``
    may still bound its new value)."""
    if campaign.status == Campaign.Status.CLOSED:
        return CLOSED_REFUSAL
    if campaign.status == Campaign.Status.DRAFT:
        if name == "responses_per_task" and campaign.task_count:
            return (f"can change only before tasks are imported (they have {campaign.responses_per_task} "
                    "responses each).")
        return None
    if name in _RUNNING_EDITABLE:
        return None
    return f"can change only while the campaign is a draft: {_DRAFT_ONLY_WHY[name]}."


def campaign_field_limit(campaign: Campaign, name: str) -> str | None:
    """The bound on an editable field's new value in the campaign's status, e.g. an overlap that may only rise."""
    if campaign.status in (Campaign.Status.OPEN, Campaign.Status.PAUSED) and name in _RISE_ONLY:
        return f"can only rise once the campaign has opened and experts may have rated (it is {getattr(campaign, name)})."
    return None


@transaction.atomic
def campaign_update(*, campaign: Campaign, actor: Any = None, **fields: Any) -> Campaign:
    """Change a campaign's settings, as far as its status allows (``campaign_field_lock``).

    A field given with its current value is no change and never refused, so a whole form or object can
    be sent back. A refused field answers 409 naming it and why. A raised overlap applies to the tasks
    still open; while a draft, to all its tasks.
    """
    for name in fields:
        if name not in CAMPAIGN_EDITABLE:
            raise ServiceError(f"{name}: cannot be edited.", field=name)
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status == Campaign.Status.CLOSED:
        raise ServiceError(CLOSED_REFUSAL, field="status", status=409)
    changes = {name: fields[name] for name in CAMPAIGN_EDITABLE
               if name in fields and fields[name] != getattr(campaign, name)}
    for name, value in changes.items():
        refusal = campaign_field_lock(campaign, name)
        if refusal is None and name in _RISE_ONLY and value < getattr(campaign, name):
            refusal = campaign_field_limit(campaign, name)
        if refusal:
            raise ServiceError(f"{name}: {refusal}", field=name, status=409)
    if not changes:
        return campaign
    before = {name: getattr(campaign, name) for name in changes}
    for name, value in changes.items():
        setattr(campaign, name, value)
    if campaign.max_overlap < campaign.overlap:
        raise ServiceError(f"must be at least overlap ({campaign.overlap}).", field="max_overlap")
    if campaign.data_for_sale and changes.keys() & {"data_for_sale", "data_price", "licence"}:
        _check_sale(campaign.data_price, campaign.licence)
    campaign.full_clean()
    campaign.save(update_fields=[*changes, "updated_at"])
    if "overlap" in changes:
        tasks = Task.objects.filter(campaign=campaign, is_gold=False)
        if campaign.status == Campaign.Status.DRAFT:
            tasks = tasks.filter(filled__lte=campaign.overlap)  # a draft hands out no tasks: all are empty
        else:
            tasks = tasks.filter(state=Task.State.OPEN, target_overlap__lt=campaign.overlap)
        tasks.update(target_overlap=campaign.overlap)
    audit_record(action="campaign.update", actor=actor, obj=campaign,
                 details={name: [before[name], value] for name, value in changes.items()})
    return campaign


_TRANSITIONS = {
    "open": ({Campaign.Status.DRAFT, Campaign.Status.PAUSED}, Campaign.Status.OPEN),
    "pause": ({Campaign.Status.OPEN}, Campaign.Status.PAUSED),
    "close": ({Campaign.Status.DRAFT, Campaign.Status.OPEN, Campaign.Status.PAUSED}, Campaign.Status.CLOSED),
}


def campaign_transitions_allowed(campaign: Campaign) -> list[str]:
    """The actions ``campaign_transition`` accepts from the campaign's status (what a console offers)."""
    return [action for action, (allowed, _) in _TRANSITIONS.items() if campaign.status in allowed]


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


@dataclass(frozen=True)
class DuplicatePrompt:
    """A created task whose prompt repeats an earlier task's: in this upload (``duplicate_of_line``) or
    already in the campaign (``duplicate_of_line`` None)."""

    line: int
    external_id: str
    duplicate_of: str
    duplicate_of_line: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "external_id": self.external_id, "duplicate_of": self.duplicate_of,
                "duplicate_of_line": self.duplicate_of_line}


@dataclass
class ImportResult:
    created: int
    skipped: int
    rows: int
    duplicates: list[DuplicatePrompt] = field(default_factory=list)
    duplicates_total: int = 0  # all of them; ``duplicates`` holds the first DATADAO_MAX_IMPORT_ERRORS


def task_import(
    *, campaign: Campaign, rows: Callable[[], Iterable[tuple[int, Any]]], max_errors: int | None = None,
) -> ImportResult:
    """Import task rows all-or-nothing.

    ``rows`` is called twice (validate, then write), so a file is streamed
    from disk twice instead of held in memory. Ids already in the campaign
    are skipped, which makes re-importing the same file a no-op. Imports into
    one campaign are serialised by a row lock on the campaign.

    Created tasks whose prompt repeats an earlier task's are reported, not
    refused (a lab may mean it, e.g. the same question with new responses):
    repeats inside the upload are found in the validation pass (a dict of
    prompt hashes), repeats of tasks already in the campaign by one query
    after the write, run only when the campaign had tasks before.
    """
    if campaign.status == Campaign.Status.CLOSED:
        raise ServiceError("the campaign is closed; it takes no new tasks.", field="status", status=409)
    k = campaign.responses_per_task
    limit = max_errors or settings.DATADAO_MAX_IMPORT_ERRORS
    report_duplicates = settings.DATADAO_IMPORT_REPORT_DUPLICATES
    in_upload: list[tuple[int, str, int]] = []
    count, errors, truncated = validate_all(rows(), k, limit, duplicates=in_upload if report_duplicates else None)
    if errors:
        raise ImportErrors(errors, truncated)
    if count == 0:
        raise ImportErrors([_empty_error()])
    created = 0
    # Lines whose external id a duplicate report names, and rows skipped as already imported.
    named_lines = {first for _, _, first in in_upload}
    names: dict[int, str] = {}
    skipped_lines: set[int] = set()
    new_ids, new_lines = array("q"), array("q")
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
            if named_lines:
                names.update((r.line, r.external_id) for r in chunk if r.line in named_lines)
            if existing:
                skipped_lines.update(r.line for r in chunk if r.external_id in existing)
            if fresh:
                ids = _insert_tasks(locked, fresh)
                created += len(fresh)
                if not empty and report_duplicates:
                    new_ids.extend(ids)
                    new_lines.extend(r.line for r in fresh)
        if created:
            Campaign.objects.filter(pk=locked.pk).update(task_count=F("task_count") + created)
        duplicates = {
            line: DuplicatePrompt(line, external_id, names[first], first)
            for line, external_id, first in in_upload if line not in skipped_lines
        }
        if new_ids:
            # A repeat of a task already in the campaign is the more useful report; it wins.
            line_of = dict(zip(new_ids, new_lines))
            for task_id, external_id, earlier in _repeats_of_earlier_tasks(locked, new_ids):
                line = line_of[task_id]
                duplicates[line] = DuplicatePrompt(line, external_id, earlier, None)
    campaign.refresh_from_db(fields=["task_count"])
    ordered = [duplicates[line] for line in sorted(duplicates)]
    return ImportResult(created=created, skipped=count - created, rows=count, duplicates=ordered[:limit],
                        duplicates_total=len(ordered))


def _repeats_of_earlier_tasks(campaign: Campaign, new_ids: array) -> list[tuple[int, str, str]]:
    """``(task id, external id, earlier external id)`` for the new tasks whose prompt repeats one of a task
    the campaign had before (the earliest such), compared as ``prompt_key`` does."""
    if connection.vendor == "postgresql":
        table = Task._meta.db_table
        with connection.cursor() as cursor:
            # Keys are 64-bit hashes of the normalised prompt (grouped and joined cheaply over the whole
            # campaign); the few matches are confirmed on the normalised texts themselves.
            cursor.execute(
                f"WITH fresh AS (SELECT unnest(%s::bigint[]) AS id), "
                f"keyed AS (SELECT t.id, f.id IS NOT NULL AS new, hashtextextended({_sql_prompt('t')}, 0) AS k "
                f"  FROM {table} t LEFT JOIN fresh f ON f.id = t.id WHERE t.campaign_id = %s), "
                f"earlier AS (SELECT k, min(id) AS id FROM keyed WHERE NOT new GROUP BY k) "
                f"SELECT n.id, nt.external_id, et.external_id FROM keyed n JOIN earlier e ON e.k = n.k "
                f"JOIN {table} nt ON nt.id = n.id JOIN {table} et ON et.id = e.id "
                f"WHERE n.new AND {_sql_prompt('nt')} = {_sql_prompt('et')} ORDER BY n.id",
                [list(new_ids), campaign.pk],
            )
            return [(task_id, external_id, earlier) for task_id, external_id, earlier in cursor.fetchall()]
    fresh = set(new_ids)
    earlier: dict[int, str] = {}
    new_tasks = []
    for task_id, external_id, prompt in (
        Task.objects.filter(campaign=campaign).order_by("id").values_list("id", "external_id", "prompt").iterator()
    ):
        key = prompt_key(prompt)
        if task_id in fresh:
            new_tasks.append((task_id, external_id, key))
        else:
            earlier.setdefault(key, external_id)
    return [(task_id, external_id, earlier[key]) for task_id, external_id, key in new_tasks if key in earlier]


def _sql_normalised(text: str) -> str:
    """``importing.prompt_key``'s normalisation in SQL: ASCII lower-case (the C collation), tabs, newlines,
    vertical tabs and form feeds as spaces, carriage returns dropped, spaces trimmed. Chained replace()
    calls: translate() took six times as long over a campaign's prompts."""
    out = f'lower(({text}) COLLATE "C")'
    out = f"replace({out}, E'\\r', '')"
    for char in ("\\t", "\\n", "\\x0b", "\\x0c"):
        out = f"replace({out}, E'{char}', ' ')"
    return f"btrim({out}, ' ')"


def _sql_prompt(alias: str) -> str:
    """A task's prompt as the duplicate check compares it: a string, or chat messages as role/content."""
    text = _sql_normalised(f"{alias}.prompt #>> '{{}}'")
    content = _sql_normalised("coalesce(m->>'content', '')")
    return (
        f"CASE WHEN jsonb_typeof({alias}.prompt) = 'string' THEN {text} "
        f"ELSE (SELECT string_agg(coalesce(m->>'role', '') || chr(31) || {content}, chr(30) ORDER BY n) "
        f"FROM jsonb_array_elements({alias}.prompt) WITH ORDINALITY AS e(m, n)) END"
    )


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


def _insert_tasks(campaign: Campaign, rows: list[TaskRow]) -> list[int]:
    """Insert tasks and their responses; returns the new tasks' ids, in ``rows`` order."""
    if connection.vendor == "postgresql":
        return _insert_tasks_copy(campaign, rows)
    tasks = Task.objects.bulk_create([Task(campaign=campaign, **_task_fields(campaign, row)) for row in rows])
    Response.objects.bulk_create(
        [
            Response(task=task, position=position, model_name=response["model"], text=response["text"])
            for task, row in zip(tasks, rows)
            for position, response in enumerate(row.responses)
        ]
    )
    return [task.pk for task in tasks]


def _insert_tasks_copy(campaign: Campaign, rows: list[TaskRow]) -> list[int]:
    """PostgreSQL fast path: reserve ids from the sequence, then COPY both tables (driver errors as Django's)."""
    now = timezone.now()
    with connection.cursor() as cursor, connection.wrap_database_errors:
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
    return ids
