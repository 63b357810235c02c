"""MySQL and MariaDB have no partial unique indexes, so Django leaves out the three
conditional unique constraints of the models (the W036 check, silenced in settings for
MySQL because of this migration). Each gets the same guarantee here from a stored
generated column that holds the key only where the condition holds (NULL elsewhere:
NULLs never collide) and a unique index on it, under the constraint's own name. Django
never reads or writes these columns. Other databases have the real constraints.
"""

from django.db import migrations

# (table, generated column, its definition, unique key name, key columns)
COUNTERPARTS = [
    (
        "payments_ledgerentry",
        "topup_bill_id",
        "varchar(64) GENERATED ALWAYS AS (CASE WHEN kind = 'topup' THEN bill_id END) STORED",
        "ledger_one_topup_per_bill",
        "topup_bill_id",
    ),
    (
        "payments_ledgerentry",
        "refund_bill_id",
        "varchar(64) GENERATED ALWAYS AS (CASE WHEN kind = 'refund' THEN bill_id END) STORED",
        "ledger_one_refund_per_bill",
        "refund_bill_id",
    ),
    (
        "payments_bill",
        "paid_charge_id",
        "varchar(255) GENERATED ALWAYS AS (NULLIF(charge_id, '')) STORED",
        "bill_one_per_provider_charge",
        "provider, paid_charge_id",
    ),
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    for table, column, definition, name, key in COUNTERPARTS:
        schema_editor.execute(
            f"ALTER TABLE {table} ADD COLUMN {column} {definition}, "
            f"ADD CONSTRAINT {name} UNIQUE ({key})"
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    for table, column, _, name, _ in COUNTERPARTS:
        schema_editor.execute(f"ALTER TABLE {table} DROP INDEX {name}, DROP COLUMN {column}")


class Migration(migrations.Migration):
    dependencies = [("payments", "0008_russian_names")]

    # Not in a transaction: MySQL cannot roll DDL back, and Django refuses DDL in one there.
    operations = [migrations.RunPython(forwards, backwards, atomic=False)]
