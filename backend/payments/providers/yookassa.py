"""YooKassa (API v3, https://yookassa.ru/developers/api): the only module that knows
its HTTP.

Not the official SDK (`yookassa` on PyPI, 3.13.0), though it can be pointed at another
base URL (`Configuration.configure(..., api_url=...)`): it is synchronous (`requests`),
so every call would need a thread of its own to keep the event loop free (the poller
asks up to BILL_POLL_CONCURRENCY at once); it sends its requests with no timeout at all
(its `timeout` setting is only the back-off of its retries), so a hung connection would
hold such a thread for good; it keeps shop id and key in class attributes shared by the
whole process; it opens a new connection for every request; and an answer that is not
JSON, or no answer, raises a JSON or AttributeError instead of its own errors. The
calls we need are four, so they are made here, over aiohttp (`HttpPool`, as QIWI's).

A top-up is one payment: `capture: true` (the money is taken at once, no second step),
a `redirect` confirmation whose `confirmation_url` is the pay link, our bill id as the
`Idempotence-Key` (a retried create returns the same payment, never a second one) and
in `metadata.bill_id`. The payment's id is YooKassa's own: it comes back as
`ProviderBill.charge_id`, is stored as the bill's `charge_id` (unique per provider) and
is what the bill is asked about by.

Statuses: `pending` (the user has not paid yet) and `waiting_for_capture` (paid, the
money held but not taken) are WAITING: with `capture: true` the second is not expected
and is not money of ours until captured. `succeeded` is PAID. `canceled` is REJECTED,
or EXPIRED when YooKassa cancelled it for want of payment
(`cancellation_details.reason = expired_on_confirmation`).

Closing an unpaid bill: YooKassa cancels only a `waiting_for_capture` payment
(`POST /payments/{id}/cancel`). A `pending` one cannot be cancelled through the API: it
stays payable until YooKassa cancels it itself. `reject_bill` says so by answering it
still WAITING; the bill then expires here by its lifetime and is asked about during the
late-payment grace period, so a payment that still comes is credited.

Listing (`list_payments`, for the owner's reconciliation): `GET /payments` with
`created_at.gte` and `created_at.lt`, 100 a page, the next page asked for by the
answer's `next_cursor`, at most `LIST_MAX_PAGES` pages.

Fiscal receipts (54-ФЗ): with `receipts` (YOOKASSA_RECEIPTS), a payment carries one
(`backend.payments.receipts`): the top-up as its one item and the user's e-mail or phone
as its `customer`. A bill without a contact is not sent: YooKassa would refuse it.

Errors: 401 and 403 raise ProviderAuthError, 404 ProviderNotFound, 429
ProviderRateLimited (with Retry-After), 400 ProviderRefused; anything else (5xx, a
timeout, an answer that is not a JSON payment) ProviderError. No message holds a header
(the Basic authorization carries the secret key).
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from backend.common.money import CENT
from backend.payments.providers.base import (
    ProviderAuthError,
    ProviderBill,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRefused,
    Quote,
)
from backend.payments.providers.http import HttpPool, retry_after
from backend.payments.receipts import ReceiptSettings
from backend.payments.vocabulary import BillStatus, ProviderName

if TYPE_CHECKING:
    from aiogram import Bot

# YooKassa's words for a payment (its `status`), in the shared vocabulary.
STATUSES = {
    "pending": BillStatus.WAITING,
    "waiting_for_capture": BillStatus.WAITING,
    "succeeded": BillStatus.PAID,
    "canceled": BillStatus.REJECTED,
}
CANCELLABLE = "waiting_for_capture"
EXPIRED_REASON = "expired_on_confirmation"  # cancelled by YooKassa: nobody paid in time
DESCRIPTION_MAX = 128  # characters of a payment's description
CREATE_TRIES = 2  # a create that got no clear answer is sent once more, with the same key
PROCESSING_PAUSE_MAX = 2.0  # seconds waited for a 202 «processing» before asking again
LIST_PAGE = 100  # the largest `limit` of GET /payments
LIST_MAX_PAGES = 50  # 5 000 payments: a read that goes further says it stopped


@dataclass(frozen=True)
class YooKassaPayment:
    """One payment as GET /payments lists it. `bill_id` is its `metadata.bill_id`, empty
    for a payment this bot did not make (the shop may take payments elsewhere too)."""

    payment_id: str
    bill_id: str
    status: BillStatus | None  # the shared word; None: a word we do not know
    provider_status: str  # YooKassa's own word
    amount: Decimal
    currency: str
    created_at: datetime
    paid: bool


@dataclass(frozen=True)
class YooKassaPayments:
    """What `list_payments` read, as YooKassa ordered it (the newest first). `complete`:
    the list was read to its end; if not, it stopped at `max_pages`."""

    payments: tuple[YooKassaPayment, ...]
    complete: bool
    pages: int


class YooKassaProvider:
    """A `PolledProvider`: the poller and the check button ask it about bills."""

    name = ProviderName.YOOKASSA

    def __init__(
        self,
        *,
        shop_id: str,
        secret_key: str,
        api_url: str,
        return_url: str = "",
        bot: Bot | None = None,
        timeout: float = 15.0,
        max_connections: int = 16,
        receipts: ReceiptSettings | None = None,
    ) -> None:
        credentials = f"{shop_id}:{secret_key}".encode()
        self._auth = "Basic " + base64.b64encode(credentials).decode("ascii")
        self._return_url = return_url
        self._receipts = receipts
        self.needs_receipt_contact = receipts is not None
        self._bot = bot
        self._http = HttpPool(
            api_url, provider="YooKassa", timeout=timeout, max_connections=max_connections
        )

    def quote(self, *, amount: Decimal) -> Quote:
        return Quote.rubles(amount)

    async def create_bill(
        self,
        *,
        bill_id: str,
        amount: Decimal,
        currency: str,
        expires_at: datetime,  # a pending payment has no lifetime one can set
        comment: str,
        telegram_id: int = 0,
        receipt_contact: str = "",
    ) -> ProviderBill:
        description = comment[:DESCRIPTION_MAX]
        body: dict[str, Any] = {
            "amount": {"value": f"{amount.quantize(CENT)}", "currency": currency},
            "capture": True,
            "confirmation": {"type": "redirect", "return_url": await self._return_link()},
            "description": description,
            "metadata": {"bill_id": bill_id},
        }
        if self._receipts is not None:
            if not receipt_contact:
                raise ProviderError(
                    f"bill {bill_id}: YOOKASSA_RECEIPTS is on and the user has given no "
                    "e-mail or phone for the receipt"
                )
            body["receipt"] = self._receipts.receipt(
                amount=amount, currency=currency, contact=receipt_contact
            )
        for attempt in range(1, CREATE_TRIES + 1):
            try:
                payment = await self._request(
                    "POST", "/payments", body=body, idempotence_key=bill_id
                )
                return _bill(payment, bill_id=bill_id)
            except (ProviderAuthError, ProviderRefused, ProviderNotFound, ProviderRateLimited):
                raise
            except _Processing as e:
                if attempt == CREATE_TRIES:
                    raise ProviderError(str(e)) from None
                await asyncio.sleep(e.pause)
            except ProviderError:  # 5xx, a timeout: the same key cannot make a second one
                if attempt == CREATE_TRIES:
                    raise
        raise AssertionError("unreachable")

    async def get_bill(self, *, bill_id: str, charge_id: str = "") -> ProviderBill:
        payment = await self._request("GET", f"/payments/{_payment_id(bill_id, charge_id)}")
        return _bill(payment, bill_id=bill_id)

    async def reject_bill(self, *, bill_id: str, charge_id: str = "") -> ProviderBill:
        """Cancel a `waiting_for_capture` payment; any other comes back as it is (a
        `pending` one cannot be cancelled: it stays WAITING)."""
        current = await self.get_bill(bill_id=bill_id, charge_id=charge_id)
        if current.provider_status != CANCELLABLE:
            return current
        payment = await self._request(
            "POST",
            f"/payments/{_payment_id(bill_id, charge_id)}/cancel",
            body={},
            idempotence_key=f"cancel-{bill_id}",
        )
        return _bill(payment, bill_id=bill_id)

    async def list_payments(
        self,
        *,
        since: datetime,
        until: datetime,
        status: str = "",
        max_pages: int = LIST_MAX_PAGES,
    ) -> YooKassaPayments:
        """The shop's payments created at `since` or later and before `until` (only those
        in YooKassa's `status`, when given), following `next_cursor` for at most
        `max_pages` pages of 100. ProviderError: YooKassa did not answer, or answered
        something that is not a list of payments."""
        query = {
            "created_at.gte": _timestamp(since),
            "created_at.lt": _timestamp(until),
            "limit": str(LIST_PAGE),
        }
        if status:
            query["status"] = status
        payments: dict[str, YooKassaPayment] = {}
        cursor, pages = "", 0
        while pages < max_pages:
            page = {**query, "cursor": cursor} if cursor else query
            answer = await self._request("GET", "/payments?" + urlencode(page))
            pages += 1
            items = answer.get("items")
            if answer.get("type") != "list" or not isinstance(items, list):
                raise ProviderError("YooKassa GET /payments: the answer is not a list")
            for item in items:
                payment = _listed(item)
                payments.setdefault(payment.payment_id, payment)
            cursor = answer.get("next_cursor") or ""
            if not isinstance(cursor, str):
                raise ProviderError("YooKassa GET /payments: next_cursor is not a string")
            if not cursor:
                return YooKassaPayments(tuple(payments.values()), complete=True, pages=pages)
        return YooKassaPayments(tuple(payments.values()), complete=False, pages=pages)

    async def close(self) -> None:
        await self._http.close()

    async def _return_link(self) -> str:
        if self._return_url:
            return self._return_url
        if self._bot is None:
            raise ProviderError("YOOKASSA_RETURN_URL is not set, and there is no bot to link to")
        from aiogram.exceptions import AiogramError

        try:
            me = await self._bot.me()  # getMe, once: aiogram keeps the answer
        except AiogramError as e:  # its message may hold the URL, and the URL the token
            raise ProviderError(
                f"YOOKASSA_RETURN_URL is not set, and getMe failed ({type(e).__name__})"
            ) from None
        if not me.username:
            raise ProviderError("YOOKASSA_RETURN_URL is not set, and the bot has no username")
        return f"https://t.me/{me.username}"

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        idempotence_key: str = "",
    ) -> dict[str, Any]:
        where = f"YooKassa {method} {path.partition('?')[0]}"
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        if idempotence_key:
            headers["Idempotence-Key"] = idempotence_key
        status, answer_headers, content = await self._http.send(
            method, path, headers=headers, body=data, where=where
        )
        return _answer(status, answer_headers.get("Retry-After"), content, where)


class _Processing(ProviderError):
    """HTTP 202: YooKassa is still making the answer; the same request, later, gets it."""

    def __init__(self, message: str, *, pause: float) -> None:
        super().__init__(message)
        self.pause = pause


def _payment_id(bill_id: str, charge_id: str) -> str:
    """The payment's id, safe in a path (YooKassa's are UUIDs: hex digits and dashes)."""
    if not charge_id:
        raise ProviderNotFound(f"bill {bill_id} has no YooKassa payment id: it was not created")
    if not all(c.isalnum() or c in "-_" for c in charge_id):
        raise ProviderError(f"bill {bill_id}: {charge_id!r} is not a YooKassa payment id")
    return charge_id


def _answer(status: int, retry: str | None, content: bytes, where: str) -> dict[str, Any]:
    """The JSON object of a successful answer; an error raises its ProviderError."""
    try:
        body = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if status in (401, 403):
        raise ProviderAuthError(
            f"{where}: HTTP {status}: check YOOKASSA_SHOP_ID and YOOKASSA_SECRET_KEY"
        )
    if status == 404:
        raise ProviderNotFound(f"{where}: 404, no such payment")
    if status == 429:
        seconds = retry_after(retry)
        raise ProviderRateLimited(
            f"{where}: 429 Too Many Requests (Retry-After: {seconds})", retry_after=seconds
        )
    if not isinstance(body, dict):
        raise ProviderError(f"{where}: HTTP {status}, the answer is not a JSON object")
    if status == 202:  # {"type": "processing", "retry_after": milliseconds}
        pause = body.get("retry_after")
        pause = min(pause / 1000, PROCESSING_PAUSE_MAX) if isinstance(pause, int) else 1.0
        raise _Processing(f"{where}: HTTP 202, still processing", pause=max(pause, 0.0))
    if status != 200 or body.get("type") == "error":
        details = " ".join(
            str(body.get(key, ""))[:200] for key in ("code", "description", "parameter")
        )
        message = f"{where}: HTTP {status} {details}".strip()
        raise ProviderRefused(message) if status == 400 else ProviderError(message)
    return body


def _bill(payment: dict[str, Any], *, bill_id: str) -> ProviderBill:
    """A payment object in the shared words; a payment that is not this bill's (another
    `metadata.bill_id`), or lacks a field we need, raises ProviderError."""
    try:
        word = str(payment["status"])
        amount = Decimal(str(payment["amount"]["value"]))
        currency = str(payment["amount"]["currency"])
        charge_id = str(payment["id"])
        metadata = payment.get("metadata") or {}
        confirmation = payment.get("confirmation") or {}
        cancellation = payment.get("cancellation_details") or {}
    except (KeyError, TypeError, AttributeError, InvalidOperation) as e:
        raise ProviderError(f"YooKassa answered without a field we need: {e!r}") from None
    if not amount.is_finite() or amount != amount.quantize(CENT):
        raise ProviderError(f"YooKassa payment {charge_id}: amount {amount} is not in kopecks")
    if metadata.get("bill_id") != bill_id:
        raise ProviderError(
            f"YooKassa payment {charge_id} is not bill {bill_id}'s "
            f"(metadata.bill_id {metadata.get('bill_id')!r})"
        )
    status = STATUSES.get(word)
    if status == BillStatus.REJECTED and cancellation.get("reason") == EXPIRED_REASON:
        status = BillStatus.EXPIRED
    pay_url = confirmation.get("confirmation_url") if word == "pending" else ""
    return ProviderBill(
        bill_id=bill_id,
        status=status,
        provider_status=word,
        amount=amount.quantize(CENT),
        currency=currency,
        pay_url=str(pay_url or ""),
        raw=payment,
        charge_id=charge_id,
    )


def _timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as YooKassa writes its own: 2026-11-01T00:00:00.000Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _listed(payment: Any) -> YooKassaPayment:
    """A payment of GET /payments' `items`; one lacking a field we need raises
    ProviderError."""
    try:
        word = str(payment["status"])
        amount = Decimal(str(payment["amount"]["value"]))
        created = datetime.fromisoformat(str(payment["created_at"]).replace("Z", "+00:00"))
        metadata = payment.get("metadata") or {}
        listed = YooKassaPayment(
            payment_id=str(payment["id"]),
            bill_id=str(metadata.get("bill_id") or ""),
            status=STATUSES.get(word),
            provider_status=word,
            amount=amount,
            currency=str(payment["amount"]["currency"]),
            created_at=created,
            paid=payment.get("paid") is True,
        )
    except (KeyError, TypeError, AttributeError, InvalidOperation, ValueError) as e:
        raise ProviderError(f"YooKassa listed a payment without a field we need: {e!r}") from None
    if not amount.is_finite() or created.tzinfo is None:  # an aware time, a real number
        raise ProviderError(f"YooKassa listed payment {listed.payment_id} with a bad amount")
    return listed
