"""Long polling that acknowledges a payment to Telegram only after it is credited.

aiogram's own polling moves `getUpdates`' offset past an update as soon as it has been
handed to a task, so the next request confirms it to Telegram while its handler may still
wait for the database. Killed then, the bot would never see that `successful_payment`
again, and Telegram keeps no list of provider payments to look it up: the buyer paid and
got nothing. Here the offset stops at the oldest payment whose handler has not settled
it (credited, found credited already, or reported as a mismatch); updates after it are
still taken and handled at once, and skipped when Telegram sends them again. A payment
whose handler failed is tried again until it settles or the bot stops; a bot stopped or
killed before that gets it again from Telegram after a restart.
"""

from __future__ import annotations

import asyncio
import signal
from contextlib import suppress
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import GetUpdates
from aiogram.types import Update
from aiogram.utils.backoff import Backoff, BackoffConfig
from loguru import logger

from backend.bot.intake import UpdateRunner, carries_money

POLL_TIMEOUT = 10  # seconds Telegram holds a getUpdates open
_BACKOFF = BackoffConfig(min_delay=1.0, max_delay=30.0, factor=2.0, jitter=0.1)


class PollingIntake:
    """Takes updates from `getUpdates` into `dp`, at most `concurrency` at once.

    Stopping (`stopping` set, or SIGTERM/SIGINT with `handle_signals`) ends it: no new
    updates are taken, the ones in hand get a grace period, and Telegram is told which
    were handled (the unsettled payments excluded).
    """

    def __init__(
        self,
        *,
        bot: Bot,
        dp: Dispatcher,
        concurrency: int,
        allowed_updates: list[str],
        stopping: asyncio.Event,
        **data: Any,
    ) -> None:
        self.bot = bot
        self.allowed_updates = allowed_updates
        self.runner = UpdateRunner(bot=bot, dp=dp, concurrency=concurrency, **data)
        self._stopping = stopping
        self._unsettled: dict[int, asyncio.Task] = {}  # payments by update id
        self._next_id = 0  # every update below this id has been taken

    @property
    def offset(self) -> int:
        """What getUpdates confirms: everything below the oldest unsettled payment."""
        return min(self._unsettled, default=self._next_id)

    async def run(self) -> None:
        try:
            await self._take()
        finally:
            await self.runner.finish()
            if self.offset:
                with suppress(Exception):  # a courtesy: unconfirmed updates only come again
                    await self.bot(GetUpdates(offset=self.offset, limit=1, timeout=0))

    async def _take(self) -> None:
        backoff = Backoff(config=_BACKOFF)
        failed = False
        while not self._stopping.is_set():
            try:
                updates = await self._until_stopped(self._get_updates())
            except Exception as e:  # the network, Telegram: polling goes on regardless
                failed = True
                logger.warning(
                    "getUpdates failed ({}: {}); retrying in {:.0f} s",
                    type(e).__name__, e, backoff.next_delay,
                )  # fmt: skip
                await self._until_stopped(backoff.asleep())
                continue
            if updates is None:  # stopping
                return
            if failed:
                logger.info("getUpdates answers again")
                backoff.reset()
                failed = False
            fresh = [u for u in updates if u.update_id >= self._next_id]
            for update in fresh:
                if await self._until_stopped(self._start(update)) is None:
                    return
            if self._unsettled and not fresh:
                # Telegram answers at once with the held payment: wait for it a little.
                await asyncio.wait(
                    [*self._unsettled.values(), asyncio.ensure_future(self._stopping.wait())],
                    timeout=1.0,
                    return_when=asyncio.FIRST_COMPLETED,
                )

    async def _get_updates(self) -> list[Update]:
        method = GetUpdates(
            offset=self.offset or None,
            timeout=0 if self._unsettled else POLL_TIMEOUT,
            allowed_updates=self.allowed_updates,
        )
        timeout = int((self.bot.session.timeout or 60) + POLL_TIMEOUT)
        return await self.bot(method, request_timeout=timeout)

    async def _until_stopped(self, work: Any) -> Any:
        """`work`'s result, or None when the intake is stopped first (work cancelled)."""
        task = asyncio.ensure_future(work)
        stopping = asyncio.ensure_future(self._stopping.wait())
        done, _ = await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            stopping.cancel()
            return task.result()
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        return None

    async def _start(self, update: Update) -> bool:
        if not carries_money(update):
            await self.runner.spawn(self.runner.handle(update))
        else:
            task = await self.runner.spawn(self._settle(update))
            self._unsettled[update.update_id] = task
            task.add_done_callback(lambda t, uid=update.update_id: self._settled(uid, t))
        self._next_id = update.update_id + 1
        return True

    def _settled(self, update_id: int, task: asyncio.Task) -> None:
        if not task.cancelled() and task.result():
            del self._unsettled[update_id]

    async def _settle(self, update: Update) -> bool:
        """Handle a payment until it is settled; False if the bot stops first (the
        offset stays below it, and Telegram sends it again)."""
        backoff = Backoff(config=_BACKOFF)
        while not await self.runner.settled(update):
            if self._stopping.is_set():
                return False
            await self._until_stopped(backoff.asleep())
        return True


def install_stop_signals(stopping: asyncio.Event) -> None:
    """SIGTERM and SIGINT set `stopping` (once polling or serving has begun)."""
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        logger.info("{} received: stopping", sig.name)
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)


def remove_stop_signals() -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
