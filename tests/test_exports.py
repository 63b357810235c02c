"""The users exports at the edges: PostgreSQL's COPY against the Python path byte for
byte, a client that leaves mid-export, the command on the real stdout, and the XLSX
written row by row."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zoneinfo
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from openpyxl import load_workbook

from backend.payments import services
from backend.users import exports
from backend.users.exports import pg_copy
from backend.users.models import TelegramUser
from tests.helpers import TEST_SECRET_KEY

ROOT = Path(__file__).resolve().parent.parent
LIST_URL = "/admin/users/telegramuser/"
CSV_URL = LIST_URL + "export/csv/"
XLSX_URL = LIST_URL + "export/xlsx/"

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="COPY is PostgreSQL's; SQLite exports by the Python path (the PostgreSQL run "
    "of CI covers these)",
)

# (username, first name, last name): every way a text can trouble a CSV or a spreadsheet.
TRICKY_NAMES = [
    ("=SUM(A1)", "+7 900", "-1"),
    ("@cmd", "\tTab", "\rCR"),
    ('quote"inside', 'Smith, "Jr"', "line\nbreak"),
    ("", "", ""),
    ("иван_ёж", "Иван", "Пётр 🙂"),
    ("crlf", "a\r\nb", "trailing,"),
    ("back\\slash", "\\.", '"'),
    ("space ", " lead", "\u2028sep\u00a0nbsp"),
    ("ctrl", "bell\x07", "x\x1fy"),
    ("'", "'=already", "="),
    ("\n", ",", '""'),
]
TRICKY_DATES = [
    datetime(2026, 11, 26, 10, 20, 30, 999999, tzinfo=UTC),
    datetime(2000, 1, 1, tzinfo=UTC),  # PostgreSQL's epoch, a whole second
    datetime(1999, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2011, 3, 26, 22, 59, 59, 1, tzinfo=UTC),  # Moscow's last change to summer time
    datetime(2026, 3, 8, 5, 30, tzinfo=UTC),  # St. John's changes to summer time
    datetime(1919, 7, 1, tzinfo=UTC),  # Moscow at +04:00 (and local mean times before)
    datetime(2100, 1, 1, 12, tzinfo=UTC),
]
BALANCES = ["0.01", "150.50", "99999.99", "0", "1", "12345678.90"]
ZONES = ["Europe/Moscow", "America/St_Johns", "Asia/Kolkata", "UTC"]


def make_tricky_users() -> list[TelegramUser]:
    users = []
    for i, (username, first, last) in enumerate(TRICKY_NAMES):
        user = TelegramUser.objects.create(
            telegram_id=5_000_000_000 + i,
            username=username,
            first_name=first,
            last_name=last,
            is_blocked=i % 3 == 1,
            created_at=TRICKY_DATES[i % len(TRICKY_DATES)],
            last_seen_at=TRICKY_DATES[(i + 3) % len(TRICKY_DATES)],
        )
        balance = Decimal(BALANCES[i % len(BALANCES)])
        if balance:
            services.balance_adjust(user=user, amount=balance, reason="test")
        users.append(user)
    return users


@pytest.fixture
def tricky(db) -> list[TelegramUser]:
    return make_tricky_users()


@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


def local(moment: datetime, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).isoformat(sep=" ", timespec="seconds")


def python_csv(queryset, *, bom: bool) -> bytes:
    """The Python path's bytes (what SQLite gets), for comparison."""
    return b"".join(exports.csv_stream(queryset=queryset, bom=bom, copy=False))


# --- COPY against the Python path ----------------------------------------------------


@postgresql_only
@pytest.mark.parametrize("zone", ZONES)
def test_copy_csv_is_byte_for_byte_the_python_csv(admin_client, tricky, settings, zone):
    settings.TIME_ZONE = zone
    users = TelegramUser.objects.all()
    assert exports.csv_made_by_copy(queryset=users)

    body = b"".join(admin_client.get(CSV_URL).streaming_content)

    assert body == python_csv(users, bom=True)
    lines = body.decode("utf-8").split("\r\n")
    assert lines[0] == "\ufeff" + ",".join(exports.HEADER)
    created, seen = (local(TRICKY_DATES[i], zone) for i in (0, 3))
    assert lines[1] == f"5000000000,'=SUM(A1),'+7 900,'-1,0.01,0,{created},{seen}"
    assert "5000000003,,,,0.00,0," in body.decode()  # empty texts unquoted, as csv.writer


