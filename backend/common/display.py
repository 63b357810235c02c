"""How the admin writes values in its lists: sums by `backend.common.money.money_format`,
moments here."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def moment(value: datetime | None) -> str:
    """A date and time, short, in the site's time zone: «29.11.2026 14:05» (Django's
    «29 ноября 2026 г. 14:05» is twice as wide in a list)."""
    return "" if value is None else timezone.localtime(value).strftime("%d.%m.%Y %H:%M")
