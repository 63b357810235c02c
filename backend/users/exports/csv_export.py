"""The users CSV as the admin and `export_users` send it: made by PostgreSQL's COPY
(`pg_copy`) where the database allows, else in Python (`csv_python`), the same bytes
either way. The header row always comes from Python (`columns.csv_header`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.db.models import QuerySet

from backend.users.exports import pg_copy
from backend.users.exports.columns import HEADER, TEXT_COLUMNS, csv_header
from backend.users.exports.csv_python import csv_chunks, row_chunks


def _copy_plan(queryset: QuerySet) -> tuple[str, str] | None:
    """(COPY statement, zone) when the server can make this CSV, else None."""
    zone = pg_copy.copy_zone(queryset=queryset)
    if zone is None:
        return None
    return pg_copy.copy_sql(queryset=queryset, columns=HEADER, texts=TEXT_COLUMNS), zone


def csv_made_by_copy(*, queryset: QuerySet) -> bool:
    """Whether `csv_stream` and `csv_write` use COPY for this queryset."""
    return pg_copy.copy_zone(queryset=queryset) is not None


def csv_stream(*, queryset: QuerySet, bom: bool = False, copy: bool = True) -> Iterator[bytes]:
    """The CSV as UTF-8 byte chunks for a streamed response (COPY when `copy` and the
    database allows)."""
    plan = _copy_plan(queryset) if copy else None
    if plan is None:
        return (text.encode() for text in csv_chunks(queryset=queryset, bom=bom))
    sql, zone = plan
    header = csv_header(bom=bom).encode()
    return _chain(header, pg_copy.copy_stream(queryset=queryset, sql=sql, zone=zone))


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def csv_write(*, queryset: QuerySet, write: Callable[[bytes], object], bom: bool = False) -> int:
    """Write the CSV as UTF-8 bytes through `write` (whole rows each call); returns the
    number of users written."""
    write(csv_header(bom=bom).encode())
    plan = _copy_plan(queryset)
    if plan is not None:
        sql, zone = plan
        return pg_copy.copy_to(queryset=queryset, sql=sql, zone=zone, write=write)
    rows = 0
    for text, count in row_chunks(queryset):
        write(text.encode())
        rows += count
    return rows
