"""Sends the notices the admin and the refunds queue (payments.UserNotice): a change of
a user's balance that the user did not make. Runs beside the bill jobs, in the one bot
process that holds the instance lock, so each notice has one sender.

At most once: a notice is claimed (SENDING) before its message goes out and finished
after; one left SENDING by a process that died is marked UNKNOWN when the next sender
starts, and is not sent again.
"""

from __future__ import annotations

import asyncio

from aiogram import Bot
from aiogram.exceptions import AiogramError
from loguru import logger

from backend.bot import client, texts
from backend.common.outbox import mark_interrupted
from backend.log_setup import redact
from backend.payments import selectors, services
from backend.payments.models import UserNotice

Status = UserNotice.Status
BATCH = 100


def _text(notice: UserNotice) -> str:
    entry = notice.entry
    reason = entry.reason if notice.show_reason else ""
    return texts.notice(entry.kind, entry.amount, entry.balance_after, reason)


async def _send(bot: Bot, notice: UserNotice) -> tuple[Status, str]:
    user = notice.entry.user
    if user.is_blocked:
        return Status.SKIPPED, ""
    if user.bot_blocked_at is not None:
        return Status.BOT_BLOCKED, ""
    try:
        delivery = await client.deliver(bot, user.telegram_id, _text(notice))
    except AiogramError as e:  # Telegram's «no» (a 400): sending again would not help
        return Status.FAILED, redact(str(e))
    return client.outbox_outcome(delivery)


async def send_pending_notices(*, bot: Bot, limit: int = BATCH) -> int:
    """One round: the queued notices, oldest first; returns how many were handled."""
    done = 0
    for notice in await selectors.anotices_pending(limit=limit):
        if not await services.anotice_claim(notice_id=notice.pk):
            continue
        status, error = await _send(bot, notice)
        await services.anotice_finish(notice_id=notice.pk, status=status, error=error)
        logger.info(
            "notice {} to user {}: {}", notice.pk, notice.entry.user.telegram_id, status.label
        )
        done += 1
    return done


async def run_notice_sender(*, bot: Bot, interval: float) -> None:
    """Send queued notices every `interval` seconds, forever. A failed round (the
    database down) is logged and the next one runs as usual."""
    await mark_interrupted(services.anotices_interrupted, what="notices", interval=interval)
    while True:
        try:
            while await send_pending_notices(bot=bot) == BATCH:
                pass
        except Exception:
            logger.exception("notices: a round failed; retrying in {} s", interval)
        await asyncio.sleep(interval)
