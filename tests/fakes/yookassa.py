"""Fake YooKassa API v3 (api.yookassa.ru/v3): payments created, read and cancelled.

It checks what the real one checks of our calls: Basic auth with the shop id and secret
key; an `Idempotence-Key` on every POST (the same key with the same body answers what
the first request got — the same payment — and with another body a 400); the amount in
rubles with exactly two decimals; `capture` and a `redirect` confirmation with its
`return_url`; a receipt's required fields when one is sent (and, with
`receipts_required`, as for a shop under 54-ФЗ, that one is sent: a 400 otherwise).
`GET /payments` lists payments as YooKassa documents it: the newest first,
filtered by `created_at.gte`/`.gt`/`.lte`/`.lt` and `status`, `limit` of 1…100 a page,
the next page by the answer's `next_cursor` sent back as `cursor` with the same filters
(an unknown cursor, parameter or value is a 400). Tests move a payment (`set_status`),
plant payments of other makers (`add_payment`) and queue faults (`fail_next`: 429 with
Retry-After, 500, slow answers, bad JSON, 401).

Every change of a payment's status is also written to `events` as YooKassa would name
its notification (`payment.succeeded`, `payment.canceled`,
`payment.waiting_for_capture`), with the payment as it was then. The fake posts them
only when a test says so (`send_notification`): once, twice, out of order, forged
(`forged`: a valid-looking body that claims what the payment is not), or never.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp

from ._api import ApiError, ApiRequest, FakeApi

API_PREFIX = "/v3"
STATUSES = {"pending", "waiting_for_capture", "succeeded", "canceled"}
CURRENCIES = {"RUB"}
_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,9})\.[0-9]{2}")
_PHONE = re.compile(r"[0-9]{11,15}")  # digits only, with the country code (ITU-T E.164)
VAT = range(1, 11)  # YooKassa's vat_code table
TAX_SYSTEMS = range(1, 7)
_PATH = re.compile(API_PREFIX + r"/payments(?:/(?P<id>[^/]+)(?P<action>/cancel|/capture)?)?")
_ERROR_CODES = {
    400: "invalid_request",
    401: "invalid_credentials",
    403: "forbidden",
    404: "not_found",
    429: "too_many_requests",
}


def yookassa_error(code: str, description: str, parameter: str | None = None) -> dict[str, Any]:
    """An error answer as YooKassa shapes it."""
    body = {"type": "error", "id": str(uuid.uuid4()), "code": code, "description": description}
    if parameter:
        body["parameter"] = parameter
    return body


def _failure(status: int, description: str, parameter: str | None = None) -> ApiError:
    code = _ERROR_CODES.get(status, "internal_server_error")
    return ApiError(status, yookassa_error(code, description, parameter))


def _now() -> str:
    return _iso(datetime.now(UTC))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _created(payment: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(payment["created_at"].replace("Z", "+00:00"))


_LIST_PARAMETERS = {
    "created_at.gte",
    "created_at.gt",
    "created_at.lte",
    "created_at.lt",
    "status",
    "limit",
    "cursor",
}
_COMPARE = {
    "gte": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
    "lte": lambda a, b: a <= b,
    "lt": lambda a, b: a < b,
}


@dataclass(frozen=True)
class Event:
    """A notification YooKassa would send: its `event` and the payment then."""

    event: str
    payment: dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    """A notification posted (`send_notification`) and what the receiver answered."""

    url: str
    body: bytes
    status: int
    text: str


def _check_receipt(receipt: Any, payment_value: str) -> None:
    """What YooKassa requires of a payment's receipt (54-ФЗ): a customer's e-mail or phone,
    items, each with a description of up to 128 characters, a quantity, an amount in
    kopecks, a vat_code and the subject and mode; the items' sum is the payment's."""
    if not isinstance(receipt, dict):
        raise _failure(400, "receipt must be an object", "receipt")
    customer = receipt.get("customer")
    if not isinstance(customer, dict) or not (customer.get("email") or customer.get("phone")):
        raise _failure(400, "Receipt customer email or phone is required", "receipt.customer")
    phone = customer.get("phone")
    if phone is not None and not (isinstance(phone, str) and _PHONE.fullmatch(phone)):
        raise _failure(400, f"Invalid phone: {phone!r}", "receipt.customer.phone")
    items = receipt.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= 100:
        raise _failure(400, "Receipt items are required", "receipt.items")
    total = Decimal(0)
    for item in items:
        if not isinstance(item, dict):
            raise _failure(400, "A receipt item must be an object", "receipt.items")
        description = item.get("description")
        if not isinstance(description, str) or not 1 <= len(description) <= 128:
            raise _failure(400, "Item description: 1-128 characters", "receipt.items.description")
        quantity = _decimal(item.get("quantity"))
        if quantity is None or quantity <= 0:
            raise _failure(400, "Item quantity must be positive", "receipt.items.quantity")
        amount = item.get("amount")
        value = amount.get("value") if isinstance(amount, dict) else None
        if not isinstance(value, str) or not _AMOUNT.fullmatch(value):
            raise _failure(400, f"Invalid item amount: {value!r}", "receipt.items.amount.value")
        if amount.get("currency") not in CURRENCIES:
            raise _failure(400, "Item currency must be RUB", "receipt.items.amount.currency")
        vat_code = item.get("vat_code")
        if not isinstance(vat_code, int) or isinstance(vat_code, bool) or vat_code not in VAT:
            raise _failure(400, f"Invalid vat_code: {vat_code!r}", "receipt.items.vat_code")
        for name in ("payment_subject", "payment_mode"):
            if not isinstance(item.get(name), str) or not item[name]:
                raise _failure(400, f"Item {name} is required", f"receipt.items.{name}")
        total += Decimal(value) * quantity
    if total != Decimal(payment_value):
        raise _failure(400, f"Receipt items sum {total} is not {payment_value}", "receipt.items")
    tax_system = receipt.get("tax_system_code")
    if tax_system is not None and tax_system not in TAX_SYSTEMS:
        raise _failure(400, f"Invalid tax_system_code: {tax_system!r}", "receipt.tax_system_code")


def _decimal(value: Any) -> Decimal | None:
    """A quantity YooKassa takes: a number, or a string of one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


