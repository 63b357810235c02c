"""What only MySQL and MariaDB need: `migrate` refuses a database that cannot hold what
the bot stores exactly (its default character set and collation), before any table is
made. Runs in the MySQL run only: it needs that server, and the driver."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from django.db import connection

from tests.helpers import ROOT, TEST_SECRET_KEY

pytestmark = pytest.mark.skipif(connection.vendor != "mysql", reason="MySQL's own checks")


def mysql(sql: str) -> str:
    params = connection.settings_dict
    done = subprocess.run(
        ["mysql", "-h", params["HOST"], "-P", str(params["PORT"] or 3306),
         "-u", params["USER"], "-N", "-e", sql],
        env={**os.environ, "MYSQL_PWD": params["PASSWORD"]},
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout


@pytest.fixture
def latin_database():
    name = f"topup_latin_{secrets.token_hex(4)}"
    mysql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    yield name
    mysql(f"DROP DATABASE {name}")


def test_migrate_refuses_a_database_with_a_case_insensitive_default(latin_database, tmp_path):
    params = connection.settings_dict
    url = (
        f"mysql://{params['USER']}:{params['PASSWORD']}@{params['HOST']}:"
        f"{params['PORT'] or 3306}/{latin_database}"
    )
    env = {
        **os.environ,
        "DEBUG": "false",
        "BACKEND_SECRET_KEY": TEST_SECRET_KEY,
        "DATABASE_URL": url,
        "LOG_DIR": str(tmp_path / "logs"),
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert (
        f"(backend.E003) the MySQL database `{latin_database}` is utf8mb4 / "
        "utf8mb4_general_ci; the bot needs utf8mb4 / utf8mb4_bin"
    ) in done.stderr
    assert (
        f"ALTER DATABASE `{latin_database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;"
        in done.stderr
    )
    assert mysql(f"SHOW TABLES FROM {latin_database}") == ""  # nothing was made


def test_the_lock_name_fits_get_locks_64_characters_for_any_database_name(db):
    from backend.bot.instance_lock import mysql_lock_name

    assert mysql_lock_name("topup", 7012345678) == "topup:topup:7012345678"
    long_a, long_b = "a" * 64, "a" * 63 + "b"
    assert len(mysql_lock_name(long_a, 7012345678)) <= 64
    assert mysql_lock_name(long_a, 7012345678) != mysql_lock_name(long_b, 7012345678)
    with connection.cursor() as cursor:  # the server takes it
        cursor.execute("SELECT GET_LOCK(%s, 0), RELEASE_LOCK(%s)", [mysql_lock_name(long_a, 1)] * 2)
        assert cursor.fetchone() == (1, 1)
