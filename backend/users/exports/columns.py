"""What a users export holds, whatever its format: the columns and the order of the
rows, their titles, the guard against formulas, and for the CSV its two dialects.

The CSV made in Python (`csv_python`), the one PostgreSQL's COPY makes (`pg_copy`) and
the XLSX (`xlsx`) all take their columns from here; the two CSV paths also take the
dialect, the header row and the formula guard, so that their bytes stay the same.

The dialects (`EXPORT_CSV_DIALECT`, `export_users --dialect`):

- `excel-ru`, for people: what Excel and LibreOffice in a Russian locale open right by
  a double-click. `;` between fields, every field quoted (a quoted `150,00` is still a
  number to both, and LibreOffice's import, which splits at `,` `;` and tabs unless
  told otherwise, does not cut it in two), a decimal comma, dates as
  `28.11.2026 08:24:22` in the active zone, which the header names
  («Создан (Europe/Moscow)»), the admin's column titles, and «Да» / «Нет».
- `rfc4180`, for programs: `,`, quotes only where needed, `150.00`, ISO dates with their
  offset (`2026-11-28 08:24:22+03:00`), the field names as the header, 1 / 0.

Both end rows with CRLF. Money is never a float: the balance's `Decimal` is printed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal

from django.conf import settings
from django.db import connections
from django.db.models import Expression, Model, QuerySet
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext, gettext_lazy

from backend.common.money import MoneyField
from backend.users.exports.server_cursor import streamed_rows
from backend.users.models import TelegramUser

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
DATE_COLUMNS = {"created_at", "last_seen_at"}
# Spreadsheets run a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# What operators see of the guard, and why (the admin shows it under the export buttons).
FORMULA_GUARD_HELP = gettext_lazy(
    "In the CSV, a name that starts with = + - @ or a tab starts with an apostrophe, as in "
    "'+1+1: without it Excel or LibreOffice would run the name as a formula. The Excel "
    "export (XLSX) shows names as they are: its cells are text, never formulas."
)
BOM = "\ufeff"
ROWS_PER_CHUNK = 2000


@dataclass(frozen=True)
class CsvDialect:
    name: str
    delimiter: str
    decimal_point: str
    # For people: every field quoted, the admin's titles, «Да» / «Нет», dd.mm.yyyy
    # dates; else quotes where needed, field names, 1 / 0, ISO dates with the offset.
    for_people: bool


EXCEL_RU = CsvDialect("excel-ru", delimiter=";", decimal_point=",", for_people=True)
RFC4180 = CsvDialect("rfc4180", delimiter=",", decimal_point=".", for_people=False)
DIALECTS = {dialect.name: dialect for dialect in (EXCEL_RU, RFC4180)}


@dataclass(frozen=True)
class CsvFormat:
    """A dialect as one export writes it: the zone and the language are those active
    when the export began, whichever thread goes on to write it."""

    dialect: CsvDialect
    zone: tzinfo
    header: tuple[str, ...]
    yes: str
    no: str

    @property
    def quoting(self) -> int:
        return csv.QUOTE_ALL if self.dialect.for_people else csv.QUOTE_MINIMAL

    def writer(self, buffer: io.StringIO):
        return csv.writer(buffer, delimiter=self.dialect.delimiter, quoting=self.quoting)

    def header_line(self, *, bom: bool) -> str:
        """The header row; `bom` starts it with a BOM, so that Excel reads the file as
        UTF-8 and shows Cyrillic names right."""
        buffer = io.StringIO()
        self.writer(buffer).writerow(self.header)
        return (BOM if bom else "") + buffer.getvalue()

    def money(self, value: Decimal) -> Decimal | str:
        """The balance as the CSV holds it: `Decimal`'s own digits, the dialect's
        decimal point (the Decimal itself where that is `.`: csv prints it alike)."""
        if self.dialect.decimal_point == ".":
            return value
        return str(value).replace(".", self.dialect.decimal_point)

    def flag(self, value: bool) -> str:
        return self.yes if value else self.no

    def date(self, moment: datetime) -> str:
        """`moment` in the export's zone, cut to the second."""
        iso = moment.astimezone(self.zone).isoformat(sep=" ", timespec="seconds")
        if not self.dialect.for_people:
            return iso
        return f"{iso[8:10]}.{iso[5:7]}.{iso[:4]} {iso[11:19]}"


