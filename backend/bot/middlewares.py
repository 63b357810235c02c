from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User

from backend.common.db import db_async
from backend.users.services import user_upsert

_upsert = db_async(user_upsert)


class UserMiddleware(BaseMiddleware):
    """Records the sender and stops here for blocked users: they get no reaction at all.

    The handler receives the stored user as `db_user`.
    """

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        sender: User | None = data.get("event_from_user")
        if sender is None or sender.is_bot:
            return None
        db_user = await _upsert(
            telegram_id=sender.id,
            username=sender.username,
            first_name=sender.first_name,
            last_name=sender.last_name,
            language_code=sender.language_code,
        )
        if db_user.is_blocked:
            return None
        data["db_user"] = db_user
        return await handler(event, data)
