"""What the bot, the bill jobs and the admin need from a payment provider.

Two kinds: a polled provider is asked about its bills (QIWI and YooKassa: a
`PolledProvider`, with `get_bill` and `reject_bill`); any other reports its payments
itself (Telegram Payments: as updates), is never asked, and its open bills expire by
their own clock. Both create
bills and answer in `ProviderBill`, whose status is in the shared vocabulary
(`BillStatus`) and which keeps the provider's own word and raw answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from backend.payments.vocabulary import BillStatus, ProviderName


class ProviderError(Exception):
    """The provider could not be reached or refused the call.

    The message is safe to log: it never holds a key or a request header.
    """


class ProviderAuthError(ProviderError):
    """The provider refused our key: retrying will not help."""


class ProviderRefused(ProviderError):
    """The provider answered, and the answer is no: nothing was done there."""


class ProviderNotFound(ProviderError):
    """The provider has no bill with that id."""


class ProviderRateLimited(ProviderError):
    """The provider asks us to slow down (HTTP 429); `retry_after` is how long it asked
    us to wait, in seconds, when it said so."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# Digits after the point of a currency's amounts (Telegram's currencies.json «exp»):
# Telegram's `total_amount` counts the smallest units. Stars are whole.
_ZERO_DIGIT_CURRENCIES = {"XTR", "JPY", "KRW", "VND", "CLP", "ISK", "UGX"}


def currency_exponent(currency: str) -> int:
    return 0 if currency in _ZERO_DIGIT_CURRENCIES else 2


@dataclass(frozen=True)
class Quote:
    """What the provider asks the user to pay: Telegram's total_amount and currency (a
    number of stars for XTR, else the currency's smallest units, e.g. kopecks)."""

    currency: str
    total: int

    @classmethod
    def rubles(cls, amount: Decimal) -> Quote:
        """A bill in rubles asks the amount itself, in kopecks (QIWI, YooKassa)."""
        return cls(currency="RUB", total=int(amount * 100))

    @property
    def amount(self) -> Decimal:
        """`total` in the currency's own units (kopecks → rubles)."""
        return Decimal(self.total).scaleb(-currency_exponent(self.currency))


@dataclass(frozen=True)
class ProviderBill:
    bill_id: str
    status: BillStatus | None  # the provider's word mapped; None: a word we do not know
    provider_status: str  # the provider's own word, as it said it
    amount: Decimal
    currency: str
    pay_url: str  # empty when the provider put its payment form into the chat itself
    raw: dict[str, Any] = field(repr=False, compare=False)
    quote: Quote | None = None
    # The provider's own id of the payment, when it is not our bill id (YooKassa's
    # payment id): stored as the bill's charge_id, and asked about by it.
    charge_id: str = ""


class PaymentProvider(Protocol):
    """What every provider does: price a top-up and make a bill for it. One that is not
    a `PolledProvider` reports its payments itself."""

    name: ProviderName
    # True: a bill carries a fiscal receipt sent to the user's e-mail or phone, which the
    # bot asks for before the first bill (YooKassa with YOOKASSA_RECEIPTS).
    needs_receipt_contact: bool

    def quote(self, *, amount: Decimal) -> Quote:
        """What a bill for `amount` rubles will ask the user to pay."""
        ...

    async def create_bill(
        self,
        *,
        bill_id: str,
        amount: Decimal,
        currency: str,
        expires_at: datetime,
        comment: str,
        telegram_id: int,
        receipt_contact: str = "",
    ) -> ProviderBill:
        """`receipt_contact`: the user's e-mail or phone for a fiscal receipt (the
        stored `TelegramUser.receipt_contact`); a provider that sends none ignores it."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class PolledProvider(PaymentProvider, Protocol):
    """Asked about its bills: by the poller every minute, by the check button, by the
    admin's «check now». `charge_id` is the bill's stored `charge_id` (what
    `create_bill` answered in `ProviderBill.charge_id`; empty for QIWI, which knows
    bills by our id).

    `reject_bill` closes a bill nobody may pay any more, where the provider can; one it
    cannot close comes back still WAITING (YooKassa's pending payment) and is expired
    here by its lifetime, checked for a late payment during the grace period."""

    async def get_bill(self, *, bill_id: str, charge_id: str = "") -> ProviderBill: ...

    async def reject_bill(self, *, bill_id: str, charge_id: str = "") -> ProviderBill: ...
