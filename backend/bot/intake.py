"""What the polling and the webhook intakes share: updates run as tasks, at most so many
at once, and a payment is reported settled only when its handler says so.

An update that carries money (a `successful_payment`) is acknowledged to Telegram only
after its credit is committed: the polling intake keeps getUpdates' offset below it, the
webhook answers its POST only then (a non-2xx makes Telegram deliver it again). The
handler's PAYMENT_SETTLED is the sign: anything else, an exception included, means the
credit may not have happened, and Telegram must keep the update.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextlib import suppress
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from loguru import logger

# What the successful-payment handler returns when the payment is settled for good.
PAYMENT_SETTLED = "payment settled"
STOP_GRACE = 10.0  # seconds the updates in hand get to finish when the bot stops


def carries_money(update: Update) -> bool:
    """An update whose effect is a credit: acknowledged only once that is committed."""
    message = update.message
    return message is not None and message.successful_payment is not None


class UpdateRunner:
    """Feeds updates to `dp` as tasks, at most `concurrency` at once (the rest wait for a
    slot, and so, through the intake, at Telegram)."""

    def __init__(self, *, bot: Bot, dp: Dispatcher, concurrency: int, **data: Any) -> None:
        self.bot, self.dp, self.data = bot, dp, data
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task] = set()

    @property
    def busy(self) -> bool:
        """Updates are in hand (the broadcasts give way to them)."""
        return bool(self._tasks)

    async def spawn(self, work: Awaitable[Any]) -> asyncio.Task:
        """Run `work` in a task once a slot is free."""
        await self._slots.acquire()
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._slots.release())
        return task

    async def handle(self, update: Update) -> Any:
        """The update through the dispatcher; its result, or None when it failed (the
        errors router has told the user and the admins what it could)."""
        try:
            return await self.dp.feed_update(self.bot, update, **self.data)
        except Exception:
            logger.exception("update {} failed", update.update_id)
            return None

    async def settled(self, update: Update) -> bool:
        """Handle a payment once; True when its credit is settled."""
        if await self.handle(update) == PAYMENT_SETTLED:
            return True
        logger.error("payment update {} not settled: Telegram keeps it", update.update_id)
        return False

    async def finish(self, grace: float = STOP_GRACE) -> None:
        """Let the updates in hand finish for `grace` seconds; cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in pending:
            task.cancel()
        for task in pending:
            with suppress(asyncio.CancelledError, Exception):
                await task
