"""The users exports at the edges: PostgreSQL's COPY against the Python path byte for
byte in both CSV dialects, what each dialect holds, a client that leaves mid-export,
the command on the real stdout, and the XLSX written row by row. (LibreOffice reading
both exports back: tests/test_exports_libreoffice.py.)"""

from __future__ import annotations

import csv
import html
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
from django.contrib.admin.templatetags.admin_list import result_headers
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import QuerySet
from django.test import Client
from django.utils import timezone
from django.utils.text import capfirst
from openpyxl import load_workbook

from backend.payments import services
from backend.users import exports
from backend.users.admin import TelegramUserAdmin
from backend.users.exports import pg_copy
from backend.users.models import TelegramUser
from tests.helpers import TEST_SECRET_KEY

ROOT = Path(__file__).resolve().parent.parent
LIST_URL = "/admin/users/telegramuser/"
CSV_URL = LIST_URL + "export/csv/"
XLSX_URL = LIST_URL + "export/xlsx/"
DIALECTS = list(exports.DIALECTS)
# What the admin's users list calls the columns (the model's verbose names), in Russian.
TITLES = [
    "Telegram ID",
    "Username",
    "Имя",
    "Фамилия",
    "Баланс",
    "Заблокирован",
    "Создан (Europe/Moscow)",
    "Последняя активность (Europe/Moscow)",
]

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="COPY is PostgreSQL's (MySQL's own lines are tested below, SQLite exports by "
    "the Python path; the PostgreSQL run of CI covers these)",
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
    ("semi;colon", "a;b", ";"),
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


def iso_local(moment: datetime, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).isoformat(sep=" ", timespec="seconds")


def ru_local(moment: datetime, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).strftime("%d.%m.%Y %H:%M:%S")


def titles(zone: str = "Europe/Moscow") -> list[str]:
    return [title.replace("Europe/Moscow", zone) for title in TITLES]


def python_csv(queryset, *, bom: bool, dialect: str | None = None) -> bytes:
    """The Python path's bytes (what SQLite gets), for comparison."""
    return b"".join(exports.csv_stream(queryset=queryset, bom=bom, copy=False, dialect=dialect))


def read_csv(body: bytes, dialect: str) -> list[list[str]]:
    delimiter = exports.DIALECTS[dialect].delimiter
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""), delimiter=delimiter))


def quoted(*fields: str) -> str:
    """An excel-ru row's text: every field quoted, `;` between them."""
    return ";".join('"' + field.replace('"', '""') + '"' for field in fields)


# --- COPY against the Python path ----------------------------------------------------


def filtered_lists() -> list[tuple[dict[str, str], QuerySet]]:
    """The admin list's search and filters, each with the users it lists."""
    return [
        ({"q": "иван"}, TelegramUser.objects.filter(username__istartswith="иван")),
        ({"is_blocked__exact": "1"}, TelegramUser.objects.filter(is_blocked=True)),
        ({"balance": "positive"}, TelegramUser.objects.filter(balance__gt=0)),
    ]


@postgresql_only
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("zone", ["Europe/Moscow", "America/St_Johns", "Asia/Kolkata", "UTC"])
def test_copy_csv_is_byte_for_byte_the_python_csv(admin_client, tricky, settings, zone, dialect):
    settings.TIME_ZONE = zone
    settings.EXPORT_CSV_DIALECT = dialect
    users = TelegramUser.objects.all()
    assert exports.csv_made_by_copy(queryset=users)

    body = b"".join(admin_client.get(CSV_URL).streaming_content)

    assert body == python_csv(users, bom=True)
    assert body == python_csv(users, bom=True, dialect=dialect)
    lines = body.decode("utf-8").split("\r\n")
    if dialect == "rfc4180":
        created, seen = (iso_local(TRICKY_DATES[i], zone) for i in (0, 3))
        assert lines[0] == "\ufeff" + ",".join(exports.HEADER)
        assert lines[1] == f"5000000000,'=SUM(A1),'+7 900,'-1,0.01,0,{created},{seen}"
        assert "5000000003,,,,0.00,0," in body.decode()  # empty texts unquoted, as csv.writer
    else:
        created, seen = (ru_local(TRICKY_DATES[i], zone) for i in (0, 3))
        assert lines[0] == "\ufeff" + quoted(*titles(zone))
        assert lines[1] == quoted(
            "5000000000", "'=SUM(A1)", "'+7 900", "'-1", "0,01", "Нет", created, seen
        )
        assert quoted("5000000003", "", "", "", "0,00", "Нет") in body.decode()


