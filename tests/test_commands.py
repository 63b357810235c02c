"""The management commands: in-process through call_command, and as real processes where
the exit status and the printed message are the behaviour under test."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from backend.payments import services
from backend.users.models import TelegramUser
from tests.fakes import make_secret_key
from tests.helpers import TEST_SECRET_KEY

ROOT = Path(__file__).resolve().parent.parent
HEADER = "telegram_id,username,first_name,last_name,balance,is_blocked,created_at,last_seen_at"
TOKEN = "123456:ABCdefGhIJKlmnoPQRsTUVwxyz0123456789"
QIWI_KEY = make_secret_key()
BAD_QIWI_KEY = "not-a-key"


# --- export_users --------------------------------------------------------------------


@pytest.fixture
def users(db) -> list[TelegramUser]:
    ivan = TelegramUser.objects.create(
        telegram_id=1001, username="ivan", first_name="Иван", last_name="Петров"
    )
    services.balance_adjust(user=ivan, amount=Decimal("12.50"), reason="test")
    tricky = TelegramUser.objects.create(
        telegram_id=1002,
        username="",
        first_name='Smith, "Jr"',
        last_name="O'Neil,\nline two",
        is_blocked=True,
    )
    rich = TelegramUser.objects.create(telegram_id=5_000_000_000, first_name="Ann")
    services.balance_adjust(user=rich, amount=Decimal("99999.99"), reason="test")
    return [TelegramUser.objects.get(pk=u.pk) for u in (ivan, tricky, rich)]


def local(moment) -> str:
    return timezone.localtime(moment).isoformat(sep=" ", timespec="seconds")


def expected_rows(users: list[TelegramUser]) -> list[list[str]]:
    return [
        [
            str(u.telegram_id),
            u.username,
            u.first_name,
            u.last_name,
            f"{u.balance:.2f}",
            "1" if u.is_blocked else "0",
            local(u.created_at),
            local(u.last_seen_at),
        ]
        for u in users
    ]


def parse_csv(text: str, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def test_export_users_to_stdout(users):
    out, err = io.StringIO(), io.StringIO()
    call_command("export_users", "--dialect", "rfc4180", stdout=out, stderr=err)
    text = out.getvalue()

    assert text.splitlines()[0] == HEADER
    rows = parse_csv(text)
    assert rows[0] == HEADER.split(",")
    assert rows[1:] == expected_rows(users)
    assert rows[1][2] == "Иван" and rows[1][4] == "12.50"
    assert rows[2][2] == 'Smith, "Jr"' and rows[2][3] == "O'Neil,\nline two"
    # The comma and the quotes are quoted, not split into extra columns.
    assert '"Smith, ""Jr"""' in text
    assert rows[2][4] == "0.00" and rows[3][4] == "99999.99"


def test_export_users_to_file(users, tmp_path):
    target = tmp_path / "users.csv"
    out, err = io.StringIO(), io.StringIO()

    call_command("export_users", "--dialect", "rfc4180", "-o", str(target), stdout=out, stderr=err)

    text = target.read_bytes().decode("utf-8")  # strict: the file is UTF-8
    assert text.splitlines()[0] == HEADER
    rows = parse_csv(text)
    assert rows[0] == HEADER.split(",")
    assert rows[1:] == expected_rows(users)
    assert "3 users written to" in err.getvalue()
    assert str(target) in err.getvalue()
    assert out.getvalue() == ""


def test_export_users_file_and_stdout_hold_the_same_csv(users, tmp_path):
    target = tmp_path / "users.csv"
    out = io.StringIO()
    call_command("export_users", stdout=out)
    call_command("export_users", "-o", str(target), stdout=io.StringIO(), stderr=io.StringIO())
    assert out.getvalue() != ""
    assert target.read_bytes().decode("utf-8") == out.getvalue()


def test_export_users_neutralises_formulas_in_names(db):
    TelegramUser.objects.create(
        telegram_id=1003, username="@evil", first_name='=HYPERLINK("x")', last_name="-2+3"
    )
    out = io.StringIO()
    call_command("export_users", stdout=out)  # excel-ru, the default
    row = parse_csv(out.getvalue().removeprefix("\ufeff"), delimiter=";")[1]
    assert row[:4] == ["1003", "'@evil", '\'=HYPERLINK("x")', "'-2+3"]
    assert row[4] == "0,00"  # numbers stay numbers


def test_export_users_without_users_writes_only_the_header(db, tmp_path):
    target = tmp_path / "empty.csv"
    err = io.StringIO()
    call_command(
        "export_users", "--dialect", "rfc4180", "-o", str(target), stdout=io.StringIO(), stderr=err
    )
    assert parse_csv(target.read_text(encoding="utf-8")) == [HEADER.split(",")]
    assert "0 users written" in err.getvalue()


def test_export_users_to_an_unwritable_path_is_a_command_error(db, tmp_path):
    target = tmp_path / "no-such-folder" / "users.csv"
    with pytest.raises(CommandError, match="cannot write"):
        call_command("export_users", "--output", str(target), stdout=io.StringIO())
    assert not target.exists()


# --- block_user / unblock_user -------------------------------------------------------


def test_block_and_unblock_user(db):
    user = TelegramUser.objects.create(telegram_id=4242, username="ivan")
    other = TelegramUser.objects.create(telegram_id=4343)

    out = io.StringIO()
    call_command("block_user", "4242", stdout=out)
    assert TelegramUser.objects.get(pk=user.pk).is_blocked is True
    assert TelegramUser.objects.get(pk=other.pk).is_blocked is False
    line = out.getvalue().strip()
    assert "4242" in line and line.endswith("blocked")

    out = io.StringIO()
    call_command("unblock_user", "4242", stdout=out)
    assert TelegramUser.objects.get(pk=user.pk).is_blocked is False
    line = out.getvalue().strip()
    assert "4242" in line and line.endswith("unblocked")


