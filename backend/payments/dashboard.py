"""Selectors of the admin's dashboard («Сводка»): every figure is one aggregate in SQL.

Days are the days of the admin's time zone (settings.TIME_ZONE): a row is put on a day
by the database's own date truncation in that zone (Django's `TruncDate` with `tzinfo`:
`AT TIME ZONE` on PostgreSQL, `CONVERT_TZ` on MySQL, Django's function on SQLite).

Money that came in is what was credited: the bills with a `credited_at`. The credit
sets it in the same transaction as the ledger's `topup` row (one per bill, the database
refuses a second), and nothing clears it, so it is the ledger's top-ups with the bill's
provider beside them, and a past day's figure never moves. Not the PAID bills: a status
changes (a paid Stars bill becomes REFUNDED, and would leave the day it was paid). The
ledger itself would need a join of every top-up to its bill for the provider: 0.57 s
at a million bills (bench/admin_pages.py), against 0.19 s for the index
`bill_credited` (credited_at, provider, amount) read alone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from backend.payments.models import Bill
from backend.payments.vocabulary import BillStatus, ProviderName
from backend.users.models import TelegramUser

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Period:
    """`days` local days up to and including today: [start, end) as moments."""

    days: list[date]
    start: datetime
    end: datetime
    today_start: datetime
    month_start: datetime
    zone: tzinfo


def local_midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def dashboard_period(*, now: datetime | None = None, days: int = 30) -> Period:
    zone = timezone.get_default_timezone()
    today = timezone.localtime(now or timezone.now(), zone).date()
    first = today - timedelta(days=days - 1)
    return Period(
        days=[first + timedelta(days=i) for i in range(days)],
        start=local_midnight(first, zone),
        end=local_midnight(today + timedelta(days=1), zone),
        today_start=local_midnight(today, zone),
        month_start=local_midnight(today.replace(day=1), zone),
        zone=zone,
    )


@dataclass(frozen=True)
class DayTotal:
    amount: Decimal = ZERO
    count: int = 0


def _credited(start: datetime, end: datetime):
    return Bill.objects.filter(credited_at__gte=start, credited_at__lt=end)


def dashboard_topups_by_day(*, period: Period) -> dict[str, dict[date, DayTotal]]:
    """Credited top-ups per provider and local day: {provider: {day: (sum, count)}}."""
    rows = (
        _credited(period.start, period.end)
        .annotate(day=TruncDate("credited_at", tzinfo=period.zone))
        .values("day", "provider")
        .annotate(amount=Sum("amount"), count=Count("pk"))
        .order_by()
    )
    found: dict[str, dict[date, DayTotal]] = defaultdict(dict)
    for row in rows:
        found[row["provider"]][row["day"]] = DayTotal(row["amount"], row["count"])
    return dict(found)


def dashboard_revenue(*, period: Period) -> tuple[Decimal, Decimal]:
    """Credited top-ups (refunds not taken off) today and this month: (today, month)."""
    totals = _credited(period.month_start, period.end).aggregate(
        today=Sum("amount", filter=Q(credited_at__gte=period.today_start)),
        month=Sum("amount"),
    )
    return totals["today"] or ZERO, totals["month"] or ZERO


# The bills' outcomes in the funnel, each with the statuses it counts.
OUTCOMES: dict[str, tuple[str, ...]] = {
    "paid": (BillStatus.PAID, BillStatus.REFUNDING, BillStatus.REFUNDED),
    "expired": (BillStatus.EXPIRED,),
    "rejected": (BillStatus.REJECTED,),
    "failed": (BillStatus.FAILED,),
    "open": (BillStatus.NEW, BillStatus.WAITING),
}


def dashboard_bill_outcomes(*, period: Period) -> dict[str, int]:
    """Bills made in the period, by outcome (OUTCOMES' keys) and in all ("created")."""
    rows = (
        Bill.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
        .values("status")
        .annotate(count=Count("pk"))
        .order_by()
    )
    by_status = {row["status"]: row["count"] for row in rows}
    outcomes = {
        name: sum(by_status.get(status, 0) for status in statuses)
        for name, statuses in OUTCOMES.items()
    }
    return {"created": sum(by_status.values()), **outcomes}


def dashboard_users_by_day(*, period: Period, field: str) -> dict[date, int]:
    """Users per local day of `field`: "created_at" (new) or "last_seen_at" (whose last
    contact was that day: only the latest contact is kept, so a user active on several
    days counts on the last of them only)."""
    if field not in ("created_at", "last_seen_at"):
        raise ValueError(field)
    rows = (
        TelegramUser.objects.filter(**{f"{field}__gte": period.start, f"{field}__lt": period.end})
        .annotate(day=TruncDate(field, tzinfo=period.zone))
        .values("day")
        .annotate(count=Count("pk"))
        .order_by()
    )
    return {row["day"]: row["count"] for row in rows}


def dashboard_balances_total() -> Decimal:
    """The sum of all users' balances (only positive ones exist; the partial index of
    users with money serves the filter)."""
    total = TelegramUser.objects.filter(balance__gt=0).aggregate(total=Sum("balance"))["total"]
    return total or ZERO


@dataclass(frozen=True)
class Summary:
    computed_at: datetime
    period: Period
    topups: dict[str, dict[date, DayTotal]]
    revenue_today: Decimal
    revenue_month: Decimal
    outcomes: dict[str, int]
    new_users: dict[date, int]
    active_users: dict[date, int]
    balances_total: Decimal

    @property
    def providers(self) -> list[str]:
        """The known providers in their order, then any other with top-ups."""
        known = [p.value for p in ProviderName]
        return known + sorted(set(self.topups) - set(known))


def dashboard_summary(*, now: datetime | None = None, days: int = 30) -> Summary:
    computed_at = now or timezone.now()
    period = dashboard_period(now=computed_at, days=days)
    today, month = dashboard_revenue(period=period)
    return Summary(
        computed_at=computed_at,
        period=period,
        topups=dashboard_topups_by_day(period=period),
        revenue_today=today,
        revenue_month=month,
        outcomes=dashboard_bill_outcomes(period=period),
        new_users=dashboard_users_by_day(period=period, field="created_at"),
        active_users=dashboard_users_by_day(period=period, field="last_seen_at"),
        balances_total=dashboard_balances_total(),
    )
