from django.core.management.base import BaseCommand, CommandError

from backend.broadcasts import selectors, services


class Command(BaseCommand):
    help = (
        "Queue a broadcast to every user who is not blocked and has not blocked the bot "
        "(the bot process sends it at BROADCAST_RATE messages a second); prints its id and "
        "audience size. --dry-run only counts."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--text", required=True, help="the message, Telegram HTML")
        parser.add_argument("--button-text", default="", help="an optional URL button's text")
        parser.add_argument("--button-url", default="", help="... and its https:// URL")
        parser.add_argument(
            "--only-positive-balance", action="store_true", help="only users with money"
        )
        parser.add_argument("--dry-run", action="store_true", help="count, queue nothing")

    def handle(self, *args, **options) -> None:
        only_positive = options["only_positive_balance"]
        try:
            broadcast = services.broadcast_create(
                text=options["text"],
                button_text=options["button_text"],
                button_url=options["button_url"],
                only_positive_balance=only_positive,
            )
        except services.BroadcastError as e:
            raise CommandError(str(e)) from None
        if options["dry_run"]:
            services.broadcast_cancel(broadcast_id=broadcast.pk)
            audience = selectors.broadcast_audience(only_positive_balance=only_positive)
            self.stdout.write(f"dry run: {audience.count()} recipients; nothing queued")
            return
        broadcast = services.broadcast_queue(broadcast_id=broadcast.pk)
        self.stdout.write(f"broadcast {broadcast.pk} queued: {broadcast.total} recipients")
