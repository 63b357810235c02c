"""A DATABASE_URL naming a database that does not exist: one line saying what to create,
exit status 1, for `manage.py` commands and `runbot.py` alike.

Asks the MySQL server at 127.0.0.1:3306 in the MySQL run, else the PostgreSQL server at
127.0.0.1:5432 (CI starts both), also in the SQLite run: only the server is asked, no
database is made."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys

import pytest
from django.db import connection

from tests.constants import TOKEN
from tests.helpers import ROOT, TEST_SECRET_KEY

MYSQL = connection.vendor == "mysql"
SERVER = ("127.0.0.1", 3306 if MYSQL else 5432)
URL = "mysql://root@127.0.0.1:3306/" if MYSQL else "postgres://postgres@127.0.0.1:5432/"


@pytest.fixture(scope="module")
def missing_database() -> str:
    try:
        socket.create_connection(SERVER, timeout=5).close()
    except OSError:
        pytest.fail(
            f"these tests need the database server at 127.0.0.1:{SERVER[1]} (.ci/run starts it)",
            pytrace=False,
        )
    return f"topup_missing_{secrets.token_hex(4)}"


def run(args: list[str], database: str, tmp_path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DEBUG": "false",
        "BACKEND_SECRET_KEY": TEST_SECRET_KEY,
        "DATABASE_URL": URL + database,
        "TELEGRAM_API_TOKEN": TOKEN,
        "TELEGRAM_API_SERVER": "http://127.0.0.1:9",  # never reached
        "PAYMENT_PROVIDERS": "telegram",
        "LOG_DIR": str(tmp_path / "logs"),
    }
    return subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args",
    [["manage.py", "migrate", "--noinput"], ["runbot.py"], ["manage.py", "runbot"]],
    ids=["migrate", "runbot.py", "manage.py runbot"],
)
def test_a_missing_database_is_one_line_naming_it(missing_database, tmp_path, args):
    done = run([str(ROOT / args[0]), *args[1:]], missing_database, tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    if MYSQL:
        create = (
            f"mysql -h 127.0.0.1 -P 3306 -u root -e 'CREATE DATABASE `{missing_database}` "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin'"
        )
    else:
        create = f"createdb -h 127.0.0.1 -p 5432 -U postgres {missing_database}"
    server = "MySQL" if MYSQL else "PostgreSQL"
    assert lines == [
        f'the {server} database "{missing_database}" does not exist on {SERVER[0]}:{SERVER[1]}: '
        f"create it first ({create}), or fix DATABASE_URL"
    ], done.stderr
    assert done.stdout == ""


def test_commands_that_need_no_database_still_run(missing_database, tmp_path):
    done = run([str(ROOT / "manage.py"), "check"], missing_database, tmp_path)
    assert done.returncode == 0, done.stderr
