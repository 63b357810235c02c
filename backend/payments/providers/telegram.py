"""Telegram Payments: invoices in Telegram Stars (currency XTR, no provider token) or
through a payment provider connected in @BotFather (a provider token; RUB and others).

Telegram is never asked about an invoice: it tells the bot. A user who presses «Pay»
brings a `pre_checkout_query` (the bot has 10 seconds to say yes or no), then a
`successful_payment` message. So this provider is not polled, and the bill's final
statuses come from those updates (see backend.bot.handlers.telegram_payments).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from aiogram import Bot
from aiogram.exceptions import AiogramError, TelegramBadRequest
from aiogram.types import LabeledPrice

from backend.payments.providers.base import (
    ProviderBill,
    ProviderError,
    ProviderRefused,
    Quote,
    currency_exponent,
)

STARS = "XTR"
INVOICE_TITLE = "Пополнение баланса"


@dataclass(frozen=True)
class TelegramPaymentsProvider:
    bot: Bot
    provider_token: str  # empty: Telegram Stars
    currency: str  # of a provider token's invoices
    rubles_per_star: Decimal
    name: str = "telegram"
    polled: bool = False

    def quote(self, *, amount: Decimal) -> Quote:
        """What an invoice for `amount` rubles will ask: N rubles in Stars are
        ceil(N / RUBLES_PER_STAR) stars; through a provider, the amount itself."""
        if not self.provider_token:
            return Quote(currency=STARS, total=math.ceil(amount / self.rubles_per_star))
        exponent = currency_exponent(self.currency)
        return Quote(currency=self.currency, total=int(amount.scaleb(exponent)))

    async def create_bill(
        self,
        *,
        bill_id: str,
        amount: Decimal,
        currency: str,
        expires_at: datetime,
        comment: str,
        telegram_id: int,
    ) -> ProviderBill:
        """Sends the invoice to the user: it is the payment form, so there is no link."""
        quote = self.quote(amount=amount)
        try:
            message = await self.bot.send_invoice(
                chat_id=telegram_id,
                title=INVOICE_TITLE,
                description=comment,
                payload=bill_id,  # our id: 32 characters, within Telegram's 128 bytes
                provider_token=self.provider_token or None,
                currency=quote.currency,
                prices=[LabeledPrice(label=INVOICE_TITLE, amount=quote.total)],
            )
        except AiogramError as e:
            raise ProviderError(f"sendInvoice failed: {e}") from None
        return ProviderBill(
            bill_id=bill_id,
            status="WAITING",
            amount=amount,
            currency=currency,
            pay_url="",
            raw=message.model_dump(mode="json", exclude_none=True),
            quote=quote,
        )

    async def get_bill(self, *, bill_id: str) -> ProviderBill:
        raise ProviderError("Telegram is not asked about invoices: it reports payments")

    async def reject_bill(self, *, bill_id: str) -> ProviderBill:
        raise ProviderError("a Telegram invoice cannot be withdrawn; its payment is refused")

    async def refund(self, *, telegram_id: int, charge_id: str) -> None:
        """Give the stars of one payment back (refundStarPayment). ProviderRefused: Telegram
        said no (e.g. CHARGE_ALREADY_REFUNDED); ProviderError: no clear answer."""
        try:
            await self.bot.refund_star_payment(
                user_id=telegram_id, telegram_payment_charge_id=charge_id
            )
        except TelegramBadRequest as e:
            raise ProviderRefused(e.message) from None
        except AiogramError as e:
            raise ProviderError(f"refundStarPayment failed: {e}") from None

    async def close(self) -> None:
        """The bot's session belongs to whoever made the bot."""
