from collections.abc import Iterator

from backend.users.models import TelegramUser

EXPORT_FIELDS = (
    "telegram_id",
    "username",
    "first_name",
    "last_name",
    "balance",
    "is_blocked",
    "created_at",
)


def user_get(*, telegram_id: int) -> TelegramUser | None:
    return TelegramUser.objects.filter(telegram_id=telegram_id).first()


def users_for_export() -> Iterator[tuple]:
    """Rows of EXPORT_FIELDS, streamed from the database in chunks."""
    return TelegramUser.objects.order_by("id").values_list(*EXPORT_FIELDS).iterator(chunk_size=2000)
