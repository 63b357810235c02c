"""Selectors of the admin's dashboard («Сводка»): per local day figures over the last
30 days, read from the closed days' rows where there are some, live from the bills and
users for the other days (today, and a day not closed yet).

Days are the days of the admin's time zone (settings.TIME_ZONE): a row is put on a day
by the database's own date truncation in that zone (Django's `TruncDate` with `tzinfo`:
`AT TIME ZONE` on PostgreSQL, `CONVERT_TZ` on MySQL, Django's function on SQLite). A
past day is closed by `dashboard_days_close` (backend/payments/dashboard_days.py): its
figures are written once into DashboardDay and DashboardBillDay, computed by the same
selectors below for that one day, so a closed day shows what it showed live. The live
queries read only the days not closed, each through an index of one column range
(`bill_credited`, `bill_created_status`, `telegram_user_created`,
`telegram_user_last_seen`): today's rows, not 30 days'.

Money that came in is what was credited: the bills with a `credited_at`. The credit
sets it in the same transaction as the ledger's `topup` row (one per bill, the database
refuses a second), and nothing clears it, so it is the ledger's top-ups with the bill's
provider beside them, and a past day's figure never moves. Not the PAID bills: a status
changes (a paid Stars bill becomes REFUNDED, and would leave the day it was paid).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from functools import reduce
from operator import or_

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from backend.payments.models import Bill, DashboardBillDay, DashboardDay
from backend.payments.vocabulary import BillStatus, ProviderName
from backend.users.models import TelegramUser

ZERO = Decimal("0.00")
DAYS = 30  # the dashboard's window, today included


@dataclass(frozen=True)
class Period:
    """`days` local days up to and including today: [start, end) as moments."""

    days: list[date]
    start: datetime
    end: datetime
    today_start: datetime
    month_start: datetime
    zone: tzinfo

    @property
    def today(self) -> date:
        return self.days[-1]

    @property
    def read_days(self) -> list[date]:
        """The window's days, and the month's before it (a 31-day month's first day,
        for the month's revenue)."""
        first = min(self.days[0], self.month_start.date())
        return [first + timedelta(days=i) for i in range((self.today - first).days + 1)]


def local_midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def dashboard_period(*, now: datetime | None = None, days: int = DAYS) -> Period:
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


def _within(field: str, days: list[date], zone: tzinfo) -> Q | None:
    """`field` on one of `days` (local): one range per run of consecutive days; None
    for no days at all."""
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and runs[-1][-1] + timedelta(days=1) == day:
            runs[-1].append(day)
        else:
            runs.append([day])
    ranges = [
        Q(**{
            f"{field}__gte": local_midnight(run[0], zone),
            f"{field}__lt": local_midnight(run[-1] + timedelta(days=1), zone),
        })
        for run in runs
    ]  # fmt: skip
    return reduce(or_, ranges) if ranges else None


def dashboard_closed_days(*, days: list[date]) -> dict[date, DashboardDay]:
    """The closed days among `days` in this TIME_ZONE, their top-ups with them."""
    rows = DashboardDay.objects.filter(time_zone=settings.TIME_ZONE, day__in=days)
    return {row.day: row for row in rows.prefetch_related("topups")}


def dashboard_closed_bill_days(*, days: list[date]) -> dict[date, DashboardBillDay]:
    rows = DashboardBillDay.objects.filter(time_zone=settings.TIME_ZONE, day__in=days)
    return {row.day: row for row in rows}


@dataclass(frozen=True)
class DayTotal:
    amount: Decimal = ZERO
    count: int = 0


def dashboard_topups_by_day(
    *, days: list[date], zone: tzinfo, closed: dict[date, DashboardDay]
) -> dict[str, dict[date, DayTotal]]:
    """Credited top-ups per provider and local day: {provider: {day: (sum, count)}};
    the days in `closed` from their rows, the others from the bills."""
    found: dict[str, dict[date, DayTotal]] = defaultdict(dict)
    for day in days:
        if day in closed:
            for topups in closed[day].topups.all():
                found[topups.provider][day] = DayTotal(topups.amount, topups.count)
    live = _within("credited_at", [day for day in days if day not in closed], zone)
    if live is not None:
        rows = (
            Bill.objects.filter(live)
            .annotate(day=TruncDate("credited_at", tzinfo=zone))
            .values("day", "provider")
            .annotate(amount=Sum("amount"), count=Count("pk"))
            .order_by()
        )
        for row in rows:
            found[row["provider"]][row["day"]] = DayTotal(row["amount"], row["count"])
    return dict(found)


# The bills' outcomes in the funnel, each with the statuses it counts.
OUTCOMES: dict[str, tuple[str, ...]] = {
    "paid": (BillStatus.PAID, BillStatus.REFUNDING, BillStatus.REFUNDED),
    "expired": (BillStatus.EXPIRED,),
    "rejected": (BillStatus.REJECTED,),
    "failed": (BillStatus.FAILED,),
    "open": (BillStatus.NEW, BillStatus.WAITING),
}
# What a closed day keeps: it has no open bills.
CLOSED_OUTCOMES = ("paid", "expired", "rejected", "failed")


def dashboard_bill_outcomes(
    *, days: list[date], zone: tzinfo, closed: dict[date, DashboardBillDay]
) -> dict[str, int]:
    """Bills made on `days`, by outcome (OUTCOMES' keys) and in all ("created"); the
    days in `closed` from their rows, the others from the bills."""
    by_status: Counter[str] = Counter()
    live = _within("created_at", [day for day in days if day not in closed], zone)
    if live is not None:
        rows = Bill.objects.filter(live).values("status").annotate(count=Count("pk")).order_by()
        by_status.update({row["status"]: row["count"] for row in rows})
    outcomes = {
        name: sum(by_status[status] for status in statuses) for name, statuses in OUTCOMES.items()
    }
    created = sum(by_status.values())
    for day in days:
        if day in closed:
            for name in CLOSED_OUTCOMES:
                outcomes[name] += getattr(closed[day], name)
                created += getattr(closed[day], name)
    return {"created": created, **outcomes}


def dashboard_users_by_day(
    *, days: list[date], zone: tzinfo, field: str, closed: dict[date, int] | None = None
) -> dict[date, int]:
    """Users per local day of `field`: "created_at" (new) or "last_seen_at" (whose last
    contact was that day); `closed`: the closed days' own figures, read as they are.

    The bot keeps a user's latest contact only, so live, a past day counts those who
    have not come back since; a day closed shortly after its midnight (the bot's job,
    every few minutes) counts everyone who wrote that day: see dashboard_days."""
    if field not in ("created_at", "last_seen_at"):
        raise ValueError(field)
    closed = closed or {}
    found = {day: closed[day] for day in days if closed.get(day)}
    live = _within(field, [day for day in days if day not in closed], zone)
    if live is not None:
        rows = (
            TelegramUser.objects.filter(live)
            .annotate(day=TruncDate(field, tzinfo=zone))
            .values("day")
            .annotate(count=Count("pk"))
            .order_by()
        )
        found |= {row["day"]: row["count"] for row in rows}
    return found


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


def dashboard_summary(*, now: datetime | None = None, days: int = DAYS) -> Summary:
    computed_at = now or timezone.now()
    period = dashboard_period(now=computed_at, days=days)
    zone, first, month_first = period.zone, period.days[0], period.month_start.date()
    closed = dashboard_closed_days(days=period.read_days)
    topups = dashboard_topups_by_day(days=period.read_days, zone=zone, closed=closed)
    # Revenue: credited top-ups, refunds not taken off.
    cells = [(day, cell) for by_day in topups.values() for day, cell in by_day.items()]
    new = {day: row.new_users for day, row in closed.items()}
    active = {day: row.active_users for day, row in closed.items()}
    return Summary(
        computed_at=computed_at,
        period=period,
        topups={
            provider: in_window
            for provider, by_day in topups.items()
            if (in_window := {day: cell for day, cell in by_day.items() if day >= first})
        },
        revenue_today=sum((c.amount for day, c in cells if day == period.today), ZERO),
        revenue_month=sum((c.amount for day, c in cells if day >= month_first), ZERO),
        outcomes=dashboard_bill_outcomes(
            days=period.days, zone=zone, closed=dashboard_closed_bill_days(days=period.days)
        ),
        new_users=dashboard_users_by_day(
            days=period.days, zone=zone, field="created_at", closed=new
        ),
        active_users=dashboard_users_by_day(
            days=period.days, zone=zone, field="last_seen_at", closed=active
        ),
        balances_total=dashboard_balances_total(),
    )
