"""Reading a big result from MySQL or MariaDB without holding it all, for the exports.

Django's `QuerySet.iterator()` streams from PostgreSQL (a named cursor) and SQLite, but
on MySQL and MariaDB mysqlclient's default cursor takes the whole result into memory
(a million users: some 600 MB in the server process). There the rows are read through
an unbuffered cursor (`MySQLdb.cursors.SSCursor`, `mysql_use_result`) instead.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections
from django.db.models import QuerySet


@contextmanager
def unbuffered_cursor(alias: str):
    """A raw unbuffered cursor on the MySQL connection `alias`, its errors Django's.

    Until its rows are all read the connection can run nothing else. When the block
    ends early (the client went away, an error), closing the cursor would read the rest
    of the rows first: the connection is closed instead, and Django opens a new one when
    next asked."""
    from MySQLdb.cursors import SSCursor

    connection = connections[alias]
    with connection.wrap_database_errors:
        connection.ensure_connection()
        cursor = connection.connection.cursor(SSCursor)
    try:
        with connection.wrap_database_errors:
            yield cursor
    except BaseException:
        connection.close()
        raise
    cursor.close()


def streamed_rows(queryset: QuerySet, *, chunk_size: int) -> Iterator[tuple]:
    """The rows of `queryset` (a `values_list()`), read `chunk_size` at a time and never
    all held at once, on every database. On MySQL they go through the ORM's converters
    (aware datetimes, `MoneyField`'s Decimal, booleans): the rows `iterator()` gives."""
    if connections[queryset.db].vendor != "mysql":
        return queryset.iterator(chunk_size=chunk_size)
    return _mysql_rows(queryset, chunk_size)


def _mysql_rows(queryset: QuerySet, chunk_size: int) -> Iterator[tuple]:
    compiler = queryset.query.get_compiler(using=queryset.db)
    sql, params = compiler.as_sql()
    with unbuffered_cursor(queryset.db) as cursor:
        cursor.execute(sql, params)
        chunks = iter(functools.partial(cursor.fetchmany, chunk_size), ())
        yield from compiler.results_iter(chunks, tuple_expected=True)
