"""The users CSV made by MySQL or MariaDB: one SELECT whose every row is the CSV's line.

MySQL has no COPY, and the Python path reads a million users at ~30 µs a row (the
driver's and the ORM's conversions, then the formatting); `mysql --batch` takes a few
µs. As `pg_copy` does on PostgreSQL, everything the Python path (`csv_python`) does per
value is done in SQL, so that the bytes are the same in either dialect
(`columns.CsvFormat`), and Python only joins the lines:

- the line is built of binary strings (UTF-8 bytes): no collation can make a
  full-width `＝` equal `=` (the searched columns have a case-insensitive one), and a
  byte below 0x80 in UTF-8 is always that character;
- user-written texts get the `'` of `columns.safe_text`; then they are quoted as
  csv.writer quotes them: always in `excel-ru`, in `rfc4180` when they hold the
  delimiter, a quote, CR or LF;
- balances (kopecks) are divided by 100 as a two-place DECIMAL, the decimal point
  replaced by the dialect's; the blocked flag is the dialect's word for it;
- dates (kept in UTC by Django) are moved into the export's zone by CONVERT_TZ, cut to
  seconds by DATE_FORMAT, with isoformat's offset `+03:00` (`rfc4180`) or as
  `28.11.2026 08:24:22` (`excel-ru`);
- each line comes as bytes (no decoding and encoding again) through an unbuffered
  cursor, ROWS_PER_CHUNK lines a piece, joined with `\\r\\n`.

CONVERT_TZ leaves a date outside TIMESTAMP's range (1970–2038) unconverted: where the
table holds such a date, or the server does not know the zone, the Python path is used.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django.db import DatabaseError, connections
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from backend.users.exports.columns import (
    FORMULA_STARTS,
    ROWS_PER_CHUNK,
    CsvFormat,
    export_select,
    value_kinds,
)
from backend.users.exports.server_cursor import unbuffered_cursor

# Dates CONVERT_TZ converts (TIMESTAMP's range, a day inside each end).
CONVERTIBLE = (datetime(1970, 1, 2, tzinfo=UTC), datetime(2038, 1, 18, tzinfo=UTC))
QUOTE = '"'


def line_zone(*, queryset: QuerySet, columns: tuple[str, ...], zone=None) -> str | None:
    """The name of `zone` (by default the active one) for the server to write the dates
    of `columns` in, or None when it cannot make this CSV (not MySQL, a zone it does not
    know, a date it would not convert)."""
    if connections[queryset.db].vendor != "mysql":
        return None
    if zone is None:
        zone = timezone.get_current_timezone()
    if not isinstance(zone, ZoneInfo) or not _server_knows(queryset.db, zone.key):
        return None
    if _unconvertible_dates(queryset, columns):
        return None
    return zone.key


@functools.cache
def _server_knows(alias: str, zone: str) -> bool:
    """Whether the server's time zone tables have `zone`, asked once a process."""
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT CONVERT_TZ('2000-01-01 00:00:00', '+00:00', %s)", [zone])
            return cursor.fetchone()[0] is not None
    except DatabaseError:
        return False


def _unconvertible_dates(queryset: QuerySet, columns: tuple[str, ...]) -> bool:
    """Whether any row of the table (not only of `queryset`: a query on the indexes of
    the dates instead of on the export's filters) has a date of `columns` outside
    CONVERTIBLE."""
    fields = queryset.model._meta
    table = queryset.model._base_manager.using(queryset.db)
    low, high = CONVERTIBLE
    for name in columns:
        if fields.get_field(name).get_internal_type() != "DateTimeField":
            continue
        outside = Q(**{f"{name}__lt": low}) | Q(**{f"{name}__gt": high})
        if table.filter(outside).exists():
            return True
    return False


def _literal(text: str) -> str:
    """`text`'s UTF-8 bytes as a binary string literal: hex, so that neither quotes,
    backslashes nor the driver's `%` placeholders need escaping."""
    return f"X'{text.encode().hex()}'"


def _quoted(sql: str) -> str:
    """csv.writer's quoting of a value: in quotes, its quotes doubled."""
    q = _literal(QUOTE)
    return f"CONCAT({q}, REPLACE({sql}, {q}, {_literal(QUOTE * 2)}), {q})"


