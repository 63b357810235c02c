import csv
from contextlib import nullcontext

from django.core.management.base import BaseCommand, CommandError

from backend.users.selectors import EXPORT_FIELDS, users_for_export


class Command(BaseCommand):
    help = "Writes every Telegram user with the balance as CSV, to stdout or a file."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", "-o", help="file to write (default: stdout)")

    def handle(self, *args, output: str | None = None, **options) -> None:
        try:
            target = open(output, "w", newline="", encoding="utf-8") if output else None  # noqa: SIM115
        except OSError as e:
            raise CommandError(f"cannot write {output}: {e.strerror}") from None
        with target or nullcontext(self.stdout) as stream:
            writer = csv.writer(stream)
            writer.writerow(EXPORT_FIELDS)
            count = 0
            for row in users_for_export():
                writer.writerow(_cell(value) for value in row)
                count += 1
        if output:
            self.stderr.write(f"{count} users written to {output}")


def _cell(value: object) -> object:
    if isinstance(value, bool):
        return int(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
