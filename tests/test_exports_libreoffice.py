"""Both users exports opened by LibreOffice Calc, as an operator's spreadsheet opens them.

LibreOffice converts each export to flat ODF (`.fods`), an XML file this test reads:
whether each value came in as a number, a date or a text, how a cell is shown, whether
the header is bold, how wide the columns are. One `soffice` start per format, with a
profile of the test's own (`-env:UserInstallation`), a second or two each.

LibreOffice is Debian's `libreoffice-calc-nogui` at /usr/bin/soffice (.ci/run installs
it). A missing one fails the test, it never skips it.

The CSV is read as LibreOffice's Text Import dialog offers it on a double-click in a
Russian locale: its default separators (`,` `;` and tab: the quotes keep `150,00` in
one piece), UTF-8, the language ru-RU, and «Определять специальные числа» (Detect
special numbers) ticked, without which LibreOffice 7 leaves every date as a text (the
README tells operators to tick it once; the dialog remembers it). Excel in a Russian
locale splits at `;` and reads the decimal comma and the dates by itself.

What the conversion cannot show: the frozen header (a document converted without a
view keeps no view settings), and whether a value fits its column (LibreOffice writes
a cell's text, never the `###` it would draw): the widths are checked against the
widest fallback font's digits instead. tests/test_exports.py reads the pane back with
openpyxl.
"""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.test_exports import (
    BALANCES,
    CSV_URL,
    TITLES,
    TRICKY_DATES,
    TRICKY_NAMES,
    XLSX_URL,
    make_tricky_users,
)

SOFFICE = "/usr/bin/soffice"
INSTALL = "apt-get install libreoffice-calc-nogui"
# The CSV import's options (LibreOffice's filter options, token by token): separators
# `,` `;` tab; `"` quotes; UTF-8; from line 1; no column types; ru-RU (LCID 1049);
# quoted fields are not forced to text; detect special numbers (dates).
CSV_IMPORT = "CSV:44/59/9,34,76,1,,1049,false,true"
NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "style": "urn:oasis:names:tc:opendocument:xmlns:style:1.0",
    "fo": "urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0",
    "number": "urn:oasis:names:tc:opendocument:xmlns:datastyle:1.0",
}
MOSCOW = ZoneInfo("Europe/Moscow")
# DejaVu Sans, LibreOffice's fallback for Calibri where Carlito is missing, is the
# widest of them: its digit is 0.636 em; at 11 pt, in inches.
WIDEST_DIGIT_IN = 0.636 * 11 / 72


def q(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{NS[prefix]}}}{local}"


@dataclass
class Cell:
    kind: str | None  # office:value-type: float, date, string, boolean; None if empty
    value: str | None  # office:value or office:date-value
    text: str  # as shown: the lines of its text:p
    style: str | None  # its own, or its column's default


class Sheet:
    """The first table of a .fods, and the automatic styles its cells and columns use."""

    def __init__(self, path: Path) -> None:
        root = ET.parse(path).getroot()
        self.styles = {style.get(q("style:name")): style for style in root.iter(q("style:style"))}
        self.number_styles = {
            style.get(q("style:name")): style
            for kind in ("number:number-style", "number:date-style")
            for style in root.iter(q(kind))
        }
        table = next(root.iter(q("table:table")))
        self.name = table.get(q("table:name"))
        self.column_widths: list[float] = []
        self.column_styles: list[str | None] = []
        for column in table.iter(q("table:table-column")):
            repeat = min(int(column.get(q("table:number-columns-repeated"), "1")), 64)
            properties = self.styles[column.get(q("table:style-name"))].find(
                "style:table-column-properties", NS
            )
            self.column_widths += [inches(properties.get(q("style:column-width")))] * repeat
            self.column_styles += [column.get(q("table:default-cell-style-name"))] * repeat
        self.rows = [self._cells(row) for row in table.iter(q("table:table-row"))]
        while self.rows and not any(cell.kind for cell in self.rows[-1]):
            self.rows.pop()

    def _cells(self, row: ET.Element) -> list[Cell]:
        cells = []
        for element in row.findall("table:table-cell", NS):
            repeat = int(element.get(q("table:number-columns-repeated"), "1"))
            value = element.get(q("office:value")) or element.get(q("office:date-value"))
            for _ in range(min(repeat, 64)):
                column = self.column_styles[len(cells)]
                cells.append(
                    Cell(
                        kind=element.get(q("office:value-type")),
                        value=value,
                        text="\n".join(
                            "".join(p.itertext()) for p in element.findall("text:p", NS)
                        ),
                        style=element.get(q("table:style-name")) or column,
                    )
                )
        while cells and cells[-1].kind is None:
            cells.pop()
        return cells

    def bold(self, cell: Cell) -> bool:
        if cell.style not in self.styles:
            return False  # the default style: not bold
        text = self.styles[cell.style].find("style:text-properties", NS)
        return text is not None and text.get(q("fo:font-weight")) == "bold"

    def number_style(self, cell: Cell) -> ET.Element:
        return self.number_styles[self.styles[cell.style].get(q("style:data-style-name"))]


def inches(length: str) -> float:
    for unit, per_inch in (("in", 1), ("cm", 2.54), ("mm", 25.4), ("pt", 72)):
        if length.endswith(unit):
            return float(length.removesuffix(unit)) / per_inch
    raise ValueError(f"a length in an unknown unit: {length}")