@postgresql_only
def test_copy_csv_follows_the_lists_search_and_filters(admin_client, tricky):
    for query, queryset in filtered_lists():
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
@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_command_on_postgresql_writes_the_python_csv(tricky, tmp_path, dialect):
    out = io.StringIO()
    call_command("export_users", "--dialect", dialect, "--no-bom", stdout=out)
    users = TelegramUser.objects.all()
    assert out.getvalue().encode() == python_csv(users, bom=False, dialect=dialect)

    target = tmp_path / "users.csv"
    err = io.StringIO()
    call_command("export_users", "--dialect", dialect, "--bom", "-o", str(target), stderr=err)
    assert target.read_bytes() == python_csv(users, bom=True, dialect=dialect)
    assert f"{len(TRICKY_NAMES)} users written" in err.getvalue()


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_the_command_writes_to_the_real_stdout(tmp_path):
    """`manage.py export_users > file` in a process of its own: the bytes of COPY go to
    the real stdout, and are those of the Python path (excel-ru, with its BOM)."""
    make_tricky_users()
    database_url = urlsplit(os.environ["DATABASE_URL"])
    env = {
        **os.environ,
        "BACKEND_SECRET_KEY": TEST_SECRET_KEY,
        # the test database, whose rows this test commits
        "DATABASE_URL": database_url._replace(path="/" + connection.settings_dict["NAME"]).geturl(),
        "LOG_DIR": str(tmp_path / "logs"),
        "EXPORT_CSV_DIALECT": "",  # the default
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "export_users"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == python_csv(TelegramUser.objects.all(), bom=True, dialect="excel-ru")
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
    assert next(chunks).startswith(b'\xef\xbb\xbf"Telegram ID";')
    assert len(next(chunks)) >= pg_copy.CHUNK_BYTES
    response.close()  # what the server does when the client goes away

    assert TelegramUser.objects.count() == 30_000  # the connection still works
    body = b"".join(admin_client.get(CSV_URL, {"q": "user2999"}).streaming_content)
    assert body.count(b"\r\n") == 1 + 11  # user2999, user29990…user29999


# --- MySQL's lines against the Python path --------------------------------------------

mysql_only = pytest.mark.skipif(
    connection.vendor != "mysql", reason="the lines made by the server are MySQL's"
)
# MySQL's CONVERT_TZ converts TIMESTAMP's range only: the tricky dates outside it move in.
IN_RANGE = {
    datetime(1970, 1, 1, tzinfo=UTC): datetime(1970, 1, 2, 0, 0, 1, tzinfo=UTC),
    datetime(1919, 7, 1, tzinfo=UTC): datetime(2038, 1, 17, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2100, 1, 1, 12, tzinfo=UTC): datetime(1991, 3, 30, 22, 30, tzinfo=UTC),
}


@pytest.fixture
def tricky_in_range(tricky) -> list[TelegramUser]:
    for old, new in IN_RANGE.items():
        TelegramUser.objects.filter(created_at=old).update(created_at=new)
        TelegramUser.objects.filter(last_seen_at=old).update(last_seen_at=new)
    return tricky


@mysql_only
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("zone", ZONES)
def test_mysql_lines_are_byte_for_byte_the_python_csv(
    admin_client, tricky_in_range, settings, zone, dialect
):
    settings.TIME_ZONE = zone
    settings.EXPORT_CSV_DIALECT = dialect
    users = TelegramUser.objects.all()
    assert exports.csv_made_by_copy(queryset=users)  # the server makes the lines

    body = b"".join(admin_client.get(CSV_URL).streaming_content)

    assert body == python_csv(users, bom=True, dialect=dialect)
    assert body.count(b"\r\n") > len(TRICKY_NAMES)  # a line break inside a name too
    out = io.BytesIO()
    assert exports.csv_write(queryset=users, write=out.write, dialect=dialect) == len(users)
    assert out.getvalue() == python_csv(users, bom=False, dialect=dialect)


@mysql_only
def test_mysql_lines_follow_the_lists_search_and_filters(admin_client, tricky_in_range):
    for query, queryset in filtered_lists():
        assert exports.csv_made_by_copy(queryset=queryset)
        body = b"".join(admin_client.get(CSV_URL, query).streaming_content)
        assert body == python_csv(queryset, bom=True), query
        assert body.count(b"\r\n") > 1


@mysql_only
def test_a_date_mysql_would_not_convert_sends_the_python_path(admin_client, tricky):
    users = TelegramUser.objects.all()
    assert not exports.csv_made_by_copy(queryset=users)  # 1919 and 2100 are there
    body = b"".join(admin_client.get(CSV_URL).streaming_content)
    assert body == python_csv(users, bom=True)


# --- the same bytes from every database ----------------------------------------------

EXPECTED = ROOT / "tests" / "data"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_database_exports_the_same_bytes(admin_client, tricky, settings, dialect):
    """The admin's CSV of the tricky users, the same file on PostgreSQL (COPY), MySQL and
    SQLite (the Python path): tests/data/tricky-users.<dialect>.csv, written once from
    this test's output on SQLite and read by the three CI runs."""
    settings.EXPORT_CSV_DIALECT = dialect
    body = b"".join(admin_client.get(CSV_URL).streaming_content)
    assert body == (EXPECTED / f"tricky-users.{dialect}.csv").read_bytes()


# --- what each dialect holds (either path) ---------------------------------------------


def test_the_python_path_exports_what_sqlite_can_hold(admin_client, tricky):
    """On SQLite (and wherever COPY is not used) the same rows come from Python."""
    if connection.vendor == "sqlite":
        TelegramUser.objects.create(telegram_id=77, username="nul\x00byte")
    users = TelegramUser.objects.all()
    body = b"".join(exports.csv_stream(queryset=users, bom=True))
    assert body == python_csv(users, bom=True)
    text = body.decode("utf-8")
    assert quoted("5000000002", 'quote"inside', 'Smith, "Jr"', "line\nbreak", "99999,99") in text
    assert quoted("5000000001", "'@cmd", "'\tTab", "'\rCR", "150,50", "Да") in text
    assert quoted("5000000011", "semi;colon", "a;b", ";", "12345678,90", "Нет") in text

    plain = python_csv(users, bom=False, dialect="rfc4180").decode()
    assert '5000000002,"quote""inside","Smith, ""Jr""","line\nbreak",99999.99,0,' in plain
    assert "5000000001,'@cmd,'\tTab,\"'\rCR\",150.50,1," in plain
    assert "5000000011,semi;colon,a;b,;,12345678.90,0," in plain


def test_excel_ru_is_what_a_russian_spreadsheet_reads(admin_client, tricky):
    """`;` between fields, a decimal comma, dd.mm.yyyy dates in the zone the header
    names, the admin's titles, Да / Нет, every field quoted, CRLF, a BOM."""
    body = b"".join(admin_client.get(CSV_URL).streaming_content)
    assert body.startswith(b'\xef\xbb\xbf"Telegram ID";"Username";"')
    header, *rows = read_csv(body, "excel-ru")
    assert header == TITLES
    assert len(rows) == len(TRICKY_NAMES)
    for i, row in enumerate(sorted(rows, key=lambda row: int(row[0]))):
        assert len(row) == len(TITLES)
        assert row[0] == str(5_000_000_000 + i)
        assert row[1:4] == [exports_text(text) for text in TRICKY_NAMES[i]]
        assert row[4] == f"{Decimal(BALANCES[i % len(BALANCES)]):.2f}".replace(".", ",")
        assert row[5] == ("Да" if i % 3 == 1 else "Нет")
        assert row[6] == ru_local(TRICKY_DATES[i % len(TRICKY_DATES)], "Europe/Moscow")
        assert row[7] == ru_local(TRICKY_DATES[(i + 3) % len(TRICKY_DATES)], "Europe/Moscow")
    # every field quoted: the row ends and the separators are all outside `"…"`
    assert body.count(b'"\r\n"') == len(TRICKY_NAMES)
    assert body.endswith(b'"\r\n')


def exports_text(text: str) -> str:
    """A name as the CSV holds it: with the formula guard's `'`."""
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


def test_the_dates_name_their_zone(admin_client, tricky, settings):
    settings.TIME_ZONE = "Asia/Kolkata"
    header, *rows = read_csv(b"".join(admin_client.get(CSV_URL).streaming_content), "excel-ru")
    assert header[6:] == ["Создан (Asia/Kolkata)", "Последняя активность (Asia/Kolkata)"]
    first = next(row for row in rows if row[0] == "5000000000")
    assert first[6] == ru_local(TRICKY_DATES[0], "Asia/Kolkata") == "26.11.2026 15:50:30"
    sheet = load_workbook(io.BytesIO(b"".join(admin_client.get(XLSX_URL).streaming_content)))
    assert [cell.value for cell in sheet.active[1]][6:] == header[6:]


def test_the_titles_are_the_admin_lists(admin_client, tricky):
    """The exports' titles are those of the users list's columns (less the zone)."""
    assert list(exports.column_titles(TelegramUser, ZoneInfo("Europe/Moscow"))) == TITLES
    response = admin_client.get(LIST_URL)
    cl = response.context["cl"]
    shown = {
        name: capfirst(str(header["text"]))  # the list's template capitalises them too
        for name, header in zip(cl.list_display, result_headers(cl), strict=True)
    }
    compared = [name for name in exports.HEADER if name in shown]
    assert {"telegram_id", "username", "is_blocked"} <= set(compared)
    for name in compared:
        assert TITLES[exports.HEADER.index(name)].split(" (")[0] == shown[name], name


def test_rfc4180_is_the_plain_csv_for_programs(admin_client, tricky, settings):
    settings.EXPORT_CSV_DIALECT = "rfc4180"
    body = b"".join(admin_client.get(CSV_URL).streaming_content)
    header, *rows = read_csv(body, "rfc4180")
    assert header == list(exports.HEADER)
    first = next(row for row in rows if row[0] == "5000000001")
    created = iso_local(TRICKY_DATES[1], "Europe/Moscow")
    assert first[4:7] == ["150.50", "1", created]
    assert created == "2000-01-01 03:00:00+03:00"


def test_balances_are_the_decimals_digits_never_a_floats(admin_client, db):
    """The largest balance there can be, and kopecks a float would get wrong."""
    for telegram_id, balance in [(1, "999999999999.99"), (2, "0.10"), (3, "70368744177.67")]:
        TelegramUser.objects.create(telegram_id=telegram_id)
        TelegramUser.objects.filter(telegram_id=telegram_id).update(balance=Decimal(balance))
    rows = read_csv(b"".join(admin_client.get(CSV_URL).streaming_content), "excel-ru")[1:]
    assert [row[4] for row in rows] == ["999999999999,99", "0,10", "70368744177,67"]
    users = TelegramUser.objects.all()
    plain = read_csv(python_csv(users, bom=False, dialect="rfc4180"), "rfc4180")[1:]
    assert [row[4] for row in plain] == ["999999999999.99", "0.10", "70368744177.67"]
    sheet = load_workbook(io.BytesIO(b"".join(admin_client.get(XLSX_URL).streaming_content)))
    cells = [row[4] for row in sheet.active.iter_rows(min_row=2)]
    assert [cell.number_format for cell in cells] == ["0.00"] * 3
    assert Decimal(str(cells[0].value)) == Decimal("999999999999.99")


def test_the_admin_says_what_the_formula_guard_shows_and_why(admin_client):
    page = html.unescape(admin_client.get(LIST_URL).content.decode())
    help_text = str(TelegramUserAdmin.export_help_text)
    assert f'<p class="help export-help">{help_text}</p>' in page
    assert "'+1+1" in help_text and "формул" in help_text  # what, and why (in Russian)


# --- the setting and the command -------------------------------------------------------


def settings_in_a_process(dialect: str) -> subprocess.CompletedProcess:
    code = "import backend.settings as s; print(s.EXPORT_CSV_DIALECT)"
    env = {**os.environ, "EXPORT_CSV_DIALECT": dialect}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_export_csv_dialect_takes_the_dialects_names_and_refuses_others():
    for name in DIALECTS:
        result = settings_in_a_process(name.upper())
        assert (result.returncode, result.stdout) == (0, name + "\n"), result.stderr
    result = settings_in_a_process("excel")
    assert result.returncode != 0
    assert "ImproperlyConfigured: EXPORT_CSV_DIALECT: excel-ru" in result.stderr
    assert "rfc4180" in result.stderr and "got 'excel'" in result.stderr


def test_the_command_takes_the_dialect_and_the_bom(tricky, settings):
    def run(*args: str) -> str:
        out = io.StringIO()
        call_command("export_users", *args, stdout=out)
        return out.getvalue()

    assert run().startswith('\ufeff"Telegram ID";"Username";')  # the setting's: excel-ru
    assert run("--no-bom").startswith('"Telegram ID";')
    assert run("--dialect", "rfc4180").startswith("telegram_id,username,")
    assert run("--dialect", "rfc4180", "--bom").startswith("\ufefftelegram_id,")
    settings.EXPORT_CSV_DIALECT = "rfc4180"
    assert run().startswith("telegram_id,username,")
    assert run("--dialect", "excel-ru").startswith('\ufeff"Telegram ID";')
    with pytest.raises(CommandError, match="invalid choice: 'excel'"):
        run("--dialect", "excel")


# --- XLSX --------------------------------------------------------------------------


def test_xlsx_reads_back_with_types_and_texts_as_texts(admin_client, tricky):
    response = admin_client.get(XLSX_URL)
    assert response.status_code == 200
    assert response["Content-Type"] == exports.XLSX_CONTENT_TYPE
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    assert sheet.title == "users"
    rows = list(sheet.iter_rows())
    assert [cell.value for cell in rows[0]] == TITLES
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
        assert row[4].data_type == "n" and row[4].number_format == "0.00"
        assert Decimal(str(row[4].value)) == Decimal(BALANCES[i % len(BALANCES)])
        assert row[5].value == ("Да" if i % 3 == 1 else "Нет")  # as the CSV says it
        created = TRICKY_DATES[i % len(TRICKY_DATES)].astimezone(zone)
        # cut to the second, as in the CSV (a rounding would show 13:20:30.9999 as :31)
        assert row[6].is_date and row[6].value == created.replace(tzinfo=None, microsecond=0)
        assert row[6].number_format == row[7].number_format == "dd.mm.yyyy hh:mm:ss"


def test_xlsx_header_is_bold_frozen_and_the_columns_fit(admin_client, db):
    sheet = load_workbook(io.BytesIO(b"".join(admin_client.get(XLSX_URL).streaming_content)))
    sheet = sheet.active
    assert sheet.freeze_panes == "A2"  # the header stays in view
    header = sheet[1]
    assert all(cell.font.b for cell in header)
    assert all(cell.alignment.wrap_text for cell in header)  # long titles wrap
    widths = {letter: sheet.column_dimensions[letter].width for letter in "ABCDEFGH"}
    # `28.11.2026 08:24:22` is 19 characters, the largest balance `999999999999,99` 15
    assert widths["G"] >= 21 and widths["H"] >= 21
    assert widths["E"] >= 17 and widths["A"] >= 15
    # each word of a bold title fits its column («Заблокирован», «(Europe/Moscow)»)
    for cell in header:
        longest = max(len(word) for word in cell.value.split())
        assert widths[cell.column_letter] >= longest * 1.1 + 1, cell.value


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
    assert f';"{ru_local(TRICKY_DATES[3], "Europe/Moscow")}"\r\n'.encode() in body
    assert b"(Nowhere/Test)" in body.split(b"\r\n")[0]


def test_the_python_path_sends_thousands_of_rows_a_chunk(db):
    """Not a socket send per line: the header, then ROWS_PER_CHUNK rows a piece."""
    TelegramUser.objects.bulk_create(
        TelegramUser(telegram_id=i, username=f"user{i}") for i in range(1, 2501)
    )
    chunks = list(exports.csv_stream(queryset=TelegramUser.objects.all(), copy=False))
    assert [chunk.count(b"\r\n") for chunk in chunks] == [1, exports.ROWS_PER_CHUNK, 500]
    assert chunks[1].startswith('"1";"user1";"";"";"0,00";"Нет";'.encode())
