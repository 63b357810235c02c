"""Amounts become whole kopecks in bigint columns (see backend/common/money.py), and
ledger rows get the key of the admin form that made them (a resent form writes none)."""

from django.db import migrations, models

import backend.common.money
from backend.common.migration_ops import AlterFieldToKopecks

SQLITE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS payments_ledger_append_only
BEFORE UPDATE ON payments_ledgerentry
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
"""

CONSTRAINTS = {
    "bill": [
        models.CheckConstraint(condition=models.Q(("amount__gt", 0)), name="bill_amount_positive"),
    ],
    "ledgerentry": [
        models.CheckConstraint(
            condition=models.Q(
                models.Q(("kind", "topup"), _negated=True),
                models.Q(("amount__gt", 0), ("bill__isnull", False)),
                _connector="OR",
            ),
            name="ledger_topup_has_bill",
        ),
        models.CheckConstraint(
            condition=models.Q(("amount", 0), _negated=True), name="ledger_amount_not_zero"
        ),
        models.CheckConstraint(
            condition=models.Q(
                models.Q(("kind", "refund"), _negated=True),
                models.Q(("amount__lt", 0), ("bill__isnull", False)),
                _connector="OR",
            ),
            name="ledger_refund_has_bill",
        ),
    ],
}


def sqlite_trigger_off(apps, schema_editor):
    """The amounts are scaled in place, and the table rebuilt: the trigger goes first."""
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS payments_ledger_append_only")


def sqlite_trigger_on(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(SQLITE_TRIGGER)


def money(verbose_name, max_digits=14):
    return backend.common.money.MoneyField(
        decimal_places=2, max_digits=max_digits, verbose_name=verbose_name
    )


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0005_telegram_payments"),
        ("users", "0008_balance_in_kopecks"),
    ]

    operations = [
        migrations.RunPython(sqlite_trigger_off, sqlite_trigger_on),
        *(
            migrations.RemoveConstraint(model_name=model, name=constraint.name)
            for model, constraints in CONSTRAINTS.items()
            for constraint in constraints
        ),
        AlterFieldToKopecks(model_name="bill", name="amount", field=money("amount", 12)),
        AlterFieldToKopecks(model_name="ledgerentry", name="amount", field=money("amount")),
        AlterFieldToKopecks(
            model_name="ledgerentry", name="balance_after", field=money("balance after")
        ),
        *(
            migrations.AddConstraint(model_name=model, constraint=constraint)
            for model, constraints in CONSTRAINTS.items()
            for constraint in constraints
        ),
        migrations.AddField(
            model_name="ledgerentry",
            name="idempotency_key",
            field=models.CharField(
                blank=True,
                editable=False,
                max_length=64,
                null=True,
                unique=True,
                verbose_name="form key",
            ),
        ),
        migrations.RunPython(sqlite_trigger_on, sqlite_trigger_off),
    ]