def dialect_named(name: str | None = None) -> CsvDialect:
    """The dialect called `name`, by default the one of EXPORT_CSV_DIALECT."""
    name = name or settings.EXPORT_CSV_DIALECT
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"no CSV dialect {name!r}: {' or '.join(DIALECTS)}") from None


def zone_name(zone: tzinfo) -> str:
    """The zone as the headers name it: Europe/Moscow (or UTC, UTC+03:00)."""
    return getattr(zone, "key", None) or str(zone)


def column_titles(model: type[Model], zone: tzinfo) -> tuple[str, ...]:
    """The HEADER columns' titles as the admin's users list shows them (the model's
    verbose names, in the active language, first letter capital), the dates' with the
    zone they are given in: «Создан (Europe/Moscow)»."""
    titles = []
    for name in HEADER:
        title = capfirst(str(model._meta.get_field(name).verbose_name))
        titles.append(f"{title} ({zone_name(zone)})" if name in DATE_COLUMNS else title)
    return tuple(titles)


def yes_no() -> tuple[str, str]:
    """The blocked flag's words for people, in the active language: Да, Нет."""
    return gettext("Yes"), gettext("No")


def csv_format(*, model: type[Model], dialect: CsvDialect | str | None = None) -> CsvFormat:
    """The CSV format of an export of `model`'s users that begins now."""
    if not isinstance(dialect, CsvDialect):
        dialect = dialect_named(dialect)
    zone = timezone.get_current_timezone()
    if not dialect.for_people:
        return CsvFormat(dialect, zone, HEADER, yes="1", no="0")
    yes, no = yes_no()
    return CsvFormat(dialect, zone, column_titles(model, zone), yes=yes, no=no)


def safe_text(value: str) -> str:
    """Neutralise a user-written text that a spreadsheet would take for a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def user_rows(queryset: QuerySet) -> Iterator[tuple]:
    """The users of `queryset` by pk, as tuples of the HEADER columns, read from the
    database ROWS_PER_CHUNK at a time (on MySQL through an unbuffered cursor)."""
    return streamed_rows(queryset.order_by("pk").values_list(*HEADER), chunk_size=ROWS_PER_CHUNK)


def value_kinds(
    model: type[Model], columns: tuple[str, ...], texts: set[str]
) -> list[tuple[str, str]]:
    """Each of `columns` with what the SQL paths (`pg_copy`, `mysql_lines`) make of its
    values: "text" for the `texts` (user-written, guarded as `safe_text` does), "money"
    for MoneyField's kopecks, else the field's internal type."""
    kinds = []
    for name in columns:
        field = model._meta.get_field(name)
        if name in texts:
            kinds.append((name, "text"))
        else:
            kind = "money" if isinstance(field, MoneyField) else field.get_internal_type()
            kinds.append((name, kind))
    return kinds


def export_select(queryset: QuerySet, values: dict[str, Expression]) -> tuple[str, tuple]:
    """The SELECT of `values` (alias → expression) over `queryset` (its filters, ordered
    by pk) as Django writes it for the queryset's database, with its parameters: the
    inner query of the SQL paths."""
    select = queryset.order_by("pk").annotate(**values).values_list(*values)
    if select.query.is_sliced:
        raise ValueError("an export of a sliced queryset")
    connection = connections[queryset.db]
    sql, params = select.query.get_compiler(connection=connection).as_sql()
    return sql, tuple(params)


def csv_header(*, bom: bool, dialect: CsvDialect | str | None = None) -> str:
    """The CSV's header row of a users export beginning now, as both CSV paths send it."""
    return csv_format(model=TelegramUser, dialect=dialect).header_line(bom=bom)
