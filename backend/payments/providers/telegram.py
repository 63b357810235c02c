"""Telegram Payments: invoices in Telegram Stars (currency XTR, no provider token) or
through a payment provider connected in @BotFather (a provider token; RUB and others).

Telegram is never asked about an invoice: it tells the bot. A user who presses «Pay»
brings a `pre_checkout_query` (the bot has 10 seconds to say yes or no), then a
`successful_payment` message. So this provider is not polled (not a `PolledProvider`), and
the bill's final statuses come from those updates (see backend.bot.handlers.telegram_payments).

A Stars payment can also be read back afterwards: `star_payments` lists the bot's
incoming Stars payments (getStarTransactions), so a payment whose update was lost can
still be credited (backend.payments.reconcile). Payments through a provider token are
listed by no Bot API call.

Fiscal receipts (54-ФЗ) through a provider token whose provider is YooKassa
(TELEGRAM_PAYMENTS_RECEIPTS): the invoice asks the user for an e-mail (`need_email`),
hands it to YooKassa (`send_email_to_provider`), and carries the receipt in
`provider_data` ({"receipt": {...}}, YooKassa's shape for Telegram payments). Not for
Stars: Telegram takes no provider data there (runbot refuses that combination).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from aiogram import Bot
from aiogram.exceptions import AiogramError, TelegramBadRequest
from aiogram.types import LabeledPrice, StarTransaction, TransactionPartnerUser

from backend.payments.providers.base import (
    ProviderBill,
    ProviderError,
    ProviderRefused,
    Quote,
    currency_exponent,
)
from backend.payments.receipts import ReceiptSettings
from backend.payments.vocabulary import STARS_CURRENCY, BillStatus, ProviderName

INVOICE_TITLE = "Пополнение баланса"
STAR_TRANSACTIONS_PAGE = 100  # getStarTransactions' largest `limit`
STAR_TRANSACTIONS_MAX_PAGES = 10


@dataclass(frozen=True)
class StarPayment:
    """A user's payment of one of the bot's invoices in Telegram Stars, as
    getStarTransactions lists it."""

    charge_id: str  # the transaction's id: the payment's telegram_payment_charge_id
    telegram_id: int  # who paid
    payload: str  # the invoice's payload: our bill id, if the invoice was ours
    stars: int  # whole stars the transaction brought
    date: datetime
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class StarPayments:
    """What `star_payments` read, newest first. `complete`: the read went back to
    `since` (or to the bot's first transaction); if not, it stopped at `max_pages` and
    older payments were not looked at."""

    payments: tuple[StarPayment, ...]
    complete: bool
    pages: int


@dataclass(frozen=True)
class TelegramPaymentsProvider:
    bot: Bot
    provider_token: str  # empty: Telegram Stars
    currency: str  # of a provider token's invoices
    rubles_per_star: Decimal
    receipts: ReceiptSettings | None = None  # a receipt in every provider-token invoice
    name: ProviderName = ProviderName.TELEGRAM
    # Telegram asks the user for the receipt's e-mail itself (`need_email`).
    needs_receipt_contact: ClassVar[bool] = False

    def quote(self, *, amount: Decimal) -> Quote:
        """What an invoice for `amount` rubles will ask: N rubles in Stars are
        ceil(N / RUBLES_PER_STAR) stars; through a provider, the amount itself."""
        if not self.provider_token:
            return Quote(currency=STARS_CURRENCY, total=math.ceil(amount / self.rubles_per_star))
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
        receipt_contact: str = "",  # Telegram asks for the e-mail in the payment form
    ) -> ProviderBill:
        """Sends the invoice to the user: it is the payment form, so there is no link."""
        quote = self.quote(amount=amount)
        receipt: dict[str, Any] = {}
        if self.receipts is not None and self.provider_token:
            receipt = {
                "need_email": True,
                "send_email_to_provider": True,
                "provider_data": json.dumps(
                    {
                        "receipt": self.receipts.receipt(
                            amount=quote.amount, currency=quote.currency
                        )
                    },
                    ensure_ascii=False,
                ),
            }
        try:
            message = await self.bot.send_invoice(
                chat_id=telegram_id,
                title=INVOICE_TITLE,
                description=comment,
                payload=bill_id,  # our id: 32 characters, within Telegram's 128 bytes
                provider_token=self.provider_token or None,
                currency=quote.currency,
                prices=[LabeledPrice(label=INVOICE_TITLE, amount=quote.total)],
                **receipt,
            )
        except AiogramError as e:
            raise ProviderError(f"sendInvoice failed: {e}") from None
        return ProviderBill(
            bill_id=bill_id,
            status=BillStatus.WAITING,  # sent: the user may pay it now
            provider_status="",  # Telegram has no word for an invoice's state
            amount=amount,
            currency=currency,
            pay_url="",
            raw=message.model_dump(mode="json", exclude_none=True),
            quote=quote,
        )

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

    @property
    def takes_stars(self) -> bool:
        """Invoices in Telegram Stars (no provider token): its payments can be listed."""
        return not self.provider_token

    async def star_payments(
        self, *, since: datetime, max_pages: int = STAR_TRANSACTIONS_MAX_PAGES
    ) -> StarPayments:
        """The bot's incoming invoice payments in Stars made at `since` or later, newest
        first, read from getStarTransactions a page of 100 at a time (at most `max_pages`).

        The Bot API documents the list as "in chronological order"; the Bot API server
        asks TDLib's getStarTransactions with no direction, and Telegram's
        payments.getStarsTransactions returns the newest first unless asked for
        `ascending`. So the newest come first, and the read stops at the first page that
        ends before `since`. A page found in ascending date order is not taken as the
        end (the read goes on to `max_pages`), so the other order misses nothing in a
        short history. New transactions arriving meanwhile shift the offsets: a
        transaction may come twice (kept once), none is skipped.

        Raises ProviderError when Telegram does not answer or refuses.
        """
        payments: dict[str, StarPayment] = {}
        complete = False
        pages = 0
        while pages < max_pages:
            try:
                result = await self.bot.get_star_transactions(
                    offset=pages * STAR_TRANSACTIONS_PAGE, limit=STAR_TRANSACTIONS_PAGE
                )
            except AiogramError as e:
                raise ProviderError(f"getStarTransactions failed: {e}") from None
            pages += 1
            transactions = result.transactions
            for transaction in transactions:
                payment = _star_payment(transaction)
                if payment is not None and payment.date >= since:
                    payments.setdefault(payment.charge_id, payment)
            if len(transactions) < STAR_TRANSACTIONS_PAGE:
                complete = True  # the bot's first transaction has been read
                break
            newest_first = transactions[0].date >= transactions[-1].date
            if newest_first and transactions[-1].date < since:
                complete = True  # the rest is older still
                break
        ordered = sorted(payments.values(), key=lambda p: p.date, reverse=True)
        return StarPayments(payments=tuple(ordered), complete=complete, pages=pages)

    async def close(self) -> None:
        """The bot's session belongs to whoever made the bot."""


def _star_payment(transaction: StarTransaction) -> StarPayment | None:
    """An incoming payment of an invoice by a user, or None for anything else (refunds
    and withdrawals are outgoing, paid media, gifts and the like are other types)."""
    source = transaction.source
    if not isinstance(source, TransactionPartnerUser):
        return None
    if source.transaction_type != "invoice_payment" or source.invoice_payload is None:
        return None
    if transaction.receiver is not None or transaction.amount <= 0:
        return None
    return StarPayment(
        charge_id=transaction.id,
        telegram_id=source.user.id,
        payload=source.invoice_payload,
        stars=transaction.amount,
        date=transaction.date,
        raw=transaction.model_dump(mode="json", exclude_none=True),
    )
