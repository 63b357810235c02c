"""The users CSV made in Python: the path of SQLite, and of any database, time zone or
date that PostgreSQL's COPY (`pg_copy`) or MySQL's lines (`mysql_lines`) cannot serve.

Rows go out in pieces of ROWS_PER_CHUNK as they are read, so a million users never sit
in memory at once.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from django.db.models import QuerySet

from backend.users.exports.columns import (
    ROWS_PER_CHUNK,
    CsvDialect,
    CsvFormat,
    csv_format,
    safe_text,
    user_rows,
)


def row_chunks(queryset: QuerySet, form: CsvFormat) -> Iterator[tuple[str, int]]:
    """The rows as CSV text in `form`, ROWS_PER_CHUNK a piece, with how many each
    piece holds."""
    buffer = io.StringIO()
    writer = form.writer(buffer)
    money, flag, date = form.money, form.flag, form.date
    batch = []
    for telegram_id, username, first, last, balance, blocked, created, seen in user_rows(queryset):
        batch.append(
            (
                telegram_id,
                safe_text(username),
                safe_text(first),
                safe_text(last),
                money(balance),
                flag(blocked),
                date(created),
                date(seen),
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


def csv_chunks(
    *, queryset: QuerySet, bom: bool = False, dialect: CsvDialect | str | None = None
) -> Iterator[str]:
    """The CSV made in Python, in pieces, in `dialect` (by default EXPORT_CSV_DIALECT's);
    `bom` starts it with a BOM."""
    form = csv_format(model=queryset.model, dialect=dialect)
    return _chunks(queryset, form, bom)


def _chunks(queryset: QuerySet, form: CsvFormat, bom: bool) -> Iterator[str]:
    yield form.header_line(bom=bom)
    for text, _count in row_chunks(queryset, form):
        yield text
