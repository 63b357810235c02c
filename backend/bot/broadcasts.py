"""Sends the queued broadcasts (backend.broadcasts), beside the bill jobs, in the one bot
process that holds the instance lock: one sender across all processes and workers.

At most `rate` messages a second (Telegram takes about 30 a second from a bot; the
default 25 leaves room for the dialog's replies): evenly spaced, and never more than
`rate` of them in any second, however it is slid; time lost to a stall is made up
only within that bound. Each recipient gets at most one message: the deliveries are
claimed (SENDING) a window at a time before their messages go out, and finished
after. The next window is claimed while the last one's answers come back and its
outcomes are written, but never more than two windows are claimed and unfinished:
a crash leaves at most `2 × window(rate)` deliveries UNKNOWN (never sent again; a
tenth of a second's worth at 1000 a second, 2 at the default 25), and a pause or a
cancel takes effect from the next window claimed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from aiogram import Bot
from aiogram.exceptions import AiogramError
from loguru import logger

from backend.bot import client, keyboards
from backend.broadcasts import selectors, services
from backend.broadcasts.models import Broadcast, Delivery
from backend.broadcasts.services import Claimed
from backend.common.outbox import mark_interrupted
from backend.log_setup import redact

IN_FLIGHT = 2  # windows claimed and not yet finished, at most
GIVE_WAY = 0.5  # seconds a message waits at most for the dialog's updates in hand
BUSY_LOOK = 0.01  # seconds between looks at them
CATCH_UP = 0.05  # seconds behind the schedule a pacer makes up; more is lost
Status = Delivery.Status
Outcome = tuple[int, Status, str]  # a delivery's id, status and error


def window(rate: float) -> int:
    """Deliveries claimed at once: a twentieth of a second's worth (1 at the default 25
    a second, 50 at 1000)."""
    return max(1, int(rate // 20))


class Pacer:
    """Lets a message go every 1/`rate` seconds on a schedule kept from the first, so
    that a late wake-up is made up (up to `CATCH_UP` seconds late), yet never more than
    `rate` messages in any second: the one after the last `rate` waits till a second
    after the first of them.

    Not while `busy()` (the dialog's updates in hand: the users waiting for a reply go
    first), unless that has lasted `GIVE_WAY` seconds: a busy bot slows a broadcast
    down, never stops it. Time given way is not made up."""

    def __init__(self, rate: float, busy: Callable[[], bool] = lambda: False) -> None:
        self._gap = 1.0 / rate
        self._recent: deque[float] = deque(maxlen=max(1, int(rate)))  # the last sends
        self._slot = 0.0  # when the next message is due
        self._busy = busy

    async def wait(self) -> None:
        now = time.monotonic()
        slot = self._slot if now - self._slot <= CATCH_UP else now
        if len(self._recent) == self._recent.maxlen:
            slot = max(slot, self._recent[0] + 1.0)
        while now < slot:
            await asyncio.sleep(slot - now)
            now = time.monotonic()
        if await self.give_way():
            slot = now = time.monotonic()
        self._recent.append(now)
        self._slot = slot + self._gap

    async def give_way(self) -> bool:
        """Wait while `busy()`, up to `GIVE_WAY` seconds; True if it was."""
        if not self._busy():
            return False
        given_way = time.monotonic() + GIVE_WAY
        while self._busy() and time.monotonic() < given_way:
            await asyncio.sleep(BUSY_LOOK)
        return True


async def _send(bot: Bot, message: client.PreparedMessage, chat_id: int) -> tuple[Status, str]:
    try:
        sent = await client.deliver_prepared(bot, message, chat_id)
    except AiogramError as e:  # Telegram's «no» for this user (a 400): recorded, not retried
        return Status.FAILED, redact(str(e))
    return client.outbox_outcome(sent)


async def send_broadcast(*, bot: Bot, broadcast: Broadcast, pacer: Pacer, window: int) -> None:
    """Send what is left of one RUNNING broadcast, until it is done, paused or cancelled.

    `window` deliveries at a time are claimed (SENDING) in one statement; their messages
    go out at the pacer's spacing, each in a task of its own (so that Telegram's answer
    to one does not hold up the next), and their outcomes are written together in the
    background while the next window is claimed and sent: at most `IN_FLIGHT` windows
    are claimed and unfinished. A delivery is claimed only while its broadcast runs: a
    pause or a cancel stops the next window."""
    markup = None
    if broadcast.button_url:
        markup = keyboards.link(broadcast.button_text, broadcast.button_url)
    message = client.prepare_message(bot, broadcast.text, reply_markup=markup)
    in_flight = asyncio.Semaphore(IN_FLIGHT)
    finishing: set[asyncio.Task] = set()
    try:
        while True:
            await in_flight.acquire()
            claimed = await services.adeliveries_claim(broadcast_id=broadcast.pk, limit=window)
            if not claimed:
                in_flight.release()
                break
            skipped, sending = await _send_window(bot, message, claimed, pacer)
            task = asyncio.create_task(_finish_window(broadcast.pk, skipped, sending, in_flight))
            finishing.add(task)
            task.add_done_callback(finishing.discard)
    except asyncio.CancelledError:
        for task in finishing:
            task.cancel()
        raise
    finally:
        await asyncio.gather(*finishing, return_exceptions=True)
    if claimed is None:
        current = await selectors.abroadcast_get(broadcast_id=broadcast.pk)
        logger.info("broadcast {} is {}: stopped sending", broadcast.pk, current.status)
    elif await services.abroadcast_finish(broadcast_id=broadcast.pk):
        logger.info("broadcast {} done", broadcast.pk)


async def _send_window(
    bot: Bot, message: client.PreparedMessage, claimed: list[Claimed], pacer: Pacer
) -> tuple[list[Outcome], list[tuple[Claimed, asyncio.Task]]]:
    """Start each claimed delivery's message at the pacer's time; those who get nothing
    (blocked in the admin since the broadcast was queued, or gone: have blocked the bot)
    are outcomes at once."""
    skipped: list[Outcome] = []
    sending: list[tuple[Claimed, asyncio.Task]] = []
    for delivery in claimed:
        if delivery.user_blocked:
            skipped.append((delivery.delivery_id, Status.SKIPPED, ""))
        elif delivery.bot_blocked:
            skipped.append((delivery.delivery_id, Status.BOT_BLOCKED, ""))
        else:
            await pacer.wait()
            task = asyncio.create_task(_send(bot, message, delivery.telegram_id))
            sending.append((delivery, task))
    return skipped, sending


async def _finish_window(
    broadcast_id: int,
    outcomes: list[Outcome],
    sending: list[tuple[Claimed, asyncio.Task]],
    in_flight: asyncio.Semaphore,
) -> None:
    """Wait for the window's answers and write its outcomes; then the next may be claimed."""
    try:
        results = await asyncio.gather(*(task for _, task in sending), return_exceptions=True)
        for (delivery, _), result in zip(sending, results, strict=True):
            if isinstance(result, BaseException):
                result = (Status.FAILED, redact(repr(result)))
            status, error = result
            outcomes.append((delivery.delivery_id, status, error))
            if status != Status.SENT:
                logger.info(
                    "broadcast {} to user {}: {}", broadcast_id, delivery.telegram_id, status
                )
        await services.adeliveries_finish(outcomes=outcomes)
    except Exception:
        logger.exception(
            "broadcast {}: outcomes not written (SENDING till a restart)", broadcast_id
        )
    finally:
        in_flight.release()


async def run_broadcast_sender(
    *, bot: Bot, rate: float, interval: float, busy: Callable[[], bool] = lambda: False
) -> None:
    """Look for a broadcast to send every `interval` seconds and send it, forever. A
    failed round (the database down) is logged and tried again. While `busy()` (updates
    in hand) each message waits for them, up to `GIVE_WAY` seconds."""
    pacer = Pacer(rate, busy=busy)
    await mark_interrupted(services.adeliveries_interrupted, what="broadcasts", interval=interval)
    while True:
        try:
            broadcast = await services.abroadcast_next()
            if broadcast is not None:
                logger.info("broadcast {}: sending at {} a second", broadcast.pk, rate)
                await send_broadcast(bot=bot, broadcast=broadcast, pacer=pacer, window=window(rate))
                continue
        except Exception:
            logger.exception("broadcasts: a round failed; retrying in {} s", interval)
        await asyncio.sleep(interval)
