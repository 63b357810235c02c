"""`foldstartswith`: `istartswith` that ignores case in every alphabet, on SQLite too.

PostgreSQL's `UPPER()` knows Cyrillic; SQLite's `LIKE` and `upper()` know only ASCII, so
there «ёлка» never finds «Ёлка». On SQLite the lookup compares the `casefold` of both
sides instead: a Python function (`str.casefold`) that `register_sqlite_casefold`
gives every new SQLite connection (the `connection_created` signal, connected by the
users app). On every other database it *is* `istartswith` — on PostgreSQL
`UPPER(col::text) LIKE UPPER('term%')`, the expression that the indexes of
backend/users/migrations/0004_search_indexes.py serve; on MySQL `col LIKE 'term%'`,
case-insensitive by the searched columns' collation
(backend/users/migrations/0009_mysql_search_and_filters.py).

«ё» and «е» stay different letters on all three: making them one would need new
expression indexes on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from django.db.models import CharField
from django.db.models.lookups import IStartsWith


def casefold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def register_sqlite_casefold(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function("casefold", 1, casefold, deterministic=True)


@CharField.register_lookup
class FoldedStartsWith(IStartsWith):
    lookup_name = "foldstartswith"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list]:
        # Django's istartswith itself, SQL and all (its operators are keyed by its name).
        return IStartsWith(self.lhs, self.rhs).as_sql(compiler, connection)

    def as_sqlite(self, compiler: Any, connection: Any) -> tuple[str, list]:
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        rhs_sql, rhs_params = self.process_rhs(compiler, connection)  # 'term%', escaped
        return (
            f"casefold({lhs_sql}) LIKE casefold({rhs_sql}) ESCAPE '\\'",
            [*lhs_params, *rhs_params],
        )
