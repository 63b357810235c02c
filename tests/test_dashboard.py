"""The dashboard on the admin's index page (issue 16, part 2), through Django's test client
on the test database: the figures for planted rows (days, providers, the local midnight
of TIME_ZONE), who sees it, and its SVG charts read back as XML.

Rows are planted with the ORM at chosen moments: the services stamp every row with the
present moment, and a day's figure is about where the rows fall against midnight. The
balances are made by the service (`balance_adjust`), as they always are.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Sum
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.translation import gettext

from backend.common.money import money_format
from backend.payments.dashboard import dashboard_summary
from backend.payments.models import Bill, LedgerEntry
from backend.payments.services import balance_adjust
from backend.payments.vocabulary import BillStatus
from backend.users.models import TelegramUser

INDEX = "/admin/"
NBSP = "\u00a0"
SVG = "{http://www.w3.org/2000/svg}"
APP_LIST = 'id="content-main"'
TITLES = {"qiwi": "QIWI", "telegram": "Telegram Stars", "yookassa": "ЮKassa"}


@pytest.fixture(autouse=True)
def fresh_figures(settings) -> None:
    """Every view computes its figures (test_the_figures_are_kept_a_while: the cache)."""
    settings.DASHBOARD_CACHE_SECONDS = 0


def local_midnight(days_ago: int = 0) -> datetime:
    zone = timezone.get_default_timezone()
    today = timezone.localtime(timezone.now(), zone).date()
    return datetime.combine(today - timedelta(days=days_ago), time.min, tzinfo=zone)


def day_label(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%d.%m")


_ids = iter(range(900_000_001, 900_999_999))


def person(**fields) -> TelegramUser:
    return TelegramUser.objects.create(telegram_id=next(_ids), first_name="A", **fields)


def bill(user: TelegramUser, amount: str, provider: str, status: str, at: datetime) -> Bill:
    return Bill.objects.create(
        id=uuid.uuid4().hex,
        user=user,
        provider=provider,
        amount=Decimal(amount),
        status=status,
        created_at=at,
        status_changed_at=at,
        expires_at=at + timedelta(minutes=5),
    )


def credit(user: TelegramUser, amount: str, provider: str, at: datetime) -> Bill:
    """A bill made, paid and credited at `at`: the bill and its ledger row."""
    paid = bill(user, amount, provider, BillStatus.PAID, at)
    Bill.objects.filter(pk=paid.pk).update(credited_at=at, charge_id=f"ch-{paid.pk}")
    LedgerEntry.objects.create(
        user=user,
        amount=Decimal(amount),
        balance_after=Decimal(amount),
        kind=LedgerEntry.Kind.TOPUP,
        bill=paid,
        created_at=at,
    )
    return paid


@pytest.fixture
def planted(db) -> dict:
    """Top-ups on both sides of today's and yesterday's local midnight, of the window's
    first midnight (29 days ago) and of the month's first; a refunded one; bills of each
    outcome; users new and seen on both sides of midnight."""
    today = local_midnight()
    first_day = local_midnight(29)
    month_start = today.replace(day=1)
    payer = person()
    credits = [
        ("100.00", "qiwi", today),  # the first moment of today
        ("50.50", "qiwi", today - timedelta(microseconds=1)),  # yesterday's last
        ("200.00", "telegram", today - timedelta(hours=12)),
        ("300.00", "yookassa", first_day),  # the window's first moment
        ("999.00", "qiwi", first_day - timedelta(microseconds=1)),  # outside the window
        ("1000.00", "yookassa", month_start),
        ("7.00", "yookassa", month_start - timedelta(seconds=1)),
        ("40.00", "telegram", today + timedelta(seconds=5)),  # refunded below
    ]
    for amount, provider, at in credits:
        refunded = credit(payer, amount, provider, at)
    # Refunded later: still money that came in on its day, and a paid bill.
    Bill.objects.filter(pk=refunded.pk).update(status=BillStatus.REFUNDED)
    LedgerEntry.objects.create(
        user=payer,
        amount=Decimal("-40.00"),
        balance_after=Decimal("0.00"),
        kind=LedgerEntry.Kind.REFUND,
        bill=refunded,
        created_at=today + timedelta(seconds=6),
    )
    for status, count in [
        (BillStatus.EXPIRED, 3),
        (BillStatus.REJECTED, 2),
        (BillStatus.FAILED, 1),
        (BillStatus.WAITING, 1),
    ]:
        for _ in range(count):
            bill(payer, "10.00", "qiwi", status, today - timedelta(days=2))
    bill(payer, "10.00", "qiwi", BillStatus.EXPIRED, first_day - timedelta(hours=1))  # outside

    # Balances are made by the service; its adjustments are no top-ups.
    balance_adjust(user=person(), amount=Decimal("1234567.89"), reason="начальный баланс")
    balance_adjust(user=person(), amount=Decimal("0.11"), reason="начальный баланс")
    TelegramUser.objects.filter(pk=payer.pk).update(
        created_at=first_day - timedelta(days=3), last_seen_at=first_day - timedelta(days=3)
    )
    TelegramUser.objects.exclude(pk=payer.pk).update(
        created_at=today - timedelta(days=5), last_seen_at=today - timedelta(days=5)
    )
    person(created_at=today, last_seen_at=today)  # new today
    person(created_at=today - timedelta(microseconds=1), last_seen_at=today)  # yesterday
    in_window = [(Decimal(a), p, at) for a, p, at in credits if at >= first_day]
    return {
        "today": today,
        "first_day": first_day,
        "credits": in_window,
        "revenue_today": sum((a for a, _, at in in_window if at >= today), Decimal(0)),
        "revenue_month": sum((a for a, _, at in in_window if at >= month_start), Decimal(0)),
    }


def expected_cells(planted: dict) -> dict[tuple[str, str], tuple[Decimal, int]]:
    """The planted credits by (provider, local day «dd.mm»), added up here in Python."""
    cells: dict[tuple[str, str], tuple[Decimal, int]] = {}
    for amount, provider, at in planted["credits"]:
        total, count = cells.get((provider, day_label(at)), (Decimal(0), 0))
        cells[(provider, day_label(at))] = (total + amount, count + 1)
    return cells


def percent(part: int, whole: int) -> str:
    return f"({(200 * part + whole) // (2 * whole)}{NBSP}%)"


def test_the_figures_fall_on_local_days(planted):
    summary = dashboard_summary()
    today, yesterday = planted["today"].date(), (planted["today"] - timedelta(days=1)).date()
    assert summary.period.days[0] == planted["first_day"].date()
    assert summary.period.days[-1] == today and len(summary.period.days) == 30
    found = {
        (provider, day.strftime("%d.%m")): (cell.amount, cell.count)
        for provider, by_day in summary.topups.items()
        for day, cell in by_day.items()
    }
    assert found == expected_cells(planted)
    assert found[("qiwi", today.strftime("%d.%m"))] == (Decimal("100.00"), 1)
    assert found[("qiwi", yesterday.strftime("%d.%m"))] == (Decimal("50.50"), 1)
    assert summary.revenue_today == planted["revenue_today"] >= Decimal("140.00")
    assert summary.revenue_month == planted["revenue_month"]
    # Read from the bills' credited_at: the same as the ledger's top-ups.
    ledger = LedgerEntry.objects.filter(
        kind=LedgerEntry.Kind.TOPUP, created_at__gte=summary.period.start
    ).aggregate(total=Sum("amount"), count=Count("pk"))
    assert (ledger["total"], ledger["count"]) == (
        sum(amount for amount, _, _ in planted["credits"]),
        sum(count for _, count in expected_cells(planted).values()),
    )
    assert sum(amount for amount, _ in found.values()) == ledger["total"]
    assert summary.balances_total == Decimal("1234568.00")
    paid = len(planted["credits"])
    assert summary.outcomes == {
        "created": paid + 7,
        "paid": paid,  # the refunded one too
        "expired": 3,
        "rejected": 2,
        "failed": 1,
        "open": 1,
    }
    assert summary.new_users == {today: 1, yesterday: 1, today - timedelta(days=5): 2}
    assert summary.active_users == {today: 2, today - timedelta(days=5): 2}


def staff_client(*codenames: str, superuser: bool = False) -> Client:
    if superuser:
        user = User.objects.create_superuser("boss", "boss@example.com", "pw")
    else:
        user = User.objects.create_user("clerk", password="pw", is_staff=True)
        user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def charts(page: str) -> list[ET.Element]:
    found = re.findall(r'<svg [^>]*class="chart".*?</svg>', page, flags=re.S)
    return [ET.fromstring(svg) for svg in found]


def bars(svg: ET.Element) -> list[tuple[str, str]]:
    """(class, tooltip) of each bar."""
    return [
        (rect.get("class", ""), rect.findtext(f"{SVG}title", ""))
        for rect in svg.iter(f"{SVG}rect")
        if "bar" in rect.get("class", "").split()
    ]


def test_the_index_shows_the_dashboard_above_the_app_list(planted):
    page = staff_client(superuser=True).get(INDEX).content.decode()
    assert page.index('id="summary"') < page.index(APP_LIST)
    assert "Сводка" in page and "Может видеть сводку" not in page
    today_sum = money_format(planted["revenue_today"])
    assert f'Выручка сегодня</h3>\n      <p class="summary-value">{today_sum}' in page
    month = money_format(planted["revenue_month"])
    assert f'Выручка за месяц</h3>\n      <p class="summary-value">{month}' in page
    assert f"1{NBSP}234{NBSP}568,00{NBSP}₽" in page  # the sum of all balances
    assert "site/dashboard.css" in page
    assert "<script" not in page.split('id="summary"')[1].split(APP_LIST)[0]

    topups, funnel, users = charts(page)
    today, yesterday = planted["today"], planted["today"] - timedelta(days=1)
    qiwi_today = f"{day_label(today)}, QIWI: 1 пополнение, 100,00{NBSP}₽"
    qiwi_yesterday = f"{day_label(yesterday)}, QIWI: 1 пополнение, 50,50{NBSP}₽"
    stars_today = f"{day_label(today)}, Telegram Stars: 1 пополнение, 40,00{NBSP}₽"
    drawn = bars(topups)
    assert ("bar provider-qiwi", qiwi_today) in drawn
    assert ("bar provider-qiwi", qiwi_yesterday) in drawn
    assert ("bar provider-telegram", stars_today) in drawn
    # One bar per provider and day with top-ups, each with its figures.
    tips = {
        f"{day}, {TITLES[provider]}: {count} {'пополнение' if count == 1 else 'пополнения'}, "
        f"{money_format(amount)}"
        for (provider, day), (amount, count) in expected_cells(planted).items()
    }
    assert {title for _, title in drawn} == tips and len(drawn) == len(tips)
    assert all(title for _, title in drawn)

    steps = {css.split()[-1]: title for css, title in bars(funnel)}
    paid = len(planted["credits"])
    created = paid + 7
    assert steps == {
        "step-created": str(created),
        "step-paid": f"{paid} {percent(paid, created)}",
        "step-expired": f"3 {percent(3, created)}",
        "step-rejected": f"2 {percent(2, created)}",
        "step-failed": f"1 {percent(1, created)}",
        "step-open": f"1 {percent(1, created)}",
    }
    user_bars = bars(users)
    assert ("bar users-new", f"{day_label(today)}: 1 новый пользователь") in user_bars
    assert (
        "bar users-active",
        f"{day_label(today)}: 2 активных пользователя",
    ) in user_bars
    assert "через несколько минут после полуночи" in page  # the note on what «active» is


def test_the_legend_counts_each_provider(planted):
    page = staff_client(superuser=True).get(INDEX).content.decode()
    legend = re.findall(r'<span class="swatch ([\w-]+)"></span>([^<]+)</li>', page)
    assert (
        "provider-telegram",
        f"Telegram Stars: 2 пополнения, 240,00{NBSP}₽",
    ) in legend


def test_only_staff_with_the_permission_see_it(db):
    plain = staff_client().get(INDEX)
    assert plain.status_code == 200
    assert 'id="summary"' not in plain.content.decode()
    assert "site/dashboard.css" not in plain.content.decode()
    User.objects.all().delete()

    allowed = staff_client("view_dashboard").get(INDEX).content.decode()
    assert 'id="summary"' in allowed and APP_LIST in allowed
    User.objects.all().delete()

    boss = staff_client(superuser=True).get(INDEX).content.decode()
    assert 'id="summary"' in boss and APP_LIST in boss


def test_an_empty_database_draws_empty_charts(db):
    page = staff_client(superuser=True).get(INDEX).content.decode()
    svgs = charts(page)
    assert len(svgs) == 3
    assert all(bars(svg) == [] for svg in svgs)
    assert f"0,00{NBSP}₽" in page


def test_the_permission_lives_in_payments(db):
    permission = Permission.objects.get(codename="view_dashboard")
    assert permission.content_type.app_label == "payments"
    # Django keeps permission names as the model declares them, as for the others;
    # the catalog has its Russian name.
    assert gettext(str(permission.name)) == "Может видеть сводку"


def test_the_figures_are_kept_a_while(planted, settings):
    settings.DASHBOARD_CACHE_SECONDS = 60
    cache.clear()
    client = staff_client(superuser=True)
    with CaptureQueriesContext(connection) as first:
        client.get(INDEX)
    credit(TelegramUser.objects.first(), "5.00", "qiwi", timezone.now())
    with CaptureQueriesContext(connection) as second:
        page = client.get(INDEX).content.decode()
    tables = ("payments_bill", "users_telegramuser")
    assert sum(any(t in q["sql"] for t in tables) for q in first.captured_queries) == 5
    assert not any(t in q["sql"] for q in second.captured_queries for t in tables)
    assert money_format(planted["revenue_today"]) in page  # as it was computed
    cache.clear()
    page = client.get(INDEX).content.decode()
    assert money_format(planted["revenue_today"] + 5) in page
