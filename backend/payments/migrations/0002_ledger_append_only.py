"""The database itself refuses to change ledger rows, and on PostgreSQL and MySQL to
delete them.

SQLite gets no DELETE trigger: Django's test runner empties tables with DELETE there
(PostgreSQL's and MySQL's TRUNCATE fire no row trigger; the tests empty tables on MySQL
with TRUNCATE, see tests/conftest.py).
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

MYSQL_TRIGGERS = {
    event: f"""
CREATE TRIGGER payments_ledger_append_only_{event.lower()}
BEFORE {event} ON payments_ledgerentry
FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'ledger entries are append-only'
"""
    for event in ("UPDATE", "DELETE")
}


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FUNCTION)
        schema_editor.execute(PG_TRIGGER)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_TRIGGER)
    elif vendor == "mysql":
        for trigger in MYSQL_TRIGGERS.values():
            schema_editor.execute(trigger)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(
            "DROP TRIGGER IF EXISTS payments_ledger_append_only ON payments_ledgerentry"
        )
    elif vendor == "mysql":
        for event in MYSQL_TRIGGERS:
            schema_editor.execute(
                f"DROP TRIGGER IF EXISTS payments_ledger_append_only_{event.lower()}"
            )
    else:
        schema_editor.execute("DROP TRIGGER IF EXISTS payments_ledger_append_only")


class Migration(migrations.Migration):
    dependencies = [("payments", "0001_initial")]

    # Not in a transaction: MySQL cannot roll DDL back, and Django refuses DDL in one there.
    operations = [migrations.RunPython(forwards, backwards, atomic=False)]