class FakeYooKassa(FakeApi):
    def __init__(self, shop_id: str = "123456", secret_key: str = "test_secret") -> None:
        super().__init__()
        self.shop_id, self.secret_key = shop_id, secret_key
        self.payments: dict[str, dict[str, Any]] = {}
        self.events: list[Event] = []
        self.deliveries: list[Delivery] = []
        # A shop that sends receipts through YooKassa: a payment without one is refused.
        self.receipts_required = False
        self.receipts: dict[str, dict[str, Any]] = {}  # payment id → the receipt it came with
        # (method, path, Idempotence-Key) → (the request's body, the answer it got)
        self._idempotent: dict[tuple[str, str, str], tuple[Any, dict[str, Any]]] = {}
        # cursor → (the filters of the list it continues, the offset of its page)
        self._cursors: dict[str, tuple[dict[str, str], int]] = {}

    @property
    def api_url(self) -> str:
        """What YOOKASSA_API_URL is set to: the fake's /v3."""
        return self.base_url + API_PREFIX

    def _object_id(self, path: str) -> str | None:
        match = _PATH.fullmatch(path)
        return match["id"] if match else None

    def _error_body(self, status: int, description: str) -> dict[str, Any]:
        return yookassa_error(_ERROR_CODES.get(status, "internal_server_error"), description)

    def _serve(self, req: ApiRequest) -> dict[str, Any]:
        expected = base64.b64encode(f"{self.shop_id}:{self.secret_key}".encode()).decode()
        if req.headers.get("Authorization") != f"Basic {expected}":
            raise _failure(401, "Login or password is incorrect")
        match = _PATH.fullmatch(req.path)
        if match is None:
            self.unexpected.append(req)
            raise _failure(404, f"No route for {req.method} {req.path}")
        if req.method == "GET" and match["id"] and not match["action"]:
            return self._get(match["id"])
        if req.method == "GET" and match["id"] is None:
            return self._list(req.query)
        if req.method != "POST" or (match["id"] is None) == bool(match["action"]):
            self.unexpected.append(req)
            raise _failure(404, f"No route for {req.method} {req.path}")
        key = req.headers.get("Idempotence-Key", "")
        if not key or len(key) > 64:
            raise _failure(400, "Idempotence key is missing or too long", "Idempotence-Key")
        if not isinstance(req.json, dict):
            raise _failure(400, "The request body is not a JSON object")
        seen = self._idempotent.get((req.method, req.path, key))
        if seen is not None:
            body, answer = seen
            if body != req.json:
                raise _failure(400, "Idempotence key duplicated", "Idempotence-Key")
            return answer
        if match["action"] == "/cancel":
            answer = self._cancel(match["id"])
        elif match["action"] == "/capture":
            answer = self._capture(match["id"])
        else:
            answer = self._create(req.json)
        self._idempotent[(req.method, req.path, key)] = (req.json, copy.deepcopy(answer))
        return answer

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        amount = body.get("amount")
        if not isinstance(amount, dict) or amount.get("currency") not in CURRENCIES:
            raise _failure(400, "amount.currency must be RUB", "amount.currency")
        value = amount.get("value")
        if not isinstance(value, str) or not _AMOUNT.fullmatch(value) or value == "0.00":
            raise _failure(400, f"Invalid amount value: {value!r}", "amount.value")
        if body.get("capture") is not True:  # our bills are paid in one step
            raise _failure(400, "This fake expects capture: true", "capture")
        confirmation = body.get("confirmation")
        if not isinstance(confirmation, dict) or confirmation.get("type") != "redirect":
            raise _failure(400, "confirmation.type must be redirect", "confirmation.type")
        return_url = confirmation.get("return_url")
        if not isinstance(return_url, str) or not return_url.startswith(("https://", "http://")):
            raise _failure(400, "confirmation.return_url is required", "confirmation.return_url")
        description = body.get("description", "")
        if not isinstance(description, str) or len(description) > 128:
            raise _failure(400, "description is up to 128 characters", "description")
        metadata = body.get("metadata", {})
        if not isinstance(metadata, dict):
            raise _failure(400, "metadata must be an object", "metadata")
        if "receipt" in body:
            _check_receipt(body["receipt"], value)
        elif self.receipts_required:
            raise _failure(400, "Receipt is missing or illegal", "receipt")
        payment_id = f"{uuid.uuid4().hex[:8]}-000f-5000-8000-{uuid.uuid4().hex[:12]}"
        self.payments[payment_id] = payment = {
            "id": payment_id,
            "status": "pending",
            "paid": False,
            "amount": {"value": value, "currency": amount["currency"]},
            "confirmation": {
                "type": "redirect",
                "return_url": return_url,
                "confirmation_url": (
                    "https://yoomoney.ru/checkout/payments/v2/contract?orderId=" + payment_id
                ),
            },
            "created_at": _now(),
            "description": description,
            "metadata": metadata,
            "recipient": {"account_id": self.shop_id, "gateway_id": "1000001"},
            "refundable": False,
            "test": True,
        }
        if "receipt" in body:  # YooKassa answers whether it will register one
            payment["receipt_registration"] = "pending"
            self.receipts[payment_id] = copy.deepcopy(body["receipt"])
        return payment

    def _get(self, payment_id: str) -> dict[str, Any]:
        if payment_id not in self.payments:
            raise _failure(404, "Payment not found", "payment_id")
        return self.payments[payment_id]

    def _list(self, query: dict[str, str]) -> dict[str, Any]:
        unknown = set(query) - _LIST_PARAMETERS
        if unknown:
            raise _failure(400, f"Unknown parameters: {sorted(unknown)}", sorted(unknown)[0])
        filters = {k: v for k, v in query.items() if k not in ("limit", "cursor")}
        limit = query.get("limit", "10")
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            raise _failure(400, f"limit must be 1…100, got {limit!r}", "limit")
        offset = 0
        if "cursor" in query:
            seen = self._cursors.get(query["cursor"])
            if seen is None or seen[0] != filters:
                raise _failure(400, "Invalid cursor (or other filters than its list's)", "cursor")
            offset = seen[1]
        bounds = []
        for key, value in filters.items():
            if key == "status":
                if value not in STATUSES:
                    raise _failure(400, f"Unknown status {value!r}", "status")
                continue
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise _failure(400, f"{key} is not an ISO 8601 time: {value!r}", key) from None
            if moment.tzinfo is None:
                raise _failure(400, f"{key} has no time zone: {value!r}", key)
            bounds.append((key.partition(".")[2], moment))
        chosen = [
            p
            for p in self.payments.values()
            if filters.get("status", p["status"]) == p["status"]
            and all(_COMPARE[op](_created(p), moment) for op, moment in bounds)
        ]
        chosen.sort(key=_created, reverse=True)
        end = offset + int(limit)
        answer: dict[str, Any] = {"type": "list", "items": chosen[offset:end]}
        if end < len(chosen):
            cursor = uuid.uuid4().hex
            self._cursors[cursor] = (filters, end)
            answer["next_cursor"] = cursor
        return answer

    def _cancel(self, payment_id: str) -> dict[str, Any]:
        payment = self._get(payment_id)
        if payment["status"] != "waiting_for_capture":
            raise _failure(400, f"Payment is in {payment['status']} status: it cannot be canceled")
        self.set_status(payment_id, "canceled", reason="canceled_by_merchant")
        return payment

    def _capture(self, payment_id: str) -> dict[str, Any]:
        payment = self._get(payment_id)
        if payment["status"] != "waiting_for_capture":
            raise _failure(400, f"Payment is in {payment['status']} status: it cannot be captured")
        self.set_status(payment_id, "succeeded")
        return payment

    # ---- helpers for tests ------------------------------------------------------
    def payment_of(self, bill_id: str) -> dict[str, Any]:
        """The payment made for our bill (its metadata.bill_id)."""
        found = [p for p in self.payments.values() if p["metadata"].get("bill_id") == bill_id]
        if len(found) != 1:
            raise AssertionError(f"{len(found)} payments for bill {bill_id}")
        return found[0]

    def set_status(self, payment_id: str, status: str, *, reason: str = "") -> None:
        """Move a payment as YooKassa would: `succeeded` (paid, captured), `canceled`
        (with `reason`; `expired_on_confirmation` by default), `waiting_for_capture`."""
        if status not in STATUSES:
            raise ValueError(f"unknown YooKassa status {status!r}; one of {sorted(STATUSES)}")
        payment = self.payments[payment_id]
        payment["status"] = status
        payment["paid"] = status in ("waiting_for_capture", "succeeded")
        if status != "pending":
            payment.pop("confirmation", None)
        if status == "succeeded":
            payment["captured_at"] = _now()
            payment["income_amount"] = dict(payment["amount"])
            payment["refundable"] = True
        if status == "canceled":
            party = "merchant" if reason == "canceled_by_merchant" else "yoo_money"
            payment["cancellation_details"] = {
                "party": party,
                "reason": reason or "expired_on_confirmation",
            }
        if status != "pending":
            self.events.append(Event(f"payment.{status}", copy.deepcopy(payment)))
        self._notify()

    def add_payment(
        self,
        value: str,
        *,
        status: str = "succeeded",
        bill_id: str | None = None,
        created_at: datetime | None = None,
    ) -> str:
        """A payment made at the shop without our adapter (another site's, or one whose
        bill the bot lost): `metadata.bill_id` only when given. Returns its id."""
        payment_id = f"{uuid.uuid4().hex[:8]}-000f-5000-9000-{uuid.uuid4().hex[:12]}"
        self.payments[payment_id] = {
            "id": payment_id,
            "status": "pending",
            "paid": False,
            "amount": {"value": value, "currency": "RUB"},
            "created_at": _iso(created_at or datetime.now(UTC)),
            "description": "",
            "metadata": {} if bill_id is None else {"bill_id": bill_id},
            "recipient": {"account_id": self.shop_id, "gateway_id": "1000001"},
            "refundable": False,
            "test": True,
        }
        if status != "pending":
            self.set_status(payment_id, status)
        return payment_id

    def set_created_at(self, payment_id: str, moment: datetime) -> None:
        self.payments[payment_id]["created_at"] = _iso(moment)

    def set_amount(self, payment_id: str, value: str, currency: str | None = None) -> None:
        amount = self.payments[payment_id]["amount"]
        amount["value"] = value
        if currency is not None:
            amount["currency"] = currency

    def answer(self, payment_id: str, **changes: Any) -> dict[str, Any]:
        """The payment as it is, with `changes`: a one-off answer for `fail_next`."""
        return {**copy.deepcopy(self.payments[payment_id]), **changes}

    # ---- notifications --------------------------------------------------------------
    def events_of(self, payment_id: str) -> list[Event]:
        """The notifications YooKassa would send about a payment, in order."""
        return [e for e in self.events if e.payment["id"] == payment_id]

    @staticmethod
    def notification(event: Event) -> dict[str, Any]:
        """The body YooKassa posts for `event`."""
        return {
            "type": "notification",
            "event": event.event,
            "object": copy.deepcopy(event.payment),
        }

    def forged(self, payment_id: str, event: str = "payment.succeeded") -> dict[str, Any]:
        """A notification YooKassa never sent: the payment as it is, claiming `event`
        (by default that it succeeded), shaped exactly like a real one."""
        payment = copy.deepcopy(self.payments[payment_id])
        status = event.removeprefix("payment.")
        payment.update(status=status, paid=status in ("waiting_for_capture", "succeeded"))
        payment.pop("confirmation", None)
        return {"type": "notification", "event": event, "object": payment}

    async def send_notification(
        self,
        url: str,
        notification: Event | dict[str, Any] | bytes,
        *,
        headers: dict[str, str] | None = None,
    ) -> Delivery:
        """POST a notification to `url` as YooKassa does (JSON, no auth of its own): an
        `Event`, a body (`forged`, `notification`) or raw bytes; returns the answer."""
        if isinstance(notification, Event):
            notification = self.notification(notification)
        body = (
            notification if isinstance(notification, bytes) else json.dumps(notification).encode()
        )
        sent = {"Content-Type": "application/json", **(headers or {})}
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(url, data=body, headers=sent) as answer,
        ):
            delivery = Delivery(url, body, answer.status, await answer.text())
        self.deliveries.append(delivery)
        return delivery
