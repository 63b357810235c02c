"""The database itself refuses to change ledger rows, and on PostgreSQL to delete them.

SQLite gets no DELETE trigger: Django's test runner empties tables with DELETE there
(PostgreSQL's TRUNCATE fires no row trigger).
"""

from django.db import migrations

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION payments_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only';
END;
$$ LANGUAGE plpgsql;
"""
PG_TRIGGER = """
CREATE TRIGGER payments_ledger_append_only
BEFORE UPDATE OR DELETE ON payments_ledgerentry
FOR EACH ROW EXECUTE FUNCTION payments_ledger_append_only();
"""
SQLITE_TRIGGER = """
CREATE TRIGGER payments_ledger_append_only
BEFORE UPDATE ON payments_ledgerentry
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
"""


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FUNCTION)
        schema_editor.execute(PG_TRIGGER)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_TRIGGER)


def backwards(apps, schema_editor):
    schema_editor.execute("DROP TRIGGER IF EXISTS payments_ledger_append_only ON payments_ledgerentry"
                          if schema_editor.connection.vendor == "postgresql"
                          else "DROP TRIGGER IF EXISTS payments_ledger_append_only")


class Migration(migrations.Migration):
    dependencies = [("payments", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
