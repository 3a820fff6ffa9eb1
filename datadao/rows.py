"""Model instances from hand-written SQL, for the few hot paths that read several tables in one statement.

``Columns(Task, "t")`` gives the select list of the model's concrete fields
under a table alias and turns the matching slice of a result row into a model
instance, with the same conversions the ORM applies (JSON decoding, SQLite's
booleans and datetimes), so the rest of the code sees ordinary instances.
"""
from __future__ import annotations

from collections.abc import Sequence

from django.db import connection


class Columns:
    def __init__(self, model, alias: str, fields: Sequence[str] | None = None):
        self.model = model
        concrete = model._meta.concrete_fields
        if fields is not None:
            wanted = set(fields) | {model._meta.pk.name}
            concrete = [f for f in concrete if f.name in wanted or f.attname in wanted]
        # The primary key first: a NULL key marks the missing side of an outer join.
        self.fields = sorted(concrete, key=lambda f: not f.primary_key)
        self.names = [f.attname for f in self.fields]
        quote = connection.ops.quote_name
        self.sql = ", ".join(f"{alias}.{quote(f.column)}" for f in self.fields)
        # Only the columns that need converting (on PostgreSQL: JSON), by position.
        self._converters = []
        for index, field in enumerate(self.fields):
            column = field.get_col(alias)
            converters = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
            if converters:
                self._converters.append((index, column, converters))
        self.width = len(self.fields)
        self._alias = connection.alias

    def load(self, values: Sequence, db: str | None = None):
        """The instance for ``values`` (this object's columns, in order); None when its key is NULL (outer join)."""
        if values[0] is None:
            return None
        converted = list(values)
        for index, column, converters in self._converters:
            value = converted[index]
            for convert in converters:
                value = convert(value, column, connection)
            converted[index] = value
        return self.model.from_db(db or self._alias, self.names, converted)


def fetch(sql: str, params, *, one: bool = False):
    """Run one of the hot paths' fixed statements and return its rows (or its first row with ``one``).

    On PostgreSQL the statement is bound server-side and prepared once per
    connection, so the database stops parsing and planning it on every
    request (the rest of Django's queries are not prepared: Django turns
    psycopg's automatic preparation off). Errors
    come back as Django's database exceptions, as from ``connection.cursor()``.
    Elsewhere it runs through Django's cursor.
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone() if one else cursor.fetchall()
    import psycopg

    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django switches psycopg's automatic preparation off; explicit
        # preparation needs a threshold, which no statement of Django's
        # (bound client-side) ever reaches.
        raw.prepare_threshold = 2**31 - 1
    with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchone() if one else cursor.fetchall()
