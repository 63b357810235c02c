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

# What the successful-payment handler returns when the payment is settled for good.
PAYMENT_SETTLED = "payment settled"
POLL_TIMEOUT = 10  # seconds Telegram holds a getUpdates open
STOP_GRACE = 10.0  # seconds the updates in hand get to finish when the bot stops
_BACKOFF = BackoffConfig(min_delay=1.0, max_delay=30.0, factor=2.0, jitter=0.1)


def carries_money(update: Update) -> bool:
    """An update whose effect is a credit: acknowledged only once that is committed."""
    message = update.message
    return message is not None and message.successful_payment is not None


class Intake:
    """Takes updates from `getUpdates` into `dp`, at most `concurrency` at once.

    `stop()` ends the intake: no new updates are taken, the ones in hand get STOP_GRACE
    seconds, and Telegram is told which were handled (the unsettled payments excluded).
    """

    def __init__(
        self,
        *,
        bot: Bot,
        dp: Dispatcher,
        concurrency: int,
        allowed_updates: list[str],
        stopping: asyncio.Event | None = None,
        **workflow_data: Any,
    ) -> None:
        self.bot, self.dp = bot, dp
        self.allowed_updates = allowed_updates
        self.workflow_data = workflow_data
        self._slots = asyncio.Semaphore(concurrency)
        self._stopping = stopping or asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._unsettled: dict[int, asyncio.Task] = {}  # payments by update id
        self._next_id = 0  # every update below this id has been taken

    def stop(self) -> None:
        self._stopping.set()

    @property
    def offset(self) -> int:
        """What getUpdates confirms: everything below the oldest unsettled payment."""
        return min(self._unsettled, default=self._next_id)

    async def run(self, *, handle_signals: bool = True) -> None:
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            await self._take()
        finally:
            if handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            await self._finish()

    def _on_signal(self, sig: signal.Signals) -> None:
        logger.info("{} received: stopping", sig.name)
        self.stop()

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
                if await self._until_stopped(self._slots.acquire()) is None:
                    return
                self._start(update)
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

    def _start(self, update: Update) -> None:
        self._next_id = update.update_id + 1
        if carries_money(update):
            task = asyncio.create_task(self._settle(update))
            self._unsettled[update.update_id] = task
            task.add_done_callback(lambda t, uid=update.update_id: self._settled(uid, t))
        else:
            task = asyncio.create_task(self._handle(update))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._slots.release())

    def _settled(self, update_id: int, task: asyncio.Task) -> None:
        if not task.cancelled() and task.result():
            del self._unsettled[update_id]

    async def _handle(self, update: Update) -> Any:
        try:
            return await self.dp.feed_update(self.bot, update, **self.workflow_data)
        except Exception:  # the errors router has reported what it could
            logger.exception("update {} failed", update.update_id)
            return None

    async def _settle(self, update: Update) -> bool:
        """Handle a payment until its handler says it is settled; False if the bot
        stops first (the offset stays below it, and Telegram sends it again)."""
        backoff = Backoff(config=_BACKOFF)
        while True:
            if await self._handle(update) == PAYMENT_SETTLED:
                return True
            logger.error(
                "payment update {} not settled: trying again in {:.0f} s",
                update.update_id, backoff.next_delay,
            )  # fmt: skip
            if self._stopping.is_set():
                return False
            await self._until_stopped(backoff.asleep())

    async def _finish(self) -> None:
        """Let the updates in hand finish, then confirm to Telegram what was handled."""
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
            for task in pending:
                with suppress(asyncio.CancelledError, Exception):
                    await task
        if self.offset:
            with suppress(Exception):  # a courtesy: unconfirmed updates only come again
                await self.bot(GetUpdates(offset=self.offset, limit=1, timeout=0))
