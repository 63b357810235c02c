import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User
from loguru import logger

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


class FloodGuard(BaseMiddleware):
    """At most `rate` updates a second from one user, with bursts up to `burst`; the rest
    are dropped before they cost a database call, so one flooding user cannot slow the
    others down. Runs before UserMiddleware."""

    def __init__(self, *, rate: float = 2.0, burst: int = 10, max_users: int = 100_000) -> None:
        self._rate, self._burst, self._max_users = rate, float(burst), max_users
        self._buckets: dict[int, tuple[float, float]] = {}  # user id → (tokens, time)

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        sender: User | None = data.get("event_from_user")
        if sender is None:
            return await handler(event, data)
        now = time.monotonic()
        tokens, then = self._buckets.get(sender.id, (self._burst, now))
        tokens = min(self._burst, tokens + (now - then) * self._rate)
        if tokens < 1:
            self._buckets[sender.id] = (tokens, now)
            logger.debug("flood from user {}: update dropped", sender.id)
            return None
        if len(self._buckets) >= self._max_users:
            self._buckets.clear()  # forget everyone at once: cheap, and harmless
        self._buckets[sender.id] = (tokens - 1, now)
        return await handler(event, data)
