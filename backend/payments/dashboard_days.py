"""Closing the dashboard's past days: each local day's figures written once into
DashboardDay (users, top-ups) and DashboardBillDay (bills by outcome), so that the
admin's dashboard (backend/payments/dashboard.py) reads a past day's few rows instead
of its bills and users. Run by the bot process that holds the instance lock every
5 minutes (`run_dashboard_closer`; BotConfig.dashboard_close_interval), and by
`manage.py dashboard_close_days` (a backfill, or a database the bot has not seen).

When a day is closed:

- its users and top-ups CLOSE_AFTER past its end. Top-ups count by `credited_at` and
  new users by `created_at`, both stamped with the moment they happen and never
  changed: a day over stays as it is (the minute's margin lets a transaction that
  stamped 23:59:59 commit). Active users are the users whose `last_seen_at` (their
  latest contact: the bot keeps no other) falls on the day: at the day's end that is
  everyone who wrote that day. Closed a few minutes after midnight, the figure misses
  only those who wrote again in those minutes; closed later (the bot was down, or a
  backfill), it misses everyone who came back before the close, and is what the live
  query showed at that moment: the figure only a prompt close can keep.
- its bills' outcomes when none of them can change its bucket any more: none open
  (NEW, WAITING), none expired or rejected within the late-payment grace (the poller
  still asks about those, and a late PAID is credited: BILL_LATE_PAYMENT_GRACE_SECONDS),
  and no Telegram Stars bill the Stars reconciliation could still credit (an expired or
  rejected one without a charge, within STARS_RECONCILE_WINDOW). A refund keeps a bill in
  «paid». Not foreseen: the admin crediting an older expired bill by hand from the
  payment reconciliation; the closed day keeps it in its old bucket (its money counts,
  as any credit does, on the day it was credited).

Rows are never changed; a second closer (the command beside the bot) finds the row
there and skips the day. Only the last `days` days are looked at: the dashboard's
window and the month's first day before it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from loguru import logger

from backend.common.db import db_async
from backend.payments.dashboard import (
    CLOSED_OUTCOMES,
    DAYS,
    dashboard_bill_outcomes,
    dashboard_topups_by_day,
    dashboard_users_by_day,
    local_midnight,
)
from backend.payments.models import (
    Bill,
    DashboardBillDay,
    DashboardDay,
    DashboardDayTopups,
)
from backend.payments.vocabulary import STARS_CURRENCY, STARS_RECONCILE_WINDOW, ProviderName

CLOSE_AFTER = timedelta(minutes=1)  # past a day's end before it is closed
CLOSE_DAYS = DAYS  # the window's past days and a 31-day month's first day before them


@dataclass
class Closed:
    """What one call closed: the days of users and top-ups, the days of bills."""

    days: list[date] = field(default_factory=list)
    bill_days: list[date] = field(default_factory=list)


def _bills_settled(day: date, *, now: datetime, late_grace: timedelta) -> bool:
    zone = timezone.get_default_timezone()
    start, end = local_midnight(day, zone), local_midnight(day + timedelta(days=1), zone)
    bills = Bill.objects.filter(created_at__gte=start, created_at__lt=end)
    if bills.filter(status__in=Bill.OPEN_STATUSES).exists():
        return False
    if bills.filter(status__in=Bill.LATE_PAYABLE, status_changed_at__gte=now - late_grace).exists():
        return False
    stars = bills.filter(
        status__in=Bill.LATE_PAYABLE,
        provider=ProviderName.TELEGRAM,
        invoice_currency=STARS_CURRENCY,
        charge_id="",
    )
    return end <= now - STARS_RECONCILE_WINDOW or not stars.exists()


def _close_day(day: date, *, now: datetime) -> bool:
    zone = timezone.get_default_timezone()
    topups = dashboard_topups_by_day(days=[day], zone=zone, closed={})
    new = dashboard_users_by_day(days=[day], zone=zone, field="created_at")
    active = dashboard_users_by_day(days=[day], zone=zone, field="last_seen_at")
    try:
        with transaction.atomic():
            row = DashboardDay.objects.create(
                time_zone=settings.TIME_ZONE,
                day=day,
                new_users=new.get(day, 0),
                active_users=active.get(day, 0),
                closed_at=now,
            )
            DashboardDayTopups.objects.bulk_create(
                DashboardDayTopups(
                    day=row, provider=provider, amount=by_day[day].amount, count=by_day[day].count
                )
                for provider, by_day in topups.items()
            )
    except IntegrityError:  # closed meanwhile by another closer
        return False
    return True


def _close_bill_day(day: date, *, now: datetime) -> bool:
    zone = timezone.get_default_timezone()
    outcomes = dashboard_bill_outcomes(days=[day], zone=zone, closed={})
    if outcomes["open"] or outcomes["created"] != sum(outcomes[n] for n in CLOSED_OUTCOMES):
        return False  # a bill opened or moved since the check, or a status no bucket knows
    try:
        with transaction.atomic():
            DashboardBillDay.objects.create(
                time_zone=settings.TIME_ZONE,
                day=day,
                closed_at=now,
                **{name: outcomes[name] for name in CLOSED_OUTCOMES},
            )
    except IntegrityError:
        return False
    return True


def dashboard_days_close(
    *,
    now: datetime | None = None,
    days: int = CLOSE_DAYS,
    late_grace: timedelta | None = None,
) -> Closed:
    """Close the past days among the last `days` (today not included) that can be
    closed and are not yet, oldest first; returns which."""
    now = now or timezone.now()
    if late_grace is None:
        late_grace = timedelta(seconds=settings.BILL_LATE_PAYMENT_GRACE_SECONDS)
    zone = timezone.get_default_timezone()
    today = timezone.localtime(now, zone).date()
    candidates = [today - timedelta(days=i) for i in range(days, 0, -1)]
    ended = [
        d for d in candidates if local_midnight(d + timedelta(days=1), zone) + CLOSE_AFTER <= now
    ]
    here = {"time_zone": settings.TIME_ZONE, "day__in": ended}
    have = set(DashboardDay.objects.filter(**here).values_list("day", flat=True))
    have_bills = set(DashboardBillDay.objects.filter(**here).values_list("day", flat=True))
    closed = Closed()
    for day in ended:
        if day not in have and _close_day(day, now=now):
            closed.days.append(day)
        if (
            day not in have_bills
            and _bills_settled(day, now=now, late_grace=late_grace)
            and _close_bill_day(day, now=now)
        ):
            closed.bill_days.append(day)
    return closed


adashboard_days_close = db_async(dashboard_days_close)


async def run_dashboard_closer(*, interval: float, late_grace: timedelta) -> None:
    """Close the dashboard's past days every `interval` seconds, forever. A failed round
    (the database down) is logged and the next one runs as usual."""
    while True:
        try:
            closed = await adashboard_days_close(late_grace=late_grace)
            if closed.days or closed.bill_days:
                logger.info(
                    "dashboard: closed days {}, bills of days {}",
                    [str(d) for d in closed.days],
                    [str(d) for d in closed.bill_days],
                )
        except Exception:
            logger.exception("dashboard: closing days failed; retrying in {} s", interval)
        await asyncio.sleep(interval)
