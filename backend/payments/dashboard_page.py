"""The dashboard on the admin's index page: the selectors' figures (backend/payments/
dashboard.py) as tiles and SVG charts (backend/common/charts.py), in Russian format.

Shown to staff with the permission `payments.view_dashboard` («Может видеть сводку»;
superusers have every permission): see `backend.admin_site.AdminSite.index`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from backend.common.charts import Series, Step, bar_chart, funnel_chart
from backend.common.display import number, rubles
from backend.common.money import NBSP, money_format
from backend.payments.dashboard import DayTotal, Summary, dashboard_summary
from backend.payments.vocabulary import PROVIDER_TITLES

PERMISSION = "payments.view_dashboard"


def can_see_dashboard(user) -> bool:
    return user.has_perm(PERMISSION)


@dataclass(frozen=True)
class Tile:
    title: str
    value: str
    note: str = ""


@dataclass(frozen=True)
class Legend:
    name: str
    css: str
    note: str = ""


@dataclass(frozen=True)
class Chart:
    title: str
    svg: SafeString
    legend: list[Legend]
    note: str = ""


def _day(day: date) -> str:
    return day.strftime("%d.%m")


def _topups_word(count: int) -> str:
    return ngettext("%(count)s top-up", "%(count)s top-ups", count) % {"count": number(count)}


def _percent(part: int, whole: int) -> str:
    # Half up, as people round (Python's round() takes 12.5 to 12).
    return f"({(200 * part + whole) // (2 * whole)}{NBSP}%)" if whole else ""


def topups_chart(summary: Summary) -> Chart:
    days = summary.period.days
    series, legend = [], []
    for provider in summary.providers:
        by_day = summary.topups.get(provider, {})
        cells = [by_day.get(day, DayTotal()) for day in days]
        title = PROVIDER_TITLES.get(provider, provider)
        css = f"provider-{provider}"
        tips = [
            f"{_day(day)}, {title}: {_topups_word(cell.count)}, {money_format(cell.amount)}"
            for day, cell in zip(days, cells, strict=True)
        ]
        series.append(Series(title, css, [float(c.amount) for c in cells], tips))
        amount = sum((c.amount for c in cells), Decimal("0.00"))
        count = sum(c.count for c in cells)
        legend.append(Legend(title, css, f"{_topups_word(count)}, {money_format(amount)}"))
    svg = bar_chart(
        label=_("Top-ups per day, rubles"),
        labels=[_day(day) for day in days],
        series=series,
        axis_format=rubles,
        stacked=True,
    )
    # charts.py escapes every text it draws: the SVG is safe as it is.
    return Chart(_("Top-ups per day"), mark_safe(svg), legend)


FUNNEL = (
    ("created", gettext_lazy("Issued")),
    ("paid", gettext_lazy("Paid")),
    ("expired", gettext_lazy("Expired")),
    ("rejected", gettext_lazy("Rejected")),
    ("failed", gettext_lazy("Not created")),
    ("open", gettext_lazy("Still open")),
)


def bills_chart(summary: Summary) -> Chart:
    outcomes = summary.outcomes
    whole = outcomes["created"]
    steps = [
        Step(
            str(name),
            outcomes[key],
            f"step-{key}",
            "" if key == "created" else _percent(outcomes[key], whole),
        )
        for key, name in FUNNEL
    ]
    svg = funnel_chart(label=_("Bills by outcome"), steps=steps, count_format=number)
    note = _("Bills made in the last %(days)s days, by where they stand now.") % {
        "days": len(summary.period.days)
    }
    return Chart(_("Bills by outcome"), mark_safe(svg), [], note)


def users_chart(summary: Summary) -> Chart:
    days = summary.period.days
    new = [summary.new_users.get(day, 0) for day in days]
    active = [summary.active_users.get(day, 0) for day in days]

    new_tips = [
        f"{_day(day)}: "
        + ngettext("%(count)s new user", "%(count)s new users", n) % {"count": number(n)}
        for day, n in zip(days, new, strict=True)
    ]
    active_tips = [
        f"{_day(day)}: "
        + ngettext("%(count)s active user", "%(count)s active users", n) % {"count": number(n)}
        for day, n in zip(days, active, strict=True)
    ]
    series = [
        Series(_("new"), "users-new", new, new_tips),
        Series(_("active"), "users-active", active, active_tips),
    ]
    svg = bar_chart(
        label=_("Users per day"),
        labels=[_day(day) for day in days],
        series=series,
        axis_format=lambda value: number(round(value)),
        whole=True,
    )
    legend = [
        Legend(_("new"), "users-new", number(sum(new))),
        Legend(_("active"), "users-active", number(sum(active))),
    ]
    note = _(
        "Active: users who wrote to the bot that day, counted a few minutes after its "
        "midnight. The bot keeps only a user's latest contact, so a day not counted yet "
        "shows only those who have not written since."
    )
    return Chart(_("Users per day"), mark_safe(svg), legend, note)


def cached_summary() -> Summary:
    """`dashboard_summary`, kept for DASHBOARD_CACHE_SECONDS in Django's cache (this
    process's memory unless CACHES says otherwise)."""
    seconds = settings.DASHBOARD_CACHE_SECONDS
    if seconds <= 0:
        return dashboard_summary()
    key = f"admin-dashboard:{settings.TIME_ZONE}"
    return cache.get_or_set(key, dashboard_summary, timeout=seconds)


def dashboard_context() -> dict:
    """What templates/admin/index.html draws above the app list."""
    summary = cached_summary()
    period = summary.period
    credited = [cell for by_day in summary.topups.values() for cell in by_day.values()]
    month = date_format(period.month_start.date(), "F Y")  # «Ноябрь 2026»
    tiles = [
        Tile(_("Revenue today"), money_format(summary.revenue_today)),
        Tile(_("Revenue this month"), money_format(summary.revenue_month), month),
        Tile(
            _("Top-ups in %(days)s days") % {"days": len(period.days)},
            money_format(sum((c.amount for c in credited), Decimal("0.00"))),
            _topups_word(sum(c.count for c in credited)),
        ),
        Tile(_("All balances"), money_format(summary.balances_total)),
        Tile(
            _("New users in %(days)s days") % {"days": len(period.days)},
            number(sum(summary.new_users.values())),
        ),
    ]
    return {
        "tiles": tiles,
        "charts": [topups_chart(summary), bills_chart(summary), users_chart(summary)],
        "zone": period.zone,
        "computed_at": timezone.localtime(summary.computed_at, period.zone),
        "first_day": period.days[0],
        "last_day": period.days[-1],
    }
