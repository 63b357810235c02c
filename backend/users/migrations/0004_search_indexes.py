"""Indexes behind the admin's search on PostgreSQL.

The search asks for the start of a username or name ignoring case: Django writes that
as `UPPER(col::text) LIKE UPPER('ivan%')`, which only an index on the same expression
with the pattern operator class can serve. SQLite has no such indexes (its LIKE on a
table this size is a scan either way).
"""

from django.db import migrations

COLUMNS = ("username", "first_name", "last_name")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in COLUMNS:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS telegram_user_{column}_prefix "
            f'ON users_telegramuser (UPPER("{column}"::text) text_pattern_ops)'
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in COLUMNS:
        schema_editor.execute(f"DROP INDEX IF EXISTS telegram_user_{column}_prefix")


class Migration(migrations.Migration):
    dependencies = [("users", "0003_translatable_names")]

    operations = [migrations.RunPython(forwards, backwards)]
