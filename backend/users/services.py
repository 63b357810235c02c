"""Writes to Telegram users. The balance is not written here: see payments.services."""

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from loguru import logger

from backend.users.models import TelegramUser


def _storable(text: str | None) -> str:
    """What every database stores: no NUL (PostgreSQL refuses it), no lone surrogate."""
    if not text:
        return ""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def user_upsert(
    *,
    telegram_id: int,
    username: str | None,
    first_name: str | None,
    last_name: str | None,
    language_code: str | None,
) -> TelegramUser:
    """Create the user on first contact, refresh names and last-seen time afterwards."""
    user, _ = TelegramUser.objects.update_or_create(
        telegram_id=telegram_id,
        defaults={
            "username": _storable(username),
            "first_name": _storable(first_name),
            "last_name": _storable(last_name),
            "language_code": _storable(language_code),
            "last_seen_at": timezone.now(),
            "bot_blocked_at": None,  # whoever writes to the bot can hear it again
        },
    )
    return user


def user_mark_bot_blocked(*, telegram_id: int) -> None:
    """Telegram refused a message (403): the user blocked the bot or left Telegram."""
    TelegramUser.objects.filter(telegram_id=telegram_id, bot_blocked_at=None).update(
        bot_blocked_at=timezone.now()
    )


def _user_set_blocked(
    *, telegram_id: int, blocked: bool, admin: AbstractBaseUser | None
) -> TelegramUser:
    user = TelegramUser.objects.get(telegram_id=telegram_id)
    if user.is_blocked != blocked:
        TelegramUser.objects.filter(pk=user.pk).update(is_blocked=blocked)
        user.is_blocked = blocked
        logger.info(
            "user {} {} by {}",
            telegram_id,
            "blocked" if blocked else "unblocked",
            admin.get_username() if admin else "the command line",
        )
    return user


def user_block(*, telegram_id: int, admin: AbstractBaseUser | None = None) -> TelegramUser:
    """The bot stops reacting to the user from the next update on."""
    return _user_set_blocked(telegram_id=telegram_id, blocked=True, admin=admin)


def user_unblock(*, telegram_id: int, admin: AbstractBaseUser | None = None) -> TelegramUser:
    return _user_set_blocked(telegram_id=telegram_id, blocked=False, admin=admin)
