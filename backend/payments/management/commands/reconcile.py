"""`manage.py reconcile --since 2026-11-01 [--until 2026-11-07]`: the admin's «Сверка
платежей» as plain text, for cron and monitoring. Exit status: 0 when everything
agrees, 1 when a row differs, 2 on a usage error or when a provider could not be read
(the line that says which is printed before the table)."""

from __future__ import annotations

import argparse
from datetime import date

from asgiref.sync import async_to_sync
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _

from backend.payments.reconciliation import Row, Statement, period, statement_for_period

EXIT_DIFFERS = 1
EXIT_UNREAD = 2  # argparse's own status for a usage error


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


class Command(BaseCommand):
    help = (
        "Compares the payments the providers report as paid in a period with the bills and "
        "the ledger. Exit status: 0 all agrees, 1 something differs, 2 a provider could "
        "not be read or the arguments are wrong."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", type=_day, required=True, help="first day, YYYY-MM-DD")
        parser.add_argument(
            "--until", type=_day, help="last day, included (default: today), YYYY-MM-DD"
        )

    def handle(self, *args, since: date, until: date | None = None, **options) -> None:
        last = until or timezone.localdate()
        if since > last:
            raise CommandError(f"--until {last} is before --since {since}", returncode=EXIT_UNREAD)
        start, end = period(since, last)
        statement = async_to_sync(statement_for_period)(since=start, until=end)
        self.stdout.write(render(statement, since, last))
        if statement.errors:
            raise CommandError(
                _("a provider could not be read: %(errors)s")
                % {"errors": "; ".join(statement.errors)},
                returncode=EXIT_UNREAD,
            )
        if statement.differing:
            raise CommandError(
                _("rows that differ: %(count)s") % {"count": len(statement.differing)},
                returncode=EXIT_DIFFERS,
            )


def _cells(row: Row) -> list[str]:
    bill = row.bill.pk if row.bill is not None else (row.paid.bill_id if row.paid else "")
    moment = timezone.localtime(row.moment).strftime("%d.%m.%Y %H:%M") if row.moment else ""
    return [row.verdict_text, row.provider_text, moment, bill, row.charge_id, row.paid_text,
            row.bill_text, row.credited_text, row.note_text]  # fmt: skip


def render(statement: Statement, first: date, last: date) -> str:
    """The statement as a text table, the rows that differ first."""
    lines = [
        _("Payment reconciliation %(first)s – %(last)s: rows that differ: %(count)s")
        % {
            "first": f"{first:%d.%m.%Y}",
            "last": f"{last:%d.%m.%Y}",
            "count": len(statement.differing),
        }
    ]
    lines += [f"! {error}" for error in statement.errors]
    lines += [f"* {note}" for note in statement.notes]
    if not statement.rows:
        lines.append(_("No payments and no credited bills in this period."))
        return "\n".join(lines)
    header = [_("Verdict"), _("Provider"), _("Time"), _("Bill"), _("Payment"), _("Paid"),
              _("Bill asks"), _("Credited"), _("Note")]  # fmt: skip
    table = [header] + [_cells(row) for row in statement.rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for cells in table:
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    return "\n".join(lines)
