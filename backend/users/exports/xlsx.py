"""The users as a one-sheet XLSX (`xlsx_stream`), written row by row into a stream by
a writer of our own (`xlsx_chunks`, which knows nothing of users).

openpyxl (even write-only) writes the whole workbook to a file before the first byte
can be sent, at ~0.3 ms a row. An XLSX is a zip of a few XML parts; zipfile writes a
zip to a non-seekable stream (sizes go into data descriptors), so the sheet's XML is
deflated and sent as the rows come, with memory bounded by one batch of rows.

Cells: str → inline string (text, never a formula, whatever it starts with), bool →
boolean, int/float → number, Decimal → number shown with two decimals (`0.00`: money),
naive datetime → a date-time number shown as `dd.mm.yyyy hh:mm:ss`, None → empty. The
header row is bold, wraps its titles and stays in view (a frozen pane); the columns
get the widths asked for. All of it is plain XML written before the first row: the
styles part, the sheet view and `<cols>`.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet
from django.utils import timezone

from backend.users.exports.columns import HEADER, column_titles, user_rows, yes_no

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ROWS_PER_BATCH = 1000
_EXCEL_EPOCH = datetime(1899, 12, 30)
_SECONDS_PER_DAY = 86400
_LINE_POINTS = 15  # the height of a line of the default font (Calibri 11), in points
# What XML 1.0 cannot hold is dropped; & < > are escaped, CR kept as a reference.
_XML_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_XML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}

_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_SPREADSHEETML = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{_SPREADSHEETML}.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    f'ContentType="{_SPREADSHEETML}.worksheet+xml"/>'
    f'<Override PartName="/xl/styles.xml" ContentType="{_SPREADSHEETML}.styles+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    f'<Relationships xmlns="{_PKG_REL_NS}">'
    f'<Relationship Id="rId1" Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    f'<Relationships xmlns="{_PKG_REL_NS}">'
    f'<Relationship Id="rId1" Type="{_REL_NS}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_REL_NS}/styles" Target="styles.xml"/>'
    "</Relationships>"
)
# Styles (cellXfs): 0 the default; 1 date and time; 2 money (the built-in `0.00`);
# 3 the header row's titles: bold, wrapped.
_DATE_FORMAT = "dd.mm.yyyy hh:mm:ss"
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    f'<styleSheet xmlns="{_NS}">'
    f'<numFmts count="1"><numFmt numFmtId="164" formatCode="{_DATE_FORMAT}"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="2" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1" '
    'applyAlignment="1"><alignment vertical="top" wrapText="1"/></xf>'
    "</cellXfs>"
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
# The first row frozen: it stays in view while the rows scroll under it.
_FROZEN_HEADER = (
    '<sheetViews><sheetView workbookViewId="0">'
    '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
    '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
    "</sheetView></sheetViews>"
)


def _workbook(sheet_name: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<workbook xmlns="{_NS}" xmlns:r="{_REL_NS}"><sheets>'
        f'<sheet name="{_text(sheet_name)}" sheetId="1" r:id="rId1"/>'
        "</sheets></workbook>"
    )


def _text(value: str) -> str:
    if _XML_SPECIAL.search(value) is None:
        return value
    return _XML_SPECIAL.sub(lambda m: _XML_ESCAPES.get(m[0], ""), value)


def _empty(value: object) -> str:
    return "<c/>"


def _text_cell(value: str) -> str:
    if not value:
        return "<c/>"
    return f'<c t="inlineStr"><is><t xml:space="preserve">{_text(value)}</t></is></c>'


def _bool_cell(value: bool) -> str:
    return f'<c t="b"><v>{int(value)}</v></c>'


def _number_cell(value: int | float) -> str:
    return f"<c><v>{value}</v></c>"


def _money_cell(value: Decimal) -> str:
    return f'<c s="2"><v>{value}</v></c>'


def _date_cell(value: datetime) -> str:
    if value.tzinfo is not None:
        raise ValueError("XLSX has no time zones: pass local naive date-times")
    days = (value - _EXCEL_EPOCH).total_seconds() / _SECONDS_PER_DAY
    return f'<c s="1"><v>{days!r}</v></c>'


# By exact type: one look-up a cell instead of a chain of isinstance (the hot spot).
_CELLS = {
    type(None): _empty,
    str: _text_cell,
    bool: _bool_cell,
    int: _number_cell,
    float: _number_cell,
    Decimal: _money_cell,
    datetime: _date_cell,
}


def _cell(value: object) -> str:
    cell = _CELLS.get(type(value))
    if cell is not None:
        return cell(value)
    for kind, cell in _CELLS.items():  # subclasses (bool, an int, is matched above)
        if isinstance(value, kind):
            return cell(value)
    raise TypeError(f"no XLSX cell for {type(value).__name__}")


class _Spool:
    """A write-only, non-seekable file: what zipfile writes, until it is taken."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _header_cell(title: str) -> str:
    return f'<c t="inlineStr" s="3"><is><t xml:space="preserve">{_text(title)}</t></is></c>'


