from collections.abc import Callable

from django.core.management.base import BaseCommand, CommandError

from backend.users.models import TelegramUser


class BlockingCommand(BaseCommand):
    """block_user and unblock_user: one service call on one Telegram id."""

    service: Callable[..., TelegramUser]
    done: str

    def add_arguments(self, parser) -> None:
        parser.add_argument("telegram_id", type=int, help="the user's Telegram id")

    def handle(self, *args, telegram_id: int, **options) -> None:
        try:
            user = type(self).service(telegram_id=telegram_id)
        except TelegramUser.DoesNotExist:
            raise CommandError(f"no user with Telegram id {telegram_id}") from None
        self.stdout.write(f"{user} {self.done}")
