from django.db.models import Q, QuerySet

from backend.common.casefold import FoldedStartsWith  # noqa: F401 (registers the lookup)
from backend.common.db import db_async
from backend.users.models import TelegramUser


def users_search(*, queryset: QuerySet[TelegramUser], term: str) -> QuerySet[TelegramUser]:
    """Digits find the exact Telegram id; anything else the start of a username or name
    (a leading @ is ignored), in any case of any alphabet on every database
    (`foldstartswith`). Prefix searches keep to the indexes."""
    term = term.strip()
    if not term:
        return queryset
    if term.lstrip("-").isdigit() and len(term) <= 19:
        return queryset.filter(telegram_id=int(term))
    term = term.removeprefix("@")
    return queryset.filter(
        Q(username__foldstartswith=term)
        | Q(first_name__foldstartswith=term)
        | Q(last_name__foldstartswith=term)
    )


def user_get(*, telegram_id: int) -> TelegramUser | None:
    return TelegramUser.objects.filter(telegram_id=telegram_id).first()


# For async code: one read, safe to repeat on a new connection (backend.common.db).
auser_get = db_async(user_get, idempotent=True)