@postgresql_only
def test_copy_csv_follows_the_lists_search_and_filters(admin_client, tricky):
    for query, queryset in [
        ({"q": "иван"}, TelegramUser.objects.filter(username__istartswith="иван")),
        ({"is_blocked__exact": "1"}, TelegramUser.objects.filter(is_blocked=True)),
        ({"balance": "positive"}, TelegramUser.objects.filter(balance__gt=0)),
    ]:
        body = b"".join(admin_client.get(CSV_URL, query).streaming_content)
        assert body == python_csv(queryset, bom=True), query
        assert body.count(b"\r\n") > 1


@postgresql_only
def test_copy_leaves_the_sessions_zone_as_it_was(admin_client, tricky):
    with connection.cursor() as cursor:
        cursor.execute("SHOW TimeZone")
        before = cursor.fetchone()[0]
        b"".join(admin_client.get(CSV_URL).streaming_content)
        cursor.execute("SHOW TimeZone")
        assert cursor.fetchone()[0] == before


@postgresql_only
def test_the_command_on_postgresql_writes_the_python_csv(tricky, tmp_path):
    out = io.StringIO()
    call_command("export_users", stdout=out)
    users = TelegramUser.objects.all()
    assert out.getvalue().encode() == python_csv(users, bom=False)

    target = tmp_path / "users.csv"
    err = io.StringIO()
    call_command("export_users", "--bom", "-o", str(target), stdout=io.StringIO(), stderr=err)
    assert target.read_bytes() == python_csv(users, bom=True)
    assert f"{len(TRICKY_NAMES)} users written" in err.getvalue()


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_the_command_writes_to_the_real_stdout(tmp_path):
    """`manage.py export_users > file` in a process of its own: the bytes of COPY go to
    the real stdout, and are those of the Python path."""
    make_tricky_users()
    database_url = urlsplit(os.environ["DATABASE_URL"])
    env = {
        **os.environ,
        "BACKEND_SECRET_KEY": TEST_SECRET_KEY,
        # the test database, whose rows this test commits
        "DATABASE_URL": database_url._replace(path="/" + connection.settings_dict["NAME"]).geturl(),
        "LOG_DIR": str(tmp_path / "logs"),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "export_users", "--bom"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == python_csv(TelegramUser.objects.all(), bom=True)
    assert result.stderr == b""


@postgresql_only
@pytest.mark.django_db(transaction=True)  # as in production: no transaction around it
def test_a_client_that_leaves_cancels_the_copy_and_the_connection_goes_on(admin_client):
    TelegramUser.objects.bulk_create(
        TelegramUser(telegram_id=i, username=f"user{i}", first_name="Иван" * 20)
        for i in range(1, 30_001)
    )  # ~4 MB of CSV: more than the worker may queue
    response = admin_client.get(CSV_URL)
    chunks = iter(response.streaming_content)
    assert next(chunks).startswith(b"\xef\xbb\xbftelegram_id")
    assert len(next(chunks)) >= pg_copy.CHUNK_BYTES
    response.close()  # what the server does when the client goes away

    assert TelegramUser.objects.count() == 30_000  # the connection still works
    body = b"".join(admin_client.get(CSV_URL, {"q": "user2999"}).streaming_content)
    assert body.count(b"\r\n") == 1 + 11  # user2999, user29990…user29999


def test_the_python_path_exports_what_sqlite_can_hold(admin_client, tricky):
    """On SQLite (and wherever COPY is not used) the same rows come from Python."""
    if connection.vendor == "sqlite":
        TelegramUser.objects.create(telegram_id=77, username="nul\x00byte")
    body = b"".join(exports.csv_stream(queryset=TelegramUser.objects.all(), bom=True))
    assert body == python_csv(TelegramUser.objects.all(), bom=True)
    text = body.decode("utf-8")
    assert '5000000002,"quote""inside","Smith, ""Jr""","line\nbreak",99999.99,0,' in text
    assert "5000000001,'@cmd,'\tTab,\"'\rCR\",150.50,1," in text


# --- XLSX --------------------------------------------------------------------------


def test_xlsx_reads_back_with_types_and_texts_as_texts(admin_client, tricky):
    response = admin_client.get(XLSX_URL)
    assert response.status_code == 200
    assert response["Content-Type"] == exports.XLSX_CONTENT_TYPE
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    assert sheet.title == "users"
    rows = list(sheet.iter_rows())
    assert [cell.value for cell in rows[0]] == list(exports.HEADER)
    assert len(rows) == 1 + len(TRICKY_NAMES)
    zone = ZoneInfo("Europe/Moscow")
    by_id = {row[0].value: row for row in rows[1:]}
    for i, (username, first, last) in enumerate(TRICKY_NAMES):
        row = by_id[5_000_000_000 + i]
        for cell, text in zip(row[1:4], (username, first, last), strict=True):
            expected = "".join(c for c in text if c >= " " or c in "\t\n\r") or None
            assert cell.value == expected, (i, text)
            if expected:
                assert cell.data_type == "s"  # shown, never run
        assert row[4].data_type == "n"
        assert Decimal(str(row[4].value)) == Decimal(BALANCES[i % len(BALANCES)])
        assert row[5].value is (i % 3 == 1)
        created = TRICKY_DATES[i % len(TRICKY_DATES)].astimezone(zone).replace(tzinfo=None)
        assert row[6].is_date and abs((row[6].value - created).total_seconds()) < 0.001
        assert row[6].number_format == "yyyy-mm-dd h:mm:ss"


def test_xlsx_comes_in_pieces_long_before_the_end(admin_client, db):
    TelegramUser.objects.bulk_create(
        TelegramUser(telegram_id=i, username=f"user{i}", first_name=f"Имя {i * 7919}")
        for i in range(1, 20_001)
    )
    chunks = iter(admin_client.get(XLSX_URL).streaming_content)
    first = next(chunks)
    assert first.startswith(b"PK\x03\x04")  # a zip, sent before the rows are all read
    rest = list(chunks)
    assert len(rest) > 5
    body = first + b"".join(rest)
    assert len(first) < len(body) / 5
    sheet = load_workbook(io.BytesIO(body), read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    assert len(rows) == 20_001
    assert rows[1][:3] == (1, "user1", "Имя 7919")
    assert rows[-1][:3] == (20_000, "user20000", f"Имя {20_000 * 7919}")


def zone_file(key: str) -> bytes:
    for folder in zoneinfo.TZPATH:
        if (path := Path(folder) / key).is_file():
            return path.read_bytes()
    return (resources.files("tzdata.zoneinfo") / key).read_bytes()


@postgresql_only
def test_a_zone_postgresql_does_not_know_falls_back_to_the_python_path(admin_client, tricky):
    """A zone the server has no data for (Python's data may be newer) still exports."""
    unknown = ZoneInfo.from_file(io.BytesIO(zone_file("Europe/Moscow")), key="Nowhere/Test")
    with timezone.override(unknown):
        assert not exports.csv_made_by_copy(queryset=TelegramUser.objects.all())
        body = b"".join(admin_client.get(CSV_URL).streaming_content)
    assert f",{local(TRICKY_DATES[3], 'Europe/Moscow')}\r\n".encode() in body


def test_the_python_path_sends_thousands_of_rows_a_chunk(db):
    """Not a socket send per line: the header, then ROWS_PER_CHUNK rows a piece."""
    TelegramUser.objects.bulk_create(
        TelegramUser(telegram_id=i, username=f"user{i}") for i in range(1, 2501)
    )
    chunks = list(exports.csv_stream(queryset=TelegramUser.objects.all(), copy=False))
    assert [chunk.count(b"\r\n") for chunk in chunks] == [1, exports.ROWS_PER_CHUNK, 500]
    assert chunks[1].startswith(b"1,user1,,,0.00,0,")
