"""Fast bulk reads and writes for settlement-sized work (100k rows), PostgreSQL first.

On PostgreSQL rows go in with COPY (ids reserved from the table's sequence
when the caller needs them) and come out with ``COPY ... TO STDOUT``; the
ORM's per-row model instances would cost more than the database work.
Other databases (SQLite in development and tests) take the ORM path, with
the same results.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from django.db import connection
from django.db.models import Model
from django.utils import timezone

_BATCH = 5000


def insert_rows(model: type[Model], columns: Sequence[str], rows: Sequence[tuple], *, with_ids: bool = False):
    """Insert ``rows`` (tuples in ``columns`` order, attnames) and return their ids if asked, in order."""
    if not rows:
        return [] if with_ids else None
    if connection.vendor != "postgresql":
        objs = model.objects.bulk_create([model(**dict(zip(columns, row))) for row in rows], batch_size=_BATCH)
        return [obj.pk for obj in objs] if with_ids else None
    from psycopg.types.json import Jsonb

    table = model._meta.db_table
    # COPY leaves a column it does not name to the database (NULL, or a db_default); bulk_create fills the
    # model's Python defaults and auto_now(_add) times, so the fast path names those columns too.
    filled = [f for f in model._meta.concrete_fields if f.attname not in columns and not f.primary_key
              and (f.has_default() or getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False))]
    if filled:
        now = timezone.now()
        columns = [*columns, *(f.attname for f in filled)]
        rows = [(*row, *(f.get_default() if f.has_default() else now for f in filled)) for row in rows]
    fields = [model._meta.get_field(c) if c != "id" else None for c in columns]
    names = [f.column if f is not None else "id" for f in fields]
    json_at = [k for k, f in enumerate(fields) if f is not None and f.get_internal_type() == "JSONField"]
    if json_at:  # COPY would write a Python list as a PostgreSQL array
        rows = [tuple(Jsonb(v) if k in json_at else v for k, v in enumerate(row)) for row in rows]
    ids = None
    with connection.cursor() as cursor, connection.wrap_database_errors:
        if with_ids:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, len(rows)],
            )
            ids = [r[0] for r in cursor.fetchall()]
            names = ["id", *names]
        with cursor.cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
            if ids is None:
                for row in rows:
                    copy.write_row(row)
            else:
                for pk, row in zip(ids, rows):
                    copy.write_row((pk, *row))
    return ids


def select_int_matrix(sql: str, params: Sequence, n_columns: int) -> np.ndarray:
    """PostgreSQL: run a SELECT of integer columns and return an (n, n_columns) int64 array, via COPY.

    NULLs are not allowed (COPY writes them as \\N); coalesce them in the query.
    """
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT", params) as copy:
            data = b"".join(bytes(block) for block in copy)
    if not data:
        return np.zeros((0, n_columns), dtype=np.int64)
    return np.array(data.split(), dtype=np.int64).reshape(-1, n_columns)
