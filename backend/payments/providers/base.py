"""What the bot, the poller and the admin need from a payment provider."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol


class ProviderError(Exception):
    """The provider could not be reached or refused the call.

    The message is safe to log: it never holds a key or a request header.
    """


class ProviderAuthError(ProviderError):
    """The provider refused our key: retrying will not help."""


class ProviderNotFound(ProviderError):
    """The provider has no bill with that id."""


class ProviderRateLimited(ProviderError):
    """The provider asks us to slow down (HTTP 429); `retry_after` is how long it asked
    us to wait, in seconds, when it said so."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ProviderBill:
    bill_id: str
    status: str  # the provider's own word: WAITING, PAID, REJECTED, EXPIRED, ...
    amount: Decimal
    currency: str
    pay_url: str
    raw: dict[str, Any] = field(repr=False, compare=False)


class PaymentProvider(Protocol):
    name: str

    async def create_bill(
        self, *, bill_id: str, amount: Decimal, currency: str, expires_at: datetime, comment: str
    ) -> ProviderBill: ...

    async def get_bill(self, *, bill_id: str) -> ProviderBill: ...

    async def reject_bill(self, *, bill_id: str) -> ProviderBill: ...

    async def close(self) -> None: ...
