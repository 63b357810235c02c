"""Telegram Payments: the pre-checkout answer and the successful payment.

Both come as updates (the provider is never polled). The pre-checkout query must be
answered within 10 seconds, so it is one read; the successful payment is credited once
per Telegram charge id however often the update comes.
"""

from aiogram import Bot, Router
from aiogram.types import Message, PreCheckoutQuery
from loguru import logger

from backend.bot import client, texts
from backend.bot.config import BotConfig
from backend.bot.intake import PAYMENT_SETTLED
from backend.common import metrics
from backend.payments import selectors, services
from backend.users.models import TelegramUser


async def pre_checkout(query: PreCheckoutQuery, db_user: TelegramUser) -> None:
    if db_user.is_blocked:
        await query.answer(ok=False, error_message=texts.PAYMENT_REFUSED_BLOCKED)
        return
    error = await selectors.abill_payable_error(
        bill_id=query.invoice_payload,
        telegram_id=query.from_user.id,
        currency=query.currency,
        total=query.total_amount,
    )
    if error is None:
        await query.answer(ok=True)
        return
    logger.warning("pre-checkout of bill {!r} refused: {}", query.invoice_payload[:64], error)
    await query.answer(ok=False, error_message=texts.payment_refused(error))


async def paid(message: Message, bot: Bot, db_user: TelegramUser, config: BotConfig) -> str:
    """Credit the payment; PAYMENT_SETTLED tells the intake that Telegram may forget the
    update (anything else, an exception included, keeps it: see backend.bot.polling)."""
    payment = message.successful_payment
    assert payment is not None  # the filter
    transition = await services.abill_pay_reported(
        bill_id=payment.invoice_payload,
        telegram_id=message.chat.id,
        currency=payment.currency,
        total=payment.total_amount,
        charge_id=payment.telegram_payment_charge_id,
        provider_charge_id=payment.provider_payment_charge_id or "",
    )
    metrics.bill_transition(transition)
    if transition.mismatch:  # money taken for no bill of ours: people must look at it
        await client.report_to_admins(
            bot,
            config.admin_ids,
            f"платёж Telegram {payment.telegram_payment_charge_id} не зачислен",
            f"счёт {payment.invoice_payload[:64]!r}, {payment.total_amount} {payment.currency}",
        )
        await client.send(bot, message.chat.id, texts.SUPPORT)
        return PAYMENT_SETTLED
    if not transition.credited or db_user.is_blocked:
        return PAYMENT_SETTLED  # the same payment once more, or a user the bot ignores
    text, markup = client.transition_message(transition)
    await client.send(bot, message.chat.id, text, reply_markup=markup)
    return PAYMENT_SETTLED


async def is_successful_payment(message: Message) -> bool:
    """The filter of `paid`, a coroutine: aiogram runs a plain function's filter (a magic
    `F.successful_payment` too) in a thread, a hop every message would pay for."""
    return message.successful_payment is not None


def build_router() -> Router:
    router = Router(name="telegram_payments")
    router.pre_checkout_query.register(pre_checkout)
    router.message.register(paid, is_successful_payment)
    return router
