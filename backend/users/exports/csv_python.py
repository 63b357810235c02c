"""The users CSV made in Python: the path of SQLite, and of any database or time zone
that PostgreSQL's COPY (`pg_copy`) cannot serve.

Rows go out in pieces of ROWS_PER_CHUNK as they are read, so a million users never sit
in memory at once.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, tzinfo

from django.db.models import QuerySet
from django.utils import timezone

from backend.users.exports.columns import ROWS_PER_CHUNK, csv_header, safe_text, user_rows


def _local(moment: datetime, zone: tzinfo) -> str:
    """`timezone.localtime(moment)` with the zone looked up once per export, not per
    date (that lookup goes through asgiref's Local: ~16 µs)."""
    return moment.astimezone(zone).isoformat(sep=" ", timespec="seconds")


def row_chunks(queryset: QuerySet) -> Iterator[tuple[str, int]]:
    """The rows as CSV text, ROWS_PER_CHUNK a piece, with how many each piece holds."""
    zone = timezone.get_current_timezone()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    batch = []
    for telegram_id, username, first, last, balance, blocked, created, seen in user_rows(queryset):
        batch.append(
            (
                telegram_id,
                safe_text(username),
                safe_text(first),
                safe_text(last),
                balance,
                int(blocked),
                _local(created, zone),
                _local(seen, zone),
            )
        )
        if len(batch) == ROWS_PER_CHUNK:
            writer.writerows(batch)
            yield buffer.getvalue(), len(batch)
            batch.clear()
            buffer.seek(0)
            buffer.truncate()
    if batch:
        writer.writerows(batch)
        yield buffer.getvalue(), len(batch)


def csv_chunks(*, queryset: QuerySet, bom: bool = False) -> Iterator[str]:
    """The CSV made in Python, in pieces; `bom` starts it with a BOM, so that Excel
    reads the file as UTF-8 and shows Cyrillic names right."""
    yield csv_header(bom=bom)
    for text, _count in row_chunks(queryset):
        yield text