def _constant(text: str, form: CsvFormat) -> str:
    """A field the same on every row (the blocked flag's words) as the CSV holds it."""
    specials = (form.dialect.delimiter, QUOTE, "\r", "\n")
    if form.dialect.for_people or any(c in text for c in specials):
        text = QUOTE + text.replace(QUOTE, QUOTE * 2) + QUOTE
    return _literal(text)


def _field(column: str, kind: str, form: CsvFormat, zone: str) -> str:
    """The SQL that turns `column` of the inner query into the CSV's field in `form`."""
    quote_all = form.dialect.for_people
    if kind == "text":  # columns.safe_text, then csv.writer's quoting
        text = f"CAST({column} AS BINARY)"
        codes = ", ".join(str(ord(start)) for start in FORMULA_STARTS)
        safe = f"IF(ORD({text}) IN ({codes}), CONCAT({_literal(chr(39))}, {text}), {text})"
        if quote_all:
            return _quoted(safe)
        specials = (form.dialect.delimiter, QUOTE, "\r", "\n")
        needs_quotes = " OR ".join(f"LOCATE({_literal(c)}, {text}) > 0" for c in specials)
        return f"IF({needs_quotes}, {_quoted(safe)}, {safe})"
    if kind == "money":  # CsvFormat.money: MoneyField's kopecks as Decimal's str
        value = f"CAST({column} / 100 AS DECIMAL(20, 2))"
        point = form.dialect.decimal_point
        if point != ".":
            value = f"REPLACE({value}, '.', {_literal(point)})"
    elif kind == "BooleanField":  # CsvFormat.flag
        return f"IF({column}, {_constant(form.yes, form)}, {_constant(form.no, form)})"
    elif kind == "DateTimeField":  # CsvFormat.date
        local = f"CONVERT_TZ({column}, '+00:00', {_literal(zone)})"
        if form.dialect.for_people:  # 28.11.2026 08:24:22
            value = f"DATE_FORMAT({local}, {_literal('%d.%m.%Y %H:%i:%s')})"
        else:  # isoformat's offset is ±HH:MM (and :SS if any)
            offset = f"TIMESTAMPDIFF(SECOND, {column}, {local})"  # each use converts again
            hh_mm_ss = f"TIME_FORMAT(SEC_TO_TIME(ABS({offset})), {_literal('%H:%i:%s')})"
            value = (
                f"CONCAT(DATE_FORMAT({local}, {_literal('%Y-%m-%d %H:%i:%s')}), "
                f"IF({offset} < 0, '-', '+'), LEFT({hh_mm_ss}, IF(MOD({offset}, 60), 8, 5)))"
            )
    else:  # whole numbers
        value = column
    if not quote_all:
        return value
    q = _literal(QUOTE)  # numbers and dates: no quotes inside to double
    return f"CONCAT({q}, {value}, {q})"


def lines_sql(
    *, queryset: QuerySet, columns: tuple[str, ...], texts: set[str], form: CsvFormat, zone: str
) -> tuple[str, tuple]:
    """The SELECT of the CSV's lines for `columns` of `queryset` (its filters, ordered
    by pk) in `form`, the `texts` columns escaped like `safe_text` of `exports.columns`;
    with its parameters (the filters')."""
    inner = {"csv_pk": F("pk")}
    outer = []
    for name, kind in value_kinds(queryset.model, columns, texts):
        inner[f"csv_{name}"] = F(name)
        outer.append(_field(f"users.csv_{name}", kind, form, zone))
    sql, params = export_select(queryset, inner)
    line = f", {_literal(form.dialect.delimiter)}, ".join(outer)
    return (
        f"SELECT CAST(CONCAT({line}) AS BINARY) FROM ({sql}) AS users ORDER BY users.csv_pk",
        params,
    )


def line_chunks(*, queryset: QuerySet, sql: str, params: tuple) -> Iterator[tuple[bytes, int]]:
    """The lines of `lines_sql`, ROWS_PER_CHUNK a piece ended by `\\r\\n`, with how many
    each piece holds; read as they come, never all held at once."""
    with unbuffered_cursor(queryset.db) as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(ROWS_PER_CHUNK):
            yield b"\r\n".join([row[0] for row in rows]) + b"\r\n", len(rows)
