"""Streaming exports of the users list: CSV for Excel and XLSX.

Rows go out in chunks as they are read, so a million users never sit in memory at
once. On PostgreSQL the CSV is made by the server's COPY, on MySQL and MariaDB by a
SELECT of its lines, byte for byte what the Python path makes; the Python path serves
SQLite. The modules, each importing only those above it in this list:

- `server_cursor`: big results read from MySQL without holding them all;
- `columns`: the columns, their titles, the order of the rows, the guard against
  formulas and the CSV's dialects (`excel-ru` for spreadsheets, `rfc4180` for
  programs), shared by all the others;
- `csv_python`: the CSV made in Python;
- `pg_copy`: the CSV made by PostgreSQL's `COPY … TO STDOUT`;
- `mysql_lines`: the CSV's lines made by MySQL's or MariaDB's SELECT;
- `csv_export`: which of the three a queryset gets (`csv_stream`, `csv_write`);
- `xlsx`: the XLSX, written by a streaming writer of our own.

What the admin, the `export_users` command and the tests use is imported here.
"""

from backend.users.exports.columns import (
    DIALECTS,
    FORMULA_GUARD_HELP,
    HEADER,
    ROWS_PER_CHUNK,
    column_titles,
    csv_format,
    csv_header,
)
from backend.users.exports.csv_export import csv_made_by_copy, csv_stream, csv_write
from backend.users.exports.csv_python import csv_chunks
from backend.users.exports.xlsx import XLSX_CONTENT_TYPE, xlsx_stream

__all__ = [
    "DIALECTS",
    "FORMULA_GUARD_HELP",
    "HEADER",
    "ROWS_PER_CHUNK",
    "XLSX_CONTENT_TYPE",
    "column_titles",
    "csv_chunks",
    "csv_format",
    "csv_header",
    "csv_made_by_copy",
    "csv_stream",
    "csv_write",
    "xlsx_stream",
]
