"""How the admin writes values in its lists: sums by `backend.common.money.money_format`,
moments, counts and a chart's whole rubles here."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from backend.common.money import NBSP


def moment(value: datetime | None) -> str:
    """A date and time, short, in the site's time zone: «29.11.2026 14:05» (Django's
    «29 ноября 2026 г. 14:05» is twice as wide in a list)."""
    return "" if value is None else timezone.localtime(value).strftime("%d.%m.%Y %H:%M")


def number(value: int) -> str:
    """A count the Russian way, digit groups split by no-break spaces: «1 234 567»."""
    return f"{value:,}".replace(",", NBSP)


def rubles(amount: Decimal | float) -> str:
    """Whole rubles, for a chart's axis: «15 000 ₽» (exact sums: `money_format`)."""
    return f"{number(round(amount))}{NBSP}₽"
