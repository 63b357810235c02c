"""What a users export holds, whatever its format: the columns and the order of the
rows, and for the CSV its header row and the guard against formulas.

The CSV made in Python (`csv_python`), the one PostgreSQL's COPY makes (`pg_copy`) and
the XLSX (`xlsx`) all take their columns from here; the two CSV paths also take the
header row and the formula guard, so that their bytes stay the same.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from django.db.models import QuerySet

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
TEXT_COLUMNS = {"username", "first_name", "last_name"}
# Spreadsheets run a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"
ROWS_PER_CHUNK = 2000


def safe_text(value: str) -> str:
    """Neutralise a user-written text that a spreadsheet would take for a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def user_rows(queryset: QuerySet) -> Iterator[tuple]:
    """The users of `queryset` by pk, as tuples of the HEADER columns, read from the
    database ROWS_PER_CHUNK at a time."""
    return queryset.order_by("pk").values_list(*HEADER).iterator(chunk_size=ROWS_PER_CHUNK)


def csv_header(*, bom: bool) -> str:
    """The CSV's header row, as both CSV paths send it; `bom` starts it with a BOM."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(HEADER)
    return (BOM if bom else "") + buffer.getvalue()
