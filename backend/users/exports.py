"""Streaming exports of the users list: CSV for Excel and XLSX.

Rows are read from the database in chunks and written out as they come, so a million
users never sit in memory at once.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import IO

from django.db.models import QuerySet
from django.utils import timezone

HEADER = (
    "telegram_id",
    "username",
    "first_name",
    "last_name",
    "balance",
    "is_blocked",
    "created_at",
    "last_seen_at",
)
# Spreadsheets run a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"


def safe_text(value: str) -> str:
    """Neutralise a user-written text that a spreadsheet would take for a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _rows(queryset: QuerySet) -> Iterator[tuple]:
    return queryset.order_by("pk").values_list(*HEADER).iterator(chunk_size=2000)


def _local(moment: datetime) -> str:
    return timezone.localtime(moment).isoformat(sep=" ", timespec="seconds")


class _Line:
    """A file-like object whose write returns what was written (for csv.writer)."""

    def write(self, text: str) -> str:
        return text


def csv_lines(queryset: QuerySet, *, bom: bool = False) -> Iterator[str]:
    """The users as CSV lines; `bom` starts them with a BOM, so that Excel reads the
    file as UTF-8 and shows Cyrillic names right."""
    writer = csv.writer(_Line())
    yield (BOM if bom else "") + writer.writerow(HEADER)
    for telegram_id, username, first, last, balance, blocked, created, seen in _rows(queryset):
        yield writer.writerow(
            (
                telegram_id,
                safe_text(username),
                safe_text(first),
                safe_text(last),
                balance,
                int(blocked),
                _local(created),
                _local(seen),
            )
        )


def xlsx_file(queryset: QuerySet) -> IO[bytes]:
    """An XLSX workbook in a temporary file, written row by row (openpyxl write-only)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("users")
    sheet.append(HEADER)
    for row in _rows(queryset):
        cells = []
        for value in row:
            if isinstance(value, datetime):
                value = timezone.localtime(value).replace(tzinfo=None)
            cell = WriteOnlyCell(sheet, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # a text cell, never a formula, whatever it starts with
            cells.append(cell)
        sheet.append(cells)
    target = tempfile.TemporaryFile()  # noqa: SIM115  (the response closes it)
    workbook.save(target)
    target.seek(0)
    return target


def chunks(file: IO[bytes], size: int = 64 * 1024) -> Iterable[bytes]:
    while data := file.read(size):
        yield data
    file.close()
