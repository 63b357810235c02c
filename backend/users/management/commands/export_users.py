import sys
from contextlib import nullcontext

from django.core.management.base import BaseCommand, CommandError

from backend.users.exports import csv_lines
from backend.users.models import TelegramUser


class Command(BaseCommand):
    help = "Writes every Telegram user with the balance as CSV, to stdout or a file."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", "-o", help="file to write (default: stdout)")
        parser.add_argument(
            "--bom", action="store_true", help="start with a BOM, for Excel (UTF-8 files)"
        )

    def handle(self, *args, output: str | None = None, bom: bool = False, **options) -> None:
        try:
            target = open(output, "w", newline="", encoding="utf-8") if output else None  # noqa: SIM115
        except OSError as e:
            raise CommandError(f"cannot write {output}: {e.strerror}") from None
        # self.stdout unless it is the real stdout: then write to it directly, unwrapped.
        stdout = sys.stdout if self.stdout._out is sys.stdout else self.stdout
        lines = 0
        with target or nullcontext(stdout) as stream:
            for line in csv_lines(TelegramUser.objects.all(), bom=bom):
                stream.write(line)
                lines += 1
        if output:
            self.stderr.write(f"{lines - 1} users written to {output}")
