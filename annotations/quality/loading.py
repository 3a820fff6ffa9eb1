"""Bulk reads for the quality jobs: judgments as NumPy columns, never as model objects.

One query describes the columns (Django expressions, so SQLite and
PostgreSQL read the same thing); on PostgreSQL it runs as a binary
``COPY (...) TO STDOUT`` whose fixed-width rows NumPy reads in place, on
other databases through ``values_list``. Every column is a non-null bigint
so that a row is a fixed-size record. A campaign of 1M judgments loads in
well under a second this way; ``values_list`` would build 10M Python ints.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import BigIntegerField, Case, F, Q, QuerySet, Sum, TextField, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, Length, Replace, StrIndex

from annotations.models import Flag, Judgment, Response, Task, TaskConsensus
from annotations.money import rewards_side
from annotations.quality.compute import STRENGTH_NONE, Judgments

_BIG = BigIntegerField()


def _big(expression) -> Cast:
    return Cast(expression, _BIG)


def _flag(condition: Q) -> Cast:
    return _big(Case(When(condition, then=Value(1)), default=Value(0)))


def judgment_columns(campaign_id: int, k: int, *, window: tuple[datetime, datetime] | None = None,
                     task_ids: QuerySet | None = None,
                     inner: tuple[datetime, datetime] | None = None) -> tuple[QuerySet, list[str]]:
    """The counted (not voided) judgments of a campaign as a queryset of bigint columns, and the column names."""
    columns: dict[str, Any] = {
        "q_id": _big(F("id")), "q_task": _big(F("task_id")), "q_expert": _big(F("expert_id")),
    }
    for position in range(k):
        columns[f"q_r{position}"] = _big(KT(f"ranks__{position}"))
    columns["q_strength"] = _big(Coalesce(F("strength"), Value(STRENGTH_NONE)))
    columns["q_slot_a"] = _big(KT("display_order__0"))
    columns["q_slot_b"] = _big(KT("display_order__1"))
    columns["q_time"] = _big(F("time_spent_ms"))
    columns["q_gold"] = _flag(Q(is_gold=True))
    columns["q_correct"] = _big(Case(
        When(gold_correct=True, then=Value(1)), When(gold_correct=False, then=Value(0)), default=Value(-1),
    ))
    columns["q_outside"] = _big(StrIndex(Cast("flags", TextField()), Value(f'"{Flag.OUTSIDE_EXPERTISE.value}"')))
    if window is not None:
        columns["q_window"] = _flag(Q(submitted_at__gte=window[0], submitted_at__lt=window[1]))
    if inner is not None:
        columns["q_inner"] = _flag(Q(submitted_at__gte=inner[0], submitted_at__lt=inner[1]))
    queryset = Judgment.objects.filter(campaign_id=campaign_id, voided=False)
    if task_ids is not None:
        queryset = queryset.filter(task_id__in=task_ids)
    names = list(columns)
    return queryset.annotate(**columns).values_list(*names).order_by(), names


def _read_int_columns(queryset: QuerySet, n_columns: int) -> np.ndarray:
    """``(rows, n_columns)`` int64 array of a values_list of bigints (NULL reads as -1)."""
    if connection.vendor == "postgresql":
        # One aggregate row: each column as a single bytea of big-endian int64s
        # (int8send), so a million rows cross the wire as fourteen buffers that
        # NumPy reads in place, not as a million rows parsed one by one.
        import psycopg

        sql, params = queryset.query.sql_with_params()
        names = [f"q{c}" for c in range(n_columns)]
        aggregates = ", ".join(f"string_agg(int8send(coalesce({name}, -1)), '')" for name in names)
        connection.ensure_connection()
        # A server-side binding cursor: the client-side ones Django uses cannot return binary results.
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(f"SELECT {aggregates} FROM ({sql}) AS q ({', '.join(names)})", params, binary=True)
            row = cursor.fetchone()
        if row is None or row[0] is None:
            return np.empty((0, n_columns), dtype=np.int64)
        return np.column_stack([np.frombuffer(column, dtype=">i8") for column in row]).astype(np.int64)
    values = [[-1 if v is None else v for v in row] for row in queryset]
    return np.array(values, dtype=np.int64).reshape(len(values), n_columns)


def load_judgments(campaign_id: int, k: int, *, window: tuple[datetime, datetime] | None = None,
                   task_ids: QuerySet | None = None) -> tuple[Judgments, np.ndarray | None]:
    """All counted judgments of the campaign (or of ``task_ids``); with ``window``, also "submitted in it" per row."""
    judgments, flags = load_judgments_windows(campaign_id, k, window=window, task_ids=task_ids)
    return judgments, flags[0] if window is not None else None


def load_judgments_windows(
    campaign_id: int, k: int, *, window: tuple[datetime, datetime] | None = None, task_ids: QuerySet | None = None,
    inner: tuple[datetime, datetime] | None = None,
) -> tuple[Judgments, tuple[np.ndarray | None, np.ndarray | None]]:
    """``load_judgments`` with a second window (``inner``, e.g. the epoch inside a longer history)."""
    queryset, names = judgment_columns(campaign_id, k, window=window, task_ids=task_ids, inner=inner)
    data = _read_int_columns(queryset, len(names))
    col = {name: data[:, c] for c, name in enumerate(names)}
    ranks = np.ascontiguousarray(data[:, 3 : 3 + k])
    judgments = Judgments(
        k=k, judgment_id=col["q_id"].copy(), task_id=col["q_task"].copy(), expert_id=col["q_expert"].copy(),
        ranks=ranks, strength=col["q_strength"].copy(), slot_a=col["q_slot_a"].copy(), slot_b=col["q_slot_b"].copy(),
        time_ms=col["q_time"].copy(), is_gold=col["q_gold"] == 1, gold_correct=col["q_correct"].copy(),
        outside=col["q_outside"] > 0,
    )
    in_window = col["q_window"] == 1 if window is not None else None
    in_inner = col["q_inner"] == 1 if inner is not None else None
    return judgments, (in_window, in_inner)


def gold_ranks(campaign_id: int) -> dict[int, list[int]]:
    """Gold ranks per gold task of the campaign."""
    return {
        task_id: gold for task_id, gold in
        Task.objects.filter(campaign_id=campaign_id, is_gold=True, gold__isnull=False).values_list("id", "gold")
        if isinstance(gold, list)
    }


def _words(expression) -> Any:
    """Approximate whitespace words: spaces and newlines, plus one."""
    text = Cast(expression, TextField())
    squeezed = Replace(Replace(text, Value(" "), Value("")), Value("\n"), Value(""))
    return Length(text) - Length(squeezed) + Value(1)


def task_tokens(campaign_id: int) -> dict[int, int]:
    """Approximate tokens per non-gold task with a judgment: cached counts, computed in SQL where missing.

    Counting words in the database keeps the texts (hundreds of megabytes
    for a large campaign) out of this process; the count is cached on
    ``TaskConsensus.tokens`` so each task is counted once.
    """
    known = dict(
        TaskConsensus.objects.filter(campaign_id=campaign_id, tokens__isnull=False).values_list("task_id", "tokens")
    )
    missing = Q(task__consensus__isnull=True) | Q(task__consensus__tokens__isnull=True)
    responses = (
        Response.objects.filter(missing, task__campaign_id=campaign_id, task__is_gold=False, task__judgment_count__gt=0)
        .values("task_id").annotate(words=Sum(_words("text"))).order_by().values_list("task_id", "words")
    )
    fresh = dict(responses)
    if fresh:
        prompts = (
            Task.objects.filter(campaign_id=campaign_id, is_gold=False, judgment_count__gt=0)
            .filter(Q(consensus__isnull=True) | Q(consensus__tokens__isnull=True))
            .annotate(words=_words("prompt")).values_list("id", "words")
        )
        for task_id, words in prompts:
            fresh[task_id] = int(fresh.get(task_id) or 0) + int(words or 0)
    known.update(fresh)
    return known


def bonded_stakes(expert_ids: list[int]) -> dict[int, int]:
    """Bonded stake per expert, in one read (one query per rater costs seconds on a campaign with 2,000
    raters); the rewards side reads it (``rewards.selectors.experts_bonded_stake``)."""
    return {int(e): int(s) for e, s in rewards_side().bonded_stakes(expert_ids=expert_ids).items()}


def task_tokens_of(task_id: int) -> int:
    """Approximate tokens of one task (prompt and responses), counted in SQL like ``task_tokens``."""
    return tasks_tokens_of([task_id]).get(task_id, 0)


def tasks_tokens_of(task_ids: list[int]) -> dict[int, int]:
    """``task_tokens_of`` for several tasks in two statements (the consensus drain's batch)."""
    if not task_ids:
        return {}
    words = dict(Response.objects.filter(task_id__in=task_ids).values("task_id").annotate(words=Sum(_words("text")))
                 .order_by().values_list("task_id", "words"))
    prompts = Task.objects.filter(pk__in=task_ids).annotate(words=_words("prompt")).values_list("id", "words")
    return {task_id: int(words.get(task_id) or 0) + int(prompt or 0) for task_id, prompt in prompts}
