import itertools
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update, User
from aiogram.types.update import UpdateTypeLookupError
from loguru import logger

from backend.common import metrics
from backend.users.models import TelegramUser
from backend.users.selectors import auser_get
from backend.users.services import auser_upsert


def is_payment(event: TelegramObject) -> bool:
    """Updates about money: never dropped. A payment is credited even to a blocked user or
    in a flood, and a pre-checkout gets its answer (a refusal for blocked users)."""
    if not isinstance(event, Update):
        return False
    message = event.message
    return event.pre_checkout_query is not None or (
        message is not None and message.successful_payment is not None
    )


class UserMiddleware(BaseMiddleware):
    """Records the sender and stops here for blocked users: they get no reaction at all.

    The handler receives the stored user as `db_user`. A new user, or one whose names
    changed, costs one upsert; a known one only a read of the stored row (so a block
    from the admin counts from the next update on), and a write at most every
    `touch_every` seconds to move `last_seen_at` (that is its precision).
    """

    def __init__(self, *, touch_every: float = 60.0, max_users: int = 100_000) -> None:
        self._touch_every, self._max_users = touch_every, max_users
        # telegram id → (names as last written, monotonic time of that write); oldest first
        self._written: dict[int, tuple[tuple[str | None, ...], float]] = {}

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        sender: User | None = data.get("event_from_user")
        if sender is None or sender.is_bot:
            return None
        db_user = await self._user(sender)
        if db_user.is_blocked and not is_payment(event):
            return None
        data["db_user"] = db_user
        return await handler(event, data)

    async def _user(self, sender: User) -> TelegramUser:
        profile = (sender.username, sender.first_name, sender.last_name, sender.language_code)
        profile_written, written_at = self._written.get(sender.id, (None, -math.inf))
        if profile_written == profile and time.monotonic() - written_at < self._touch_every:
            stored = await auser_get(telegram_id=sender.id)
            if stored is not None and stored.bot_blocked_at is None:
                return stored
        user = await auser_upsert(
            telegram_id=sender.id,
            username=sender.username,
            first_name=sender.first_name,
            last_name=sender.last_name,
            language_code=sender.language_code,
        )
        now = time.monotonic()
        self._written.pop(sender.id, None)
        self._written[sender.id] = (profile, now)
        self._forget_old(now)
        return user

    def _forget_old(self, now: float) -> None:
        """Entries past `touch_every` are of no use any more; the oldest come first."""
        written = self._written
        for telegram_id in list(itertools.islice(written, 64)):
            if (
                now - written[telegram_id][1] < self._touch_every
                and len(written) <= self._max_users
            ):
                break
            del written[telegram_id]


class FloodLimit(Protocol):
    async def allow(self, user_id: int) -> bool: ...


class MemoryFloodLimit:
    """A token bucket per user in this process: `rate` updates a second on average,
    bursts up to `burst`."""

    def __init__(self, *, rate: float = 2.0, burst: int = 10, max_users: int = 100_000) -> None:
        self._rate, self._burst, self._max_users = rate, float(burst), max_users
        self._buckets: dict[int, tuple[float, float]] = {}  # user id → (tokens, time)

    async def allow(self, user_id: int) -> bool:
        now = time.monotonic()
        tokens, then = self._buckets.get(user_id, (self._burst, now))
        tokens = min(self._burst, tokens + (now - then) * self._rate)
        if tokens < 1:
            self._buckets[user_id] = (tokens, now)
            return False
        if len(self._buckets) >= self._max_users:
            self._buckets.clear()  # forget everyone at once: cheap, and harmless
        self._buckets[user_id] = (tokens - 1, now)
        return True


class FloodGuard(BaseMiddleware):
    """At most so many updates a second from one user (`limit`); the rest are dropped
    before they cost a database call, so one flooding user cannot slow the others down.
    Payments are never dropped. Runs before UserMiddleware."""

    def __init__(self, limit: FloodLimit) -> None:
        self._limit = limit

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        sender: User | None = data.get("event_from_user")
        if sender is None or is_payment(event):
            return await handler(event, data)
        if not await self._limit.allow(sender.id):
            logger.debug("flood from user {}: update dropped", sender.id)
            return None
        return await handler(event, data)


class UpdateMetrics(BaseMiddleware):
    """Counts every update by its type (`topup_updates_total`), and those whose
    middlewares or handlers raised (`topup_update_errors_total`); the exception goes on
    to the error handler. The outermost of ours: dropped updates are counted too."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        try:
            update_type = event.event_type if isinstance(event, Update) else "unknown"
        except UpdateTypeLookupError:
            update_type = "unknown"
        try:
            result = await handler(event, data)
        except Exception:
            metrics.count_update(update_type, failed=True)
            raise
        metrics.count_update(update_type)
        return result
