"""Sending messages from outside a handler (the poller, reports to admins).

A 429 is waited out and the message sent again; a user who blocked the bot is
logged and skipped; other failures are retried a few times, then logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardMarkup, Message
from loguru import logger

from backend.bot import keyboards, metrics, texts
from backend.common.db import db_async
from backend.log_setup import redact
from backend.payments.models import Bill
from backend.payments.services import BillTransition
from backend.users.services import user_mark_bot_blocked

ATTEMPTS = 5
_mark_bot_blocked = db_async(user_mark_bot_blocked)
QUIET_STATUSES = (Bill.Status.NEW, Bill.Status.WAITING, Bill.Status.FAILED)


async def send(
    bot: Bot, chat_id: int, text: str, reply_markup: InlineKeyboardMarkup | None = None
) -> Message | None:
    delay = 1.0
    for attempt in range(1, ATTEMPTS + 1):
        try:  # a 429 is waited out below us, in backend.bot.session
            return await bot.send_message(chat_id, text, reply_markup=reply_markup)
        except TelegramForbiddenError:
            logger.warning("user {} has blocked the bot: message not delivered", chat_id)
            await _mark_bot_blocked(telegram_id=chat_id)
            return None
        except (TelegramServerError, TelegramNetworkError, ClientDecodeError) as e:
            if attempt == ATTEMPTS:
                break
            logger.warning("sending to {} failed ({}), retrying in {} s", chat_id, e, delay)
            await asyncio.sleep(delay)
            delay *= 2
    logger.error("message to {} not delivered after {} attempts", chat_id, ATTEMPTS)
    return None


def transition_message(transition: BillTransition) -> tuple[str, InlineKeyboardMarkup | None]:
    """The text (and keyboard) that tells a user what happened to a bill."""
    bill = transition.bill
    if transition.credited:
        return texts.bill_paid(bill.amount, transition.balance), None
    if transition.unknown_status:
        return texts.bill_unknown(transition.unknown_status), None
    match bill.status:
        case Bill.Status.PAID:
            return texts.BILL_ALREADY_PAID, None
        case Bill.Status.REJECTED:
            return texts.BILL_REJECTED, keyboards.start()
        case Bill.Status.EXPIRED:
            return texts.BILL_EXPIRED, keyboards.start()
        case Bill.Status.FAILED:
            return texts.BILL_ALREADY_CLOSED, keyboards.start()
    return texts.BILL_WAITING, None


class BillNotifier:
    """Tells the owner of a bill what the poller found; blocked users hear nothing.

    The one place where the bill jobs (the poller, the Telegram bills' expiry, the Stars
    reconciliation) report transitions: they are counted here (`metrics.bill_transition`)."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def __call__(self, transition: BillTransition) -> None:
        metrics.bill_transition(transition)
        bill, user = transition.bill, transition.bill.user
        if user.is_blocked:
            return
        if bill.status in QUIET_STATUSES and not transition.unknown_status:
            return  # a bill recovered after a crash in its creation: nothing to tell yet
        text, markup = transition_message(transition)
        await send(self._bot, user.telegram_id, text, reply_markup=markup)


async def report_to_admins(bot: Bot, admin_ids: Iterable[int], where: str, error: str) -> None:
    """A short note to each admin id; secrets are masked as in the logs."""
    text = texts.support_report(where, redact(error))
    await asyncio.gather(*(send(bot, admin_id, text) for admin_id in admin_ids))
