"""MySQL and MariaDB counterparts of what PostgreSQL gets from indexes Django or
migration 0004 make there; nothing happens on the other databases.

- The search. The database's collation is binary (settings: ids compare as written),
  which makes LIKE case-sensitive. The three searched columns get a case-insensitive,
  accent-sensitive collation instead, as PostgreSQL's UPPER() compares: «ёлка» finds
  «Ёлка», never «елка», and emoji stay distinct: MariaDB's `utf8mb4_uca1400_as_ci`
  (10.10 and newer), MySQL 8's `utf8mb4_0900_as_ci`, else `utf8mb4_unicode_520_ci`
  (there «ё» and «е» are one letter). A plain index on each serves `LIKE 'term%'`.
  An AlterField of one of these columns would set the binary collation again: such a
  migration must repeat this one's ALTER.
- The filters «blocked» and «balance above zero». MySQL has no partial indexes: Django
  made the two indexes without their condition, on `id` alone, which serves nothing.
  They are made again, under the same names, on the filtered column.
"""

from django.db import migrations

SEARCHED = {"username": 64, "first_name": 256, "last_name": 256}
COLLATIONS = ("utf8mb4_uca1400_as_ci", "utf8mb4_0900_as_ci", "utf8mb4_unicode_520_ci")
FILTERS = {"telegram_user_blocked": "is_blocked", "telegram_user_with_balance": "balance"}


def search_collation(schema_editor) -> str:
    """The first of COLLATIONS the server knows (MariaDB lists its UCA 14 collations
    without the charset's prefix, so each is tried instead of looked up)."""
    from django.db import DatabaseError

    for name in COLLATIONS:
        try:
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(f"SELECT _utf8mb4'a' COLLATE {name}")
                cursor.fetchall()
        except DatabaseError:
            continue
        return name
    raise RuntimeError(f"the server knows none of the collations {COLLATIONS}")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    collation = search_collation(schema_editor)
    changes = [
        f"MODIFY {column} varchar({length}) CHARACTER SET utf8mb4 COLLATE {collation} NOT NULL"
        for column, length in SEARCHED.items()
    ]
    changes += [f"ADD INDEX telegram_user_{column}_prefix ({column})" for column in SEARCHED]
    for name, column in FILTERS.items():
        changes += [f"DROP INDEX {name}", f"ADD INDEX {name} ({column})"]
    schema_editor.execute(f"ALTER TABLE users_telegramuser {', '.join(changes)}")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    changes = [
        f"MODIFY {column} varchar({length}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"
        for column, length in SEARCHED.items()
    ]
    changes += [f"DROP INDEX telegram_user_{column}_prefix" for column in SEARCHED]
    for name in FILTERS:
        changes += [f"DROP INDEX {name}", f"ADD INDEX {name} (id)"]
    schema_editor.execute(f"ALTER TABLE users_telegramuser {', '.join(changes)}")


class Migration(migrations.Migration):
    dependencies = [("users", "0008_balance_in_kopecks")]

    # Not in a transaction: MySQL cannot roll DDL back, and Django refuses DDL in one there.
    operations = [migrations.RunPython(forwards, backwards, atomic=False)]