def test_block_user_twice_keeps_the_user_blocked(db):
    TelegramUser.objects.create(telegram_id=4444)
    call_command("block_user", "4444", stdout=io.StringIO())
    out = io.StringIO()
    call_command("block_user", "4444", stdout=out)
    assert TelegramUser.objects.get(telegram_id=4444).is_blocked is True
    assert "4444" in out.getvalue()


@pytest.mark.parametrize("command", ["block_user", "unblock_user"])
def test_unknown_id_is_a_command_error_naming_the_id(db, command):
    TelegramUser.objects.create(telegram_id=4545)
    with pytest.raises(CommandError, match="999999"):
        call_command(command, "999999", stdout=io.StringIO())
    assert TelegramUser.objects.get(telegram_id=4545).is_blocked is False
    assert not TelegramUser.objects.filter(telegram_id=999999).exists()


def test_unknown_id_exits_with_status_1(tmp_path):
    """The real command line: Django turns the CommandError into exit status 1."""
    env = {
        **os.environ,
        "BACKEND_SECRET_KEY": TEST_SECRET_KEY,
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
        "LOG_DIR": str(tmp_path / "logs"),
        "PYTHONIOENCODING": "utf-8",
    }

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
        )

    migrate = manage("migrate", "--noinput")
    assert migrate.returncode == 0, migrate.stderr
    assert (tmp_path / "x.sqlite3").is_file()

    result = manage("block_user", "999999")

    assert result.returncode == 1
    assert "999999" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# --- runbot --------------------------------------------------------------------------

# Each start of the bot imports aiogram (seconds of CPU): the cases run as processes in
# parallel, once per module, and each test checks its own case.
RUNBOT_CASES = {
    "no_token": (["runbot.py"], {"TELEGRAM_API_TOKEN": "", "QIWI_SECRET_KEY": QIWI_KEY}),
    "no_token_manage": (
        ["manage.py", "runbot"],
        {"TELEGRAM_API_TOKEN": "", "QIWI_SECRET_KEY": QIWI_KEY},
    ),
    "no_qiwi_key": (["runbot.py"], {"TELEGRAM_API_TOKEN": TOKEN, "QIWI_SECRET_KEY": ""}),
    "bad_qiwi_key": (
        ["runbot.py"],
        {"TELEGRAM_API_TOKEN": TOKEN, "QIWI_SECRET_KEY": BAD_QIWI_KEY},
    ),
}


@pytest.fixture(scope="module")
def runbot(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    processes = {}
    for name, (args, settings) in RUNBOT_CASES.items():
        tmp = tmp_path_factory.mktemp(name)
        env = {
            **os.environ,
            "BACKEND_SECRET_KEY": TEST_SECRET_KEY,
            **settings,
            # Never the developer's database or log folder, and never a real server.
            "DATABASE_URL": f"sqlite:///{tmp}/bot.sqlite3",
            "LOG_DIR": str(tmp / "logs"),
            "TELEGRAM_API_SERVER": "http://127.0.0.1:9",
            "QIWI_API_URL": "http://127.0.0.1:9",
            "PYTHONIOENCODING": "utf-8",
        }
        processes[name] = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
    results = {}
    try:
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=60)
            results[name] = subprocess.CompletedProcess(
                process.args, process.returncode, stdout, stderr
            )
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    return results


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "nothing was printed"
    return lines[-1]


def assert_refused(result: subprocess.CompletedProcess, setting: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert setting in last_line(result.stderr)
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    # Secrets are never printed.
    assert TOKEN not in output
    assert QIWI_KEY not in output


def test_runbot_without_token(runbot):
    result = runbot["no_token"]
    assert_refused(result, "TELEGRAM_API_TOKEN")
    assert "QIWI_SECRET_KEY" not in last_line(result.stderr)


def test_runbot_without_qiwi_key(runbot):
    result = runbot["no_qiwi_key"]
    assert_refused(result, "QIWI_SECRET_KEY")
    assert "TELEGRAM_API_TOKEN" not in last_line(result.stderr)


def test_runbot_with_a_malformed_qiwi_key(runbot):
    result = runbot["bad_qiwi_key"]
    assert_refused(result, "QIWI_SECRET_KEY")
    assert BAD_QIWI_KEY not in result.stdout + result.stderr


def test_manage_py_runbot_is_runbot_py(runbot):
    result = runbot["no_token_manage"]
    assert_refused(result, "TELEGRAM_API_TOKEN")
    assert last_line(result.stderr) == last_line(runbot["no_token"].stderr)


def test_models_and_migrations_agree(db):
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)  # exits 1 if not
    assert "No changes detected" in out.getvalue()


def test_commands_other_than_the_bot_do_not_load_aiogram(tmp_path):
    """aiogram takes seconds to import: `export_users` and the admin must not pay for it
    (the admin's refund imports the Telegram adapter only when it runs)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "backend.settings",
        "BACKEND_SECRET_KEY": TEST_SECRET_KEY,
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
        "LOG_DIR": str(tmp_path / "logs"),
    }
    code = (
        "import sys, django; django.setup();"
        "from django.contrib import admin; admin.autodiscover();"
        "import backend.users.management.commands.export_users;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'aiogram'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
