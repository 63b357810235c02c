"""What `manage.py` and `runbot.py` run: Django's command line, with one line instead of
a traceback when the PostgreSQL or MySQL database that DATABASE_URL names does not exist.

`runbot` connects once before it starts (so the bot does not start only to stop); any
other command meets the missing database where it first connects. Commands that need
no database (`check`, `makemigrations`, `compilemessages`, `help`) still need none.
Other connection failures (a server that is down) are left as they were: the bot
retries them.
"""

from __future__ import annotations

import os
import re
import shlex
import sys

_MISSING_DATABASE = re.compile(
    r'database "(?P<pg>[^"]+)" does not exist'  # PostgreSQL
    r"|\(1049, \"Unknown database '(?P<mysql>[^']+)'\"\)"  # MySQL and MariaDB
)


def missing_database(error: BaseException) -> str | None:
    """The database's name when `error` (or what caused it) is PostgreSQL's "database
    … does not exist" or MySQL's "Unknown database …" (the driver's error, or Django's
    OperationalError made from it)."""
    seen = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ == "OperationalError":
            match = _MISSING_DATABASE.search(str(current))
            if match:
                return match.group("pg") or match.group("mysql")
        current = current.__cause__ or current.__context__
    return None


def missing_database_line(name: str) -> str:
    """One line: which database to create, where, and how."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    host = db.get("HOST") or "localhost"
    user = db.get("USER") or ""
    if db["ENGINE"].endswith("mysql"):
        server, port = "MySQL", db.get("PORT") or "3306"
        create = [
            *("mysql", "-h", host, "-P", str(port), *(["-u", user] if user else []), "-e"),
            f"CREATE DATABASE `{name}` CHARACTER SET {settings.MYSQL_CHARSET} "
            f"COLLATE {settings.MYSQL_COLLATION}",
        ]
    else:
        server, port = "PostgreSQL", db.get("PORT") or "5432"
        create = ["createdb", "-h", host, "-p", str(port), *(["-U", user] if user else []), name]
    return (
        f'the {server} database "{name}" does not exist on {host}:{port}: create it first '
        f"({shlex.join(create)}), or fix DATABASE_URL"
    )


def _connect_first() -> None:
    """Connects to the database once: only a missing database stops the start."""
    import django
    from django.db import OperationalError, connection

    django.setup()
    try:
        connection.ensure_connection()
    except OperationalError as error:
        if missing_database(error) is not None:
            raise
    finally:
        connection.close()


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
    from django.core.management import execute_from_command_line

    try:
        if len(argv) > 1 and argv[1] == "runbot":
            _connect_first()
        execute_from_command_line(argv)
    except Exception as error:
        name = missing_database(error)
        if name is None:
            raise
        sys.stderr.write(missing_database_line(name) + "\n")
        sys.exit(1)
