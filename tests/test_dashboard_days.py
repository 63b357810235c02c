"""The dashboard's closed days (backend/payments/dashboard_days.py): the figures read
from the closed rows are the ones computed live, a day whose bills can still change
bucket stays live, the command, and the bot's lock holder closing days by itself.

The rows are planted as in test_dashboard (its `planted` fixture)."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from backend.payments.dashboard import dashboard_summary
from backend.payments.dashboard_days import dashboard_days_close
from backend.payments.models import Bill, DashboardBillDay, DashboardDay
from backend.payments.vocabulary import BillStatus
from backend.users.models import TelegramUser
from tests import test_dashboard as dashboard_tests
from tests.helpers import eventually
from tests.test_dashboard import APP_LIST, INDEX, bill, credit, local_midnight, person, staff_client

DAY = timedelta(days=1)
planted = dashboard_tests.planted
fresh_figures = dashboard_tests.fresh_figures


def dashboard(page: str) -> list[str]:
    """The dashboard's lines but the one saying when it was computed."""
    section = page.split('id="summary"')[1].split(APP_LIST)[0]
    return [line for line in section.splitlines() if "summary-period" not in line]


def moment(planted: dict):
    """Now, or two minutes past today's midnight if the test runs in the first two."""
    return max(timezone.now(), planted["today"] + timedelta(minutes=2))


def test_closed_days_show_what_live_days_showed(planted):
    now = moment(planted)
    live = dashboard_summary(now=now)
    client = staff_client(superuser=True)
    page = client.get(INDEX).content.decode()

    closed = dashboard_days_close(now=now)
    today = planted["today"].date()
    assert closed.days == [today - DAY * i for i in range(30, 0, -1)]
    # The bills made two days ago include a WAITING one: that day stays live.
    two_days_ago = today - 2 * DAY
    assert two_days_ago not in closed.bill_days
    assert closed.bill_days == [d for d in closed.days if d != two_days_ago]
    assert DashboardDay.objects.count() == 30
    row = DashboardDay.objects.get(day=today - DAY)
    assert [(t.provider, t.amount, t.count) for t in row.topups.order_by("provider")] == [
        ("qiwi", Decimal("50.50"), 1),
        ("telegram", Decimal("200.00"), 1),
    ]

    assert dashboard_summary(now=now) == live
    again = client.get(INDEX).content.decode()
    # The same figures drawn; only the moment they were computed at may differ.
    assert dashboard(again) == dashboard(page)

    assert dashboard_days_close(now=now).days == []  # once only


def test_closed_days_are_read_from_their_rows(planted):
    now = moment(planted)
    dashboard_days_close(now=now)
    five_days_ago = planted["today"].date() - 5 * DAY
    # Two users wrote five days ago, one comes back today: live, five days ago would
    # lose them; the closed day keeps everyone who wrote that day.
    TelegramUser.objects.filter(last_seen_at__date=five_days_ago).update(last_seen_at=now)
    summary = dashboard_summary(now=now)
    assert summary.active_users[five_days_ago] == 2
    assert summary.active_users[planted["today"].date()] == 4
    # The live queries read today (and the day not closed) only: one query each.
    with CaptureQueriesContext(connection) as captured:
        dashboard_summary(now=now)
    tables = re.compile(r"\b(payments_bill|users_telegramuser)\b")
    assert sum(bool(tables.search(q["sql"])) for q in captured.captured_queries) == 5


def test_a_day_closes_its_bills_when_none_can_move(db):
    payer = person()
    now = timezone.now()
    day_start = local_midnight(3)
    day = day_start.date()
    # An expired Stars bill without a charge: the Stars reconciliation may still credit
    # it for 7 days.
    stars_day = local_midnight(6)
    stars = bill(payer, "10.00", "telegram", BillStatus.EXPIRED, stars_day)
    Bill.objects.filter(pk=stars.pk).update(invoice_currency="XTR")
    waiting = bill(payer, "10.00", "qiwi", BillStatus.WAITING, day_start + timedelta(hours=1))
    assert day not in dashboard_days_close(now=now).bill_days
    assert DashboardDay.objects.filter(day=day).exists()  # its users and top-ups are closed

    # Expired now: a late payment may still come within the grace.
    Bill.objects.filter(pk=waiting.pk).update(status=BillStatus.EXPIRED, status_changed_at=now)
    assert dashboard_days_close(now=now, late_grace=timedelta(hours=1)).bill_days == []
    later = now + timedelta(hours=2)
    assert dashboard_days_close(now=later, late_grace=timedelta(hours=1)).bill_days == [day]
    row = DashboardBillDay.objects.get(day=day)
    assert (row.paid, row.expired, row.rejected, row.failed) == (0, 1, 0, 0)

    assert stars_day.date() not in dashboard_days_close(now=later).bill_days
    week_later = stars_day + timedelta(days=8)
    assert stars_day.date() in dashboard_days_close(now=week_later, days=30).bill_days


def test_the_command_closes_and_says_which_days(planted):
    out = io.StringIO()
    call_command("dashboard_close_days", "--days", "3", stdout=out)
    today = planted["today"].date()
    days = ", ".join(f"{today - DAY * i:%d.%m.%Y}" for i in (3, 2, 1))
    bill_days = ", ".join(f"{today - DAY * i:%d.%m.%Y}" for i in (3, 1))
    if timezone.now() < planted["today"] + timedelta(minutes=1):  # yesterday not over yet
        return
    assert out.getvalue().splitlines() == [
        f"Закрыты дни (пользователи и пополнения): {days}",
        f"Закрыты дни (счета): {bill_days}",
    ]
    out = io.StringIO()
    call_command("dashboard_close_days", "--days", "3", stdout=out)  # nothing left to close
    assert out.getvalue().splitlines() == [
        "Закрыты дни (пользователи и пополнения): —",
        "Закрыты дни (счета): —",
    ]


async def test_the_bot_closes_past_days(make_bot):
    @sync_to_async
    def plant() -> None:
        credit(person(), "75.00", "yookassa", local_midnight(2) + timedelta(hours=3))

    @sync_to_async
    def closed_days() -> list:
        return list(DashboardDay.objects.values_list("day", flat=True))

    await plant()
    await make_bot(dashboard_close_interval=0.1)
    days = await eventually(closed_days)
    assert local_midnight(2).date() in days
    row = await DashboardDay.objects.prefetch_related("topups").aget(day=local_midnight(2).date())
    assert [(t.provider, t.amount) for t in row.topups.all()] == [("yookassa", Decimal("75.00"))]
