"""A migration operation that moves a decimal column to whole kopecks without loss."""

from __future__ import annotations

from django.db import migrations


class AlterFieldToKopecks(migrations.AlterField):
    """`AlterField` from a `DecimalField` (rubles) to a `MoneyField` (kopecks in a
    bigint column), with the values multiplied by 100 on the way (divided on the way
    back).

    PostgreSQL converts in one `ALTER … TYPE bigint USING round(x * 100)`. SQLite can
    only rebuild the table, which copies the values as they are: they are scaled in
    place first (its REAL values are rounded to the kopeck, which is what the pages
    showed; 0.19999999999999998 becomes 20). Constraints and indexes that name the
    column must be dropped before and made again after (PostgreSQL would keep them
    comparing through `numeric`), and SQLite's triggers on the table are lost with the
    rebuild: the migration that uses this makes them again. Any other database gets a
    plain `ALTER` on an empty table only (none held money before this migration).
    """

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._convert(app_label, schema_editor, from_state, to_state, to_kopecks=True)

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._convert(app_label, schema_editor, from_state, to_state, to_kopecks=False)

    def _convert(self, app_label, schema_editor, from_state, to_state, *, to_kopecks: bool):
        from_model = from_state.apps.get_model(app_label, self.model_name)
        to_model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, to_model):
            return
        old = from_model._meta.get_field(self.name)
        new = to_model._meta.get_field(self.name)
        connection = schema_editor.connection
        q = schema_editor.quote_name
        table, column = q(from_model._meta.db_table), q(old.column)
        if connection.vendor == "postgresql":
            using = f"round({column} * 100)" if to_kopecks else f"{column}::numeric / 100"
            schema_editor.execute(
                f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {new.db_type(connection)} "
                f"USING {using}"
            )
        elif connection.vendor == "sqlite":
            if to_kopecks:
                scaled = f"CAST(ROUND({column} * 100) AS INTEGER)"
            else:
                scaled = f"{column} / 100.0"
            schema_editor.execute(f"UPDATE {table} SET {column} = {scaled}")
            schema_editor.alter_field(from_model, old, new)
        else:
            if from_model._base_manager.using(connection.alias).exists():
                raise RuntimeError(
                    f"{from_model._meta.db_table} has rows: converting them to kopecks "
                    f"is written for PostgreSQL and SQLite only"
                )
            schema_editor.alter_field(from_model, old, new)
