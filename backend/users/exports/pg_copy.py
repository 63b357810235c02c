"""The users CSV made by PostgreSQL's `COPY (SELECT …) TO STDOUT WITH (FORMAT csv)`.

Formatting a million rows in Python costs ~30× what psql's `\\copy` does; the server
formats them in C instead. Everything the Python path (`csv_python.csv_chunks`) does
per value is done in SQL, so that the bytes are the same in either dialect
(`columns.CsvFormat`):

- user-written texts get the `'` of `columns.safe_text`; in `rfc4180` empty ones become
  NULL (COPY quotes an empty string, csv.writer does not), in `excel-ru` every value is
  quoted (`FORCE_QUOTE *`, csv.writer's QUOTE_ALL) and an empty one is `""` in both;
- balances (kopecks) are divided by 100 as `numeric`, printed with two places, the
  decimal point replaced by the dialect's;
- the blocked flag is the dialect's word for it; dates are cut to seconds in the
  export's time zone, set for the COPY alone (`SET LOCAL` inside a transaction or
  savepoint that is rolled back), with isoformat's `+03:00` for PostgreSQL's `+03`
  (`rfc4180`) or rearranged as `28.11.2026 08:24:22` (`excel-ru`);
- COPY ends rows with `\\n`, csv.writer with `\\r\\n`: `_CrlfSink` turns the row ends (the
  `\\n`s outside quotes) into `\\r\\n`.
"""

from __future__ import annotations

import csv
import functools
import queue
import threading
from collections.abc import Callable, Iterator
from datetime import tzinfo
from zoneinfo import ZoneInfo

from django.db import DatabaseError, connections, transaction
from django.db.models import CharField, F, Func, QuerySet
from django.utils import timezone
from psycopg2.extensions import TRANSACTION_STATUS_IDLE as IDLE

from backend.users.exports.columns import FORMULA_STARTS, CsvFormat, export_select, value_kinds

# Rows are sent on in pieces of about this size (a socket send, a file write each).
CHUNK_BYTES = 256 * 1024
# Pieces waiting for a slow client: the server's memory for one export stays bounded.
QUEUED_CHUNKS = 4
_END = object()
# Every formula start (columns.FORMULA_STARTS) sorts below this, byte by byte.
_ABOVE_FORMULA_STARTS = "A"


class _SecondsText(Func):
    """A date as text in the session's zone, cut (not rounded) to the second:
    `2026-11-26 10:20:30+03` (DateStyle ISO). date_bin cuts in UTC, without the two
    zone conversions of date_trunc (a third of the dates' cost); from year 1 on, as
    Python's dates, it floors."""

    template = "date_bin('1 second', %(expressions)s, '0001-01-01 00:00:00+00')::text"
    output_field = CharField()


def copy_zone(*, queryset: QuerySet, zone: tzinfo | None = None) -> str | None:
    """The name of `zone` (by default the active one) for COPY to format dates in, or
    None when COPY cannot be used here (not PostgreSQL, or a zone that PostgreSQL does
    not know by name)."""
    if connections[queryset.db].vendor != "postgresql":
        return None
    if zone is None:
        zone = timezone.get_current_timezone()
    if not isinstance(zone, ZoneInfo) or not _server_knows(queryset.db, zone.key):
        return None
    return zone.key


@functools.cache
def _server_knows(alias: str, zone: str) -> bool:
    """Whether PostgreSQL's zone data has `zone` (its own copy of the IANA data may be
    older than Python's), asked once a process. (pg_timezone_names would read every
    zone file: ~50 ms, a twentieth of a million-row COPY.)"""
    try:
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            cursor.execute("SELECT now() AT TIME ZONE %s", [zone])
    except DatabaseError:
        return False
    return True


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _csv_value(alias: str, kind: str, form: CsvFormat) -> str:
    """The SQL that turns the inner query's `alias` into the CSV's value in `form`."""
    if kind == "text":  # columns.safe_text
        formula_codes = ", ".join(str(ord(start)) for start in FORMULA_STARTS)
        # '' as NULL where COPY would quote it and csv.writer would not
        rest = alias if form.quoting == csv.QUOTE_ALL else f"NULLIF({alias}, '')"
        # Most texts start with a letter: one byte comparison settles them.
        return (
            f"CASE WHEN {alias} COLLATE \"C\" >= '{_ABOVE_FORMULA_STARTS}' THEN {alias} "
            f"WHEN ascii({alias}) IN ({formula_codes}) THEN '''' || {alias} "
            f"ELSE {rest} END"
        )
    if kind == "money":  # CsvFormat.money: MoneyField's kopecks as Decimal's str
        number = f"({alias} / 100.0)::numeric(20, 2)"
        point = form.dialect.decimal_point
        return number if point == "." else f"replace({number}::text, '.', {_literal(point)})"
    if kind == "BooleanField":  # CsvFormat.flag
        return f"CASE WHEN {alias} THEN {_literal(form.yes)} ELSE {_literal(form.no)} END"
    if kind == "DateTimeField":  # CsvFormat.date, from `2026-11-28 08:24:22+03`
        if form.dialect.for_people:  # 28.11.2026 08:24:22
            return (
                f"substr({alias}, 9, 2) || '.' || substr({alias}, 6, 2) || '.' || "
                f"left({alias}, 4) || ' ' || substr({alias}, 12, 8)"
            )
        # isoformat's offset is ±HH:MM (and :SS if any)
        return f"CASE WHEN length({alias}) = 22 THEN {alias} || ':00' ELSE {alias} END"
    return alias


