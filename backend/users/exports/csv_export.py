"""The users CSV as the admin and `export_users` send it: made by PostgreSQL's COPY
(`pg_copy`) or by MySQL's lines (`mysql_lines`) where the database allows, else in
Python (`csv_python`), the same bytes either way, in the dialect asked for (by default
EXPORT_CSV_DIALECT's). The header row always comes from Python
(`columns.CsvFormat.header_line`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.db.models import QuerySet

from backend.users.exports import mysql_lines, pg_copy
from backend.users.exports.columns import HEADER, TEXT_COLUMNS, CsvDialect, CsvFormat, csv_format
from backend.users.exports.csv_python import row_chunks

Dialect = CsvDialect | str | None


def _copy_plan(queryset: QuerySet, form: CsvFormat) -> tuple[str, str] | None:
    """(COPY statement, zone) when the server can make this CSV, else None."""
    zone = pg_copy.copy_zone(queryset=queryset, zone=form.zone)
    if zone is None:
        return None
    sql = pg_copy.copy_sql(queryset=queryset, columns=HEADER, texts=TEXT_COLUMNS, form=form)
    return sql, zone


def csv_made_by_copy(*, queryset: QuerySet) -> bool:
    """Whether `csv_stream` and `csv_write` have the database make this queryset's rows
    (COPY on PostgreSQL, the lines of `mysql_lines` on MySQL)."""
    if pg_copy.copy_zone(queryset=queryset) is not None:
        return True
    return mysql_lines.line_zone(queryset=queryset, columns=HEADER) is not None


def _row_chunks(
    queryset: QuerySet, form: CsvFormat, *, server: bool
) -> Iterator[tuple[bytes, int]]:
    """The rows (not COPY's) as UTF-8 pieces with how many each holds: MySQL's lines
    when `server` and the database can make them, else the Python path's."""
    zone = None
    if server:
        zone = mysql_lines.line_zone(queryset=queryset, columns=HEADER, zone=form.zone)
    if zone is not None:
        sql, params = mysql_lines.lines_sql(
            queryset=queryset, columns=HEADER, texts=TEXT_COLUMNS, form=form, zone=zone
        )
        return mysql_lines.line_chunks(queryset=queryset, sql=sql, params=params)
    return ((text.encode(), count) for text, count in row_chunks(queryset, form))


def csv_stream(
    *, queryset: QuerySet, bom: bool = False, copy: bool = True, dialect: Dialect = None
) -> Iterator[bytes]:
    """The CSV as UTF-8 byte chunks for a streamed response (made by the database when
    `copy` and the database allows)."""
    form = csv_format(model=queryset.model, dialect=dialect)
    header = form.header_line(bom=bom).encode()
    plan = _copy_plan(queryset, form) if copy else None
    if plan is None:
        rows = (data for data, _count in _row_chunks(queryset, form, server=copy))
    else:
        sql, zone = plan
        rows = pg_copy.copy_stream(queryset=queryset, sql=sql, zone=zone)
    return _chain(header, rows)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def csv_write(
    *,
    queryset: QuerySet,
    write: Callable[[bytes], object],
    bom: bool = False,
    dialect: Dialect = None,
) -> int:
    """Write the CSV as UTF-8 bytes through `write` (whole rows each call); returns the
    number of users written."""
    form = csv_format(model=queryset.model, dialect=dialect)
    write(form.header_line(bom=bom).encode())
    plan = _copy_plan(queryset, form)
    if plan is not None:
        sql, zone = plan
        return pg_copy.copy_to(queryset=queryset, sql=sql, zone=zone, write=write)
    rows = 0
    for data, count in _row_chunks(queryset, form, server=True):
        write(data)
        rows += count
    return rows
