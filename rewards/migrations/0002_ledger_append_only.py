"""Ledger rows are append-only, enforced by the database itself.

Corrections are reversing transactions; nothing may edit or delete an entry
or a transaction, whatever code (or shell session) tries. PostgreSQL refuses
UPDATE and DELETE; SQLite refuses UPDATE (its test flush empties tables with
DELETE). TRUNCATE, which only an operator runs, is not a row trigger.
"""
from django.db import migrations

TABLES = ("rewards_ledgerentry", "rewards_ledgertransaction")

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION rewards_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are append-only: % on % refused; post a reversing transaction instead',
        TG_OP, TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;
"""


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FUNCTION, params=None)
        for table in TABLES:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION rewards_ledger_append_only()"
            )
    elif vendor == "sqlite":
        for table in TABLES:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only: post a reversing transaction instead'); END"
            )


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in TABLES:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        elif vendor == "sqlite":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only")
    if vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS rewards_ledger_append_only()")


class Migration(migrations.Migration):
    dependencies = [("rewards", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