@pytest.fixture(scope="module")
def soffice(tmp_path_factory) -> list[str]:
    """The command line of a headless LibreOffice with a profile of its own."""
    if not os.access(SOFFICE, os.X_OK):
        pytest.fail(
            f"{SOFFICE} is missing: {INSTALL} (the exports' LibreOffice test needs it)",
            pytrace=False,
        )
    profile = tmp_path_factory.mktemp("libreoffice-profile")
    return [SOFFICE, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore"]


def to_fods(soffice: list[str], source: Path, *options: str) -> Sheet:
    out = source.parent / "fods"
    result = subprocess.run(
        [*soffice, *options, "--convert-to", "fods", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    converted = out / (source.stem + ".fods")
    assert result.returncode == 0 and converted.exists(), result.stdout + result.stderr
    return Sheet(converted)


@pytest.fixture
def exported(db, tmp_path):
    """Both exports of the tricky users, as the admin sends them, in files."""
    make_tricky_users()
    client = Client()
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw"))

    def download(url: str, name: str) -> Path:
        path = tmp_path / name
        path.write_bytes(b"".join(client.get(url).streaming_content))
        return path

    return download(CSV_URL, "users.csv"), download(XLSX_URL, "users.xlsx")


def local(i: int) -> str:
    """The created date of tricky user `i` as ODF writes a date: local, to the second."""
    moment = TRICKY_DATES[i % len(TRICKY_DATES)].astimezone(MOSCOW)
    return moment.replace(tzinfo=None, microsecond=0).isoformat()


def test_libreoffice_opens_the_csv_in_columns_with_numbers_and_dates(soffice, exported):
    sheet = to_fods(soffice, exported[0], f"--infilter={CSV_IMPORT}")
    header, *rows = sheet.rows
    assert [cell.text for cell in header] == TITLES  # the BOM understood, `;` too
    assert len(rows) == len(TRICKY_NAMES)
    for i, row in enumerate(rows):
        assert len(row) <= len(TITLES), [cell.text for cell in row]
        telegram_id, username, first, last, balance, blocked, created = row[:7]
        assert (telegram_id.kind, telegram_id.value) == ("float", str(5_000_000_000 + i))
        # a number, exact, whatever the decimal comma and the `,` separator
        assert balance.kind == "float", balance
        assert Decimal(balance.value) == Decimal(BALANCES[i % len(BALANCES)])
        assert (blocked.kind, blocked.text) == ("string", "Да" if i % 3 == 1 else "Нет")
        assert (created.kind, created.value) == ("date", local(i))
        assert row[7].kind == "date"
        if i in (0, 2, 11):  # texts stay whole and texts: formulas, quotes, `,` and `;`
            assert [cell.kind for cell in (username, first, last)] == ["string"] * 3
    first_row = rows[0]
    # what the formula guard shows: the name with its `'`, a text, never run
    assert [cell.text for cell in first_row[1:4]] == ["'=SUM(A1)", "'+7 900", "'-1"]
    assert [cell.text for cell in rows[2][1:4]] == ['quote"inside', 'Smith, "Jr"', "line\nbreak"]
    assert [cell.text for cell in rows[11][1:4]] == ["semi;colon", "a;b", ";"]


def test_libreoffice_opens_the_xlsx_with_its_formats_bold_titles_and_widths(soffice, exported):
    sheet = to_fods(soffice, exported[1])
    header, *rows = sheet.rows
    assert [cell.text for cell in header] == TITLES
    assert all(sheet.bold(cell) for cell in header)
    assert not sheet.bold(rows[0][1])
    assert len(rows) == len(TRICKY_NAMES)
    for i, row in enumerate(rows):
        telegram_id, balance, blocked, created, seen = (row[i] for i in (0, 4, 5, 6, 7))
        assert (telegram_id.kind, telegram_id.value) == ("float", str(5_000_000_000 + i))
        assert balance.kind == "float"
        assert Decimal(balance.value) == Decimal(BALANCES[i % len(BALANCES)])
        places = sheet.number_style(balance).find("number:number", NS)
        assert places.get(q("number:decimal-places")) == "2"  # 0.00
        assert balance.text == f"{Decimal(BALANCES[i % len(BALANCES)]):.2f}"
        assert (blocked.kind, blocked.text) == ("string", "Да" if i % 3 == 1 else "Нет")
        assert (created.kind, created.value) == ("date", local(i))
        assert seen.kind == "date"
        # dd.mm.yyyy hh:mm:ss, whatever the locale
        expected = TRICKY_DATES[i % len(TRICKY_DATES)].astimezone(MOSCOW)
        assert created.text == expected.strftime("%d.%m.%Y %H:%M:%S")
    assert rows[0][1].text == "=SUM(A1)" and rows[0][1].kind == "string"  # never run
    # Wide enough for the widest fallback font: 13 digits, the largest balance
    # (15 characters), a date and time (19), each with a margin.
    widths = sheet.column_widths
    assert widths[0] >= 14 * WIDEST_DIGIT_IN
    assert widths[4] >= 16 * WIDEST_DIGIT_IN
    assert min(widths[6], widths[7]) >= 20 * WIDEST_DIGIT_IN
