"""`manage.py dashboard_close_days [--days 30]`: close the dashboard's past days that can
be closed, as the running bot does every few minutes (backend/payments/dashboard_days.py);
for a backfill, or a database no bot has run on. Prints what it closed."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser
from django.utils.translation import gettext as _

from backend.payments.dashboard_days import CLOSE_DAYS, dashboard_days_close


def _days(days: list) -> str:
    return ", ".join(f"{day:%d.%m.%Y}" for day in days) or "—"


class Command(BaseCommand):
    help = (
        "Writes the admin dashboard's figures of the past days that can be closed "
        "(as the bot does every few minutes) and prints which days it closed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=CLOSE_DAYS,
            help=f"how many past days to look at (default: {CLOSE_DAYS})",
        )

    def handle(self, *args, days: int, **options) -> None:
        closed = dashboard_days_close(days=days)
        self.stdout.write(
            _("Days closed (users and top-ups): %(days)s") % {"days": _days(closed.days)}
        )
        self.stdout.write(_("Days closed (bills): %(days)s") % {"days": _days(closed.bill_days)})
