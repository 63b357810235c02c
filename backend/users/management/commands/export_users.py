import argparse
import sys
from collections.abc import Callable

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from backend.users.exports import DIALECTS, csv_write
from backend.users.models import TelegramUser


class Command(BaseCommand):
    help = "Writes every Telegram user with the balance as CSV, to stdout or a file."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", "-o", help="file to write (default: stdout)")
        parser.add_argument(
            "--dialect",
            choices=list(DIALECTS),
            help="excel-ru: for Excel and LibreOffice in a Russian locale (';', decimal "
            "comma, dd.mm.yyyy dates, Russian titles); rfc4180: plain CSV for programs "
            "(',', '.', ISO dates, field names). Default: EXPORT_CSV_DIALECT "
            f"({settings.EXPORT_CSV_DIALECT})",
        )
        parser.add_argument(
            "--bom",
            action=argparse.BooleanOptionalAction,
            help="start with a UTF-8 BOM, which Excel needs to show Cyrillic right "
            "(default: with excel-ru, not with rfc4180)",
        )

    def handle(
        self,
        *args,
        output: str | None = None,
        dialect: str | None = None,
        bom: bool | None = None,
        **options,
    ) -> None:
        chosen = DIALECTS[dialect or settings.EXPORT_CSV_DIALECT]
        if bom is None:
            bom = chosen.for_people
        try:
            target = open(output, "wb") if output else None  # noqa: SIM115
        except OSError as e:
            raise CommandError(f"cannot write {output}: {e.strerror}") from None
        users = TelegramUser.objects.all()
        if target is not None:
            with target:
                count = csv_write(queryset=users, write=target.write, bom=bom, dialect=chosen)
            self.stderr.write(f"{count} users written to {output}")
        else:
            csv_write(queryset=users, write=self._stdout_writer(), bom=bom, dialect=chosen)

    def _stdout_writer(self) -> Callable[[bytes], object]:
        """The real stdout takes the bytes as they are (no text layer in between); a
        stream given to call_command gets text (the chunks end on whole rows)."""
        if self.stdout._out is sys.stdout:
            sys.stdout.flush()
            return sys.stdout.buffer.write
        return lambda data: self.stdout.write(data.decode(), ending="")