def _height(lines: int) -> str:
    if lines <= 1:
        return ""
    return f' ht="{_LINE_POINTS * lines:g}" customHeight="1"'


def _columns(widths: Sequence[float]) -> str:
    if not widths:
        return ""
    cols = "".join(
        f'<col min="{i}" max="{i}" width="{width:g}" customWidth="1"/>'
        for i, width in enumerate(widths, start=1)
    )
    return f"<cols>{cols}</cols>"


def xlsx_chunks(
    *,
    sheet_name: str,
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    widths: Sequence[float] = (),
    header_lines: int = 1,
) -> Iterator[bytes]:
    """The workbook's bytes, a piece at a time, as `rows` are read; `header` is the
    first row (bold, frozen, `header_lines` lines high: neither Excel nor LibreOffice
    fits a row to its wrapped text on opening), `widths` the columns' widths in
    characters.

    Level-1 deflate: the XML is repetitive and shrinks ~8× even so, at a fraction of
    the default level's time. The sheet part must stay under 2 GiB (no ZIP64, which
    some readers of streamed zips refuse): about ten million rows like the users'.
    """
    spool = _Spool()
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("[Content_Types].xml", _CONTENT_TYPES)
        zf.writestr("_rels/.rels", _ROOT_RELS)
        zf.writestr("xl/workbook.xml", _workbook(sheet_name))
        zf.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        zf.writestr("xl/styles.xml", _STYLES)
        with zf.open("xl/worksheets/sheet1.xml", "w") as sheet:
            head = "".join(map(_header_cell, header))
            sheet.write(
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                f'<worksheet xmlns="{_NS}">{_FROZEN_HEADER}{_columns(widths)}'
                f'<sheetData><row r="1"{_height(header_lines)}>{head}</row>'.encode()
            )
            batch: list[str] = []
            number = 1
            for row in rows:
                number += 1
                batch.append(f'<row r="{number}">{"".join(map(_cell, row))}</row>')
                if len(batch) == ROWS_PER_BATCH:
                    sheet.write("".join(batch).encode())
                    batch.clear()
                    if data := spool.take():
                        yield data
            sheet.write(("".join(batch) + "</sheetData></worksheet>").encode())
    yield spool.take()


# What each column's values need, in characters: a 13-digit Telegram ID, names as
# most are, the largest balance (999999999999,99) and `28.11.2026 08:24:22`, each with
# a margin so that a number or a date never shows as ###; the dates' columns are a bit
# wider, so that a title such as «Последняя активность (Europe/Moscow)» takes 2 lines.
_DATA_WIDTHS = {
    "telegram_id": 15,
    "username": 18,
    "first_name": 18,
    "last_name": 18,
    "balance": 17,
    "is_blocked": 10,
    "created_at": 24,
    "last_seen_at": 24,
}
# A bold letter of a title, in the widths' unit (a digit of the default font), at most.
_TITLE_LETTER = 1.1


def _width(name: str, title: str) -> float:
    """Wide enough for the values, and for each word of the bold title (it wraps)."""
    longest_word = max(map(len, title.split()), default=0)
    return max(_DATA_WIDTHS[name], round(longest_word * _TITLE_LETTER + 2))


def _lines(title: str, width: float) -> int:
    """How many lines `title` wraps into in a column `width` wide."""
    room = (width - 1) / _TITLE_LETTER
    lines, line = 1, 0
    for word in title.split():
        if line and line + 1 + len(word) > room:
            lines, line = lines + 1, len(word)
        else:
            line += (1 if line else 0) + len(word)
    return lines


def xlsx_stream(*, queryset: QuerySet) -> Iterator[bytes]:
    """The users as an XLSX workbook, streamed, with the admin's column titles; dates in
    the active zone, which their titles name (XLSX has no zones), cut to the second as
    the CSV's; the blocked flag as the CSV for people says it (Да / Нет: Excel and
    LibreOffice would show a boolean as ИСТИНА / ЛОЖЬ or as 1 / 0)."""
    zone = timezone.get_current_timezone()
    header = column_titles(queryset.model, zone)
    widths = [_width(name, title) for name, title in zip(HEADER, header, strict=True)]
    lines = max(_lines(title, width) for title, width in zip(header, widths, strict=True))
    flags = yes_no()[::-1]  # (no, yes): indexed by the flag

    def local(moment: datetime) -> datetime:
        return moment.astimezone(zone).replace(tzinfo=None, microsecond=0)

    def rows() -> Iterator[tuple]:
        for *head, blocked, created, seen in user_rows(queryset):
            yield (*head, flags[blocked], local(created), local(seen))

    return xlsx_chunks(
        sheet_name="users", header=header, rows=rows(), widths=widths, header_lines=lines
    )
