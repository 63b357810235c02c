"""A paginator for big admin lists that never counts a million rows.

Django's paginator runs `COUNT(*)` of the listed rows on every page: ~100 ms for the
whole table at a million users, more for a filter without an index. Here:

- the unfiltered list of a big table takes the planner's row estimate, shown as «≈ N»:
  PostgreSQL's `pg_class.reltuples` (kept by autovacuum), MySQL's
  `information_schema.tables.table_rows` (InnoDB's sampled statistics);
- any other list counts at most `cap` + 1 rows (`COUNT(*)` over a LIMITed subquery):
  exact up to the cap, «N+» above it (the users admin raises the cap with the page
  asked for, so the pages after it stay reachable).

Tables under the cap get exact counts as before; SQLite never estimates.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.formats import number_format
from django.utils.functional import cached_property

COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """`count_kind` says what `count` is: "exact", "estimate" or "capped" (at `cap`)."""

    def __init__(self, object_list, per_page, *, cap: int = COUNT_CAP, **kwargs) -> None:
        super().__init__(object_list, per_page, **kwargs)
        self.cap = cap
        self.count_kind = "exact"

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        estimate = _table_estimate(queryset)
        if estimate is not None and estimate > self.cap:
            self.count_kind = "estimate"
            return estimate
        counted = queryset.order_by()[: self.cap + 1].count()
        if counted > self.cap:
            self.count_kind = "capped"
            return self.cap
        return counted

    @property
    def count_label(self) -> str:
        """The count as the list shows it: «1234», «≈ 1000000» or «10000+»."""
        number = number_format(self.count)
        return {"estimate": f"≈ {number}", "capped": f"{number}+"}.get(self.count_kind, number)


ESTIMATE_SQL = {
    "postgresql": "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
    "mysql": (
        "SELECT table_rows FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name = %s"
    ),
}


def _table_estimate(queryset: QuerySet) -> int | None:
    """The planner's row count of the table when `queryset` is all of it (PostgreSQL,
    MySQL), else None. -1 (never analysed) and NULL are None too."""
    query = queryset.query
    connection = connections[queryset.db]
    sql = ESTIMATE_SQL.get(connection.vendor)
    if sql is None or query.where or query.distinct or query.is_sliced:
        return None
    table = queryset.model._meta.db_table
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(table)
    with connection.cursor() as cursor:
        cursor.execute(sql, [table])
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None and row[0] >= 0 else None
