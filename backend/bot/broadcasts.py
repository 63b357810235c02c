"""Sends the queued broadcasts (backend.broadcasts), beside the bill jobs, in the one bot
process that holds the instance lock: one sender across all processes and workers.

At most `rate` messages a second, spaced evenly, so no second ever holds more (Telegram
takes about 30 a second from a bot; the default 25 leaves room for the dialog's
replies). Each recipient gets at most one message: the delivery is claimed (SENDING)
before the message goes out and finished after; a pause or a cancel takes effect
before the next message; after a crash the sender resumes with the next recipient,
and the one whose message was in hand is UNKNOWN, not sent again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiogram import Bot
from aiogram.exceptions import AiogramError
from loguru import logger

from backend.bot import client, keyboards
from backend.broadcasts import selectors, services
from backend.broadcasts.models import Broadcast, Delivery
from backend.common.outbox import mark_interrupted
from backend.log_setup import redact

BATCH = 100
GIVE_WAY = 0.5  # seconds a message waits at most for the dialog's updates in hand
BUSY_LOOK = 0.01  # seconds between looks at them
Status = Delivery.Status


def window(rate: float) -> int:
    """Deliveries claimed at once: a twentieth of a second's worth (1 at the default 25
    a second, 50 at 1000)."""
    return max(1, int(rate // 20))


class Pacer:
    """Lets one message go every 1/`rate` seconds, never sooner, and not while `busy()`
    (the dialog's updates in hand: the users waiting for a reply go first), unless that
    has lasted `GIVE_WAY` seconds: a busy bot slows a broadcast down, never stops it."""

    def __init__(self, rate: float, busy: Callable[[], bool] = lambda: False) -> None:
        self._gap = 1.0 / rate
        self._next = 0.0
        self._busy = busy

    async def wait(self) -> None:
        now = time.monotonic()
        if self._next > now:
            await asyncio.sleep(self._next - now)
        given_way = time.monotonic() + GIVE_WAY
        while self._busy() and time.monotonic() < given_way:
            await asyncio.sleep(BUSY_LOOK)
        self._next = max(time.monotonic(), self._next) + self._gap


def _not_to_send(delivery: Delivery) -> Status | None:
    """Who gets nothing: blocked in the admin since the broadcast was queued, or gone
    (has blocked the bot)."""
    if delivery.user.is_blocked:
        return Status.SKIPPED
    if delivery.user.bot_blocked_at is not None:
        return Status.BOT_BLOCKED
    return None


async def _send(bot: Bot, broadcast: Broadcast, delivery: Delivery) -> tuple[Status, str]:
    markup = None
    if broadcast.button_url:
        markup = keyboards.link(broadcast.button_text, broadcast.button_url)
    chat_id = delivery.user.telegram_id
    try:
        sent = await client.deliver(bot, chat_id, broadcast.text, reply_markup=markup)
    except AiogramError as e:  # Telegram's «no» for this user (a 400): recorded, not retried
        return Status.FAILED, redact(str(e))
    return client.outbox_outcome(sent)


async def _still_running(broadcast_id: int) -> bool:
    current = await selectors.abroadcast_get(broadcast_id=broadcast_id)
    if current.status == Broadcast.Status.RUNNING:
        return True
    logger.info("broadcast {} is {}: stopped sending", broadcast_id, current.status)
    return False


async def send_broadcast(*, bot: Bot, broadcast: Broadcast, pacer: Pacer, window: int) -> None:
    """Send what is left of one RUNNING broadcast, until it is done, paused or cancelled.

    `window` deliveries at a time are claimed (SENDING) in one statement, then their
    messages go out at the pacer's spacing, each in a task of its own (so that Telegram's
    answer to one does not hold up the next), and their outcomes are written together.
    A crash leaves at most one window UNKNOWN: `window / rate` seconds of messages. A
    delivery is claimed only while its broadcast runs: a pause or a cancel stops the
    next window."""
    while await _still_running(broadcast.pk):
        batch = await selectors.adeliveries_pending(broadcast_id=broadcast.pk, limit=BATCH)
        if not batch:
            if await services.abroadcast_finish(broadcast_id=broadcast.pk):
                logger.info("broadcast {} done", broadcast.pk)
            return
        for start in range(0, len(batch), window):
            chunk = batch[start : start + window]
            claimed = await services.adeliveries_claim(
                broadcast_id=broadcast.pk, delivery_ids=[d.pk for d in chunk]
            )
            if not claimed:
                if not await _still_running(broadcast.pk):  # paused or cancelled
                    return
                continue
            await _send_window(bot, broadcast, [d for d in chunk if d.pk in claimed], pacer)


async def _send_window(
    bot: Bot, broadcast: Broadcast, deliveries: list[Delivery], pacer: Pacer
) -> None:
    skipped: list[tuple[int, Status, str]] = []
    sending: list[tuple[Delivery, asyncio.Task]] = []
    for delivery in deliveries:
        skip = _not_to_send(delivery)
        if skip is not None:
            skipped.append((delivery.pk, skip, ""))
            continue
        await pacer.wait()
        sending.append((delivery, asyncio.create_task(_send(bot, broadcast, delivery))))
    outcomes = list(skipped)
    for delivery, task in sending:
        status, error = await task
        outcomes.append((delivery.pk, status, error))
        if status != Status.SENT:
            logger.info(
                "broadcast {} to user {}: {}", broadcast.pk, delivery.user.telegram_id, status
            )
    await services.adeliveries_finish(outcomes=outcomes)


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