def copy_sql(
    *, queryset: QuerySet, columns: tuple[str, ...], texts: set[str], form: CsvFormat
) -> str:
    """The COPY statement for `columns` of `queryset` (its filters, ordered by pk) in
    `form`, the `texts` columns escaped like `safe_text` of `exports.columns`.

    The dates are cut to seconds in an inner query that is not flattened (OFFSET 0), so
    that the outer one looks at each text more than once without computing it again
    (`to_char` would do it in one go, at twice the cost).
    """
    if max(FORMULA_STARTS) >= _ABOVE_FORMULA_STARTS:
        raise ValueError("a formula start sorts above the shortcut of _csv_value")
    inner = {"csv_pk": F("pk")}
    outer = []
    for name, kind in value_kinds(queryset.model, columns, texts):
        inner[f"csv_{name}"] = _SecondsText(F(name)) if kind == "DateTimeField" else F(name)
        outer.append(_csv_value(f'"csv_{name}"', kind, form))
    sql, params = export_select(queryset, inner)
    connection = connections[queryset.db]
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        inner_sql = cursor.mogrify(sql, params).decode()
    options = ["FORMAT csv", f"DELIMITER {_literal(form.dialect.delimiter)}"]
    if form.quoting == csv.QUOTE_ALL:
        options.append("FORCE_QUOTE *")
    return (
        f"COPY (SELECT {', '.join(outer)} FROM ({inner_sql} OFFSET 0) AS users "
        f'ORDER BY "csv_pk") TO STDOUT WITH ({", ".join(options)})'
    )


class _CrlfSink:
    """What COPY writes (one row a call), with `\\r\\n` row ends, in pieces of about
    CHUNK_BYTES for `emit`. A `\\n` ends a row when an even number of quotes came before
    it: inside a quoted value quotes come in pairs."""

    def __init__(self, emit: Callable[[bytes], object]) -> None:
        self.emit = emit
        self.rows = 0
        self._parts: list[bytes] = []
        self._size = 0
        self._quoted = False

    def write(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)
        self.rows += 1
        if self._size >= CHUNK_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            data = b"".join(self._parts)
            self._parts, self._size = [], 0
            self.emit(self._crlf(data))

    def _crlf(self, data: bytes) -> bytes:
        if not self._quoted and b'"' not in data:
            return data.replace(b"\n", b"\r\n")
        pieces = data.split(b'"')
        for i in range(1 if self._quoted else 0, len(pieces), 2):
            pieces[i] = pieces[i].replace(b"\n", b"\r\n")
        if len(pieces) % 2 == 0:  # an odd number of quotes: the state flips
            self._quoted = not self._quoted
        return b'"'.join(pieces)


def _copy(raw, *, sql: str, zone: str, sink: _CrlfSink) -> None:
    """Run the COPY on the psycopg2 connection `raw` with the session's zone set to
    `zone` for it alone: inside a transaction (or a savepoint of the caller's) that is
    rolled back afterwards (COPY TO changes nothing)."""
    own_transaction = raw.autocommit
    with raw.cursor() as cursor:
        cursor.execute("BEGIN" if own_transaction else "SAVEPOINT users_csv_copy")
        try:
            cursor.execute(
                "SELECT set_config('TimeZone', %s, true), set_config('DateStyle', 'ISO', true)",
                [zone],
            )
            cursor.copy_expert(sql, sink)
            sink.flush()
        finally:
            cursor.execute(
                "ROLLBACK" if own_transaction else "ROLLBACK TO SAVEPOINT users_csv_copy"
            )
            if not own_transaction:
                cursor.execute("RELEASE SAVEPOINT users_csv_copy")


def copy_to(*, queryset: QuerySet, sql: str, zone: str, write: Callable[[bytes], object]) -> int:
    """COPY straight into `write` in this thread (the command); returns the rows."""
    connection = connections[queryset.db]
    connection.ensure_connection()
    sink = _CrlfSink(write)
    _copy(connection.connection, sql=sql, zone=zone, sink=sink)
    return sink.rows


def copy_stream(*, queryset: QuerySet, sql: str, zone: str) -> Iterator[bytes]:
    """COPY as an iterator of byte chunks for a streamed response.

    psycopg2's COPY pushes rows into a file object and blocks; a worker thread runs it on
    this request's connection (psycopg2 connections may be used from any thread, this
    one idles meanwhile) and hands chunks over a bounded queue, so a slow client holds
    the COPY up instead of filling memory. A client that goes away cancels the COPY.
    """
    connection = connections[queryset.db]
    connection.ensure_connection()
    raw = connection.connection
    chunks: queue.Queue = queue.Queue(maxsize=QUEUED_CHUNKS)
    stopped = threading.Event()
    failures: list[BaseException] = []

    def emit(data: bytes) -> None:
        if not stopped.is_set():
            chunks.put(data)

    def work() -> None:
        try:
            _copy(raw, sql=sql, zone=zone, sink=_CrlfSink(emit))
        except BaseException as e:  # handed to the response's thread
            failures.append(e)
        finally:
            chunks.put(_END)

    worker = threading.Thread(target=work, name="users-csv-copy", daemon=True)
    worker.start()
    ended = False
    try:
        while (chunk := chunks.get()) is not _END:
            yield chunk
        ended = True
        if failures:
            raise failures[0]
    finally:
        if not ended:  # the client went away: stop the COPY, let the worker end
            stopped.set()
            raw.cancel()
            while chunks.get() is not _END:
                pass
        worker.join()
        if stopped.is_set() and raw.autocommit and raw.get_transaction_status() != IDLE:
            connection.close()  # the cancel hit the rollback: never reuse a half-open one
