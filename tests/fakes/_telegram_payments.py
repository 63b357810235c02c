"""Telegram Payments in the fake Bot API: invoices, the pre-checkout step, the successful
payment message and Stars refunds, checked as strictly as Telegram documents them.

A test plays the user: `tg.checkout(user, invoice_message)` is the user pressing «Pay»
(a `pre_checkout_query` update); when the bot answers it with ok=True in time, the fake
charges and sends the `successful_payment` message, as Telegram does.
"""

from __future__ import annotations

import copy
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from ._telegram_state import Json

PRE_CHECKOUT_DEADLINE = 10.0  # seconds Telegram waits for answerPreCheckoutQuery
STARS = "XTR"


class ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


@dataclass
class Invoice:
    chat_id: int
    message_id: int
    payload: str
    currency: str
    total_amount: int
    provider_token: str


@dataclass
class PreCheckout:
    query: Json
    invoice: Invoice
    sent_at: float
    answer: Json | None = None  # the bot's answerPreCheckoutQuery parameters


@dataclass
class Charge:
    user_id: int
    payload: str
    currency: str
    total_amount: int
    refunded: bool = False


@dataclass
class PaymentsState:
    invoices: dict[tuple[int, int], Invoice] = field(default_factory=dict)
    pre_checkouts: dict[str, PreCheckout] = field(default_factory=dict)
    charges: dict[str, Charge] = field(default_factory=dict)  # telegram_payment_charge_id


class TelegramPayments:
    """Mixed into FakeTelegram (it provides `_bot_message`, `_enqueue`, `_user_message`)."""

    payments: PaymentsState

    def _init_payments(self) -> None:
        self.payments = PaymentsState()

    # ---- API methods -------------------------------------------------------------
    async def _api_sendInvoice(self, params: dict[str, Any]) -> Any:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int):
            raise ApiError(400, "Bad Request: chat not found")
        title, description = str(params.get("title", "")), str(params.get("description", ""))
        if not 1 <= len(title) <= 32:
            raise ApiError(400, "Bad Request: INVOICE_TITLE_EMPTY or too long")
        if not 1 <= len(description) <= 255:
            raise ApiError(400, "Bad Request: INVOICE_DESCRIPTION_EMPTY or too long")
        payload = str(params.get("payload", ""))
        if not 1 <= len(payload.encode()) <= 128:
            raise ApiError(400, "Bad Request: INVOICE_PAYLOAD_INVALID")
        currency = str(params.get("currency", ""))
        provider_token = str(params.get("provider_token") or "")
        if currency == STARS and provider_token:
            raise ApiError(400, "Bad Request: provider_token must be empty for payments in Stars")
        if currency != STARS and not provider_token:
            raise ApiError(400, "Bad Request: PAYMENT_PROVIDER_INVALID")
        prices = params.get("prices")
        if not isinstance(prices, list) or not prices:
            raise ApiError(400, "Bad Request: prices must be a non-empty array")
        if currency == STARS and len(prices) != 1:
            raise ApiError(400, "Bad Request: exactly one price is allowed for payments in Stars")
        amounts = [p.get("amount") for p in prices if isinstance(p, dict) and p.get("label")]
        if len(amounts) != len(prices) or not all(isinstance(a, int) for a in amounts):
            raise ApiError(400, "Bad Request: can't parse prices JSON object")
        total = sum(amounts)
        if total <= 0:
            raise ApiError(400, "Bad Request: CURRENCY_TOTAL_AMOUNT_INVALID")
        msg = self._bot_message(chat_id)  # type: ignore[attr-defined]
        msg["invoice"] = {
            "title": title,
            "description": description,
            "start_parameter": str(params.get("start_parameter", "")),
            "currency": currency,
            "total_amount": total,
        }
        self.payments.invoices[(chat_id, msg["message_id"])] = Invoice(
            chat_id, msg["message_id"], payload, currency, total, provider_token
        )
        return copy.deepcopy(msg)

    async def _api_answerPreCheckoutQuery(self, params: dict[str, Any]) -> Any:
        pending = self.payments.pre_checkouts.get(str(params.get("pre_checkout_query_id")))
        if pending is None or pending.answer is not None:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired")
        ok = params.get("ok") in (True, "true", "True")
        if not ok and not params.get("error_message"):
            raise ApiError(400, "Bad Request: error_message is required when ok is false")
        if time.monotonic() - pending.sent_at > PRE_CHECKOUT_DEADLINE:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired")
        pending.answer = {"ok": ok, "error_message": params.get("error_message")}
        if ok:
            self._charge(pending.query["from"], pending.invoice)
        return True

    async def _api_refundStarPayment(self, params: dict[str, Any]) -> Any:
        charge = self.payments.charges.get(str(params.get("telegram_payment_charge_id")))
        if charge is None or charge.user_id != params.get("user_id"):
            raise ApiError(400, "Bad Request: CHARGE_ID_INVALID")
        if charge.currency != STARS:
            raise ApiError(400, "Bad Request: CHARGE_ID_INVALID")
        if charge.refunded:
            raise ApiError(400, "Bad Request: CHARGE_ALREADY_REFUNDED")
        charge.refunded = True
        return True

    # ---- what the user does ------------------------------------------------------
    def checkout(
        self,
        user: Json,
        invoice_message: Json,
        *,
        total_amount: int | None = None,
        currency: str | None = None,
    ) -> str:
        """The user presses «Pay» on an invoice: a pre_checkout_query update. The amount or
        currency can be forged (as a modified client could); returns the query id."""
        invoice = self.payments.invoices[
            (invoice_message["chat"]["id"], invoice_message["message_id"])
        ]
        query_id = f"pcq{secrets.token_hex(6)}"
        query = {
            "id": query_id,
            "from": dict(user),
            "currency": currency or invoice.currency,
            "total_amount": invoice.total_amount if total_amount is None else total_amount,
            "invoice_payload": invoice.payload,
        }
        self.payments.pre_checkouts[query_id] = PreCheckout(query, invoice, time.monotonic())
        self._enqueue("pre_checkout_query", query)  # type: ignore[attr-defined]
        return query_id

    def pre_checkout_answer(self, query_id: str) -> Json | None:
        return self.payments.pre_checkouts[query_id].answer

    def send_successful_payment(self, user: Json, charge_id: str) -> Json:
        """The successful_payment message of an existing charge once more (Telegram may
        deliver an update twice, e.g. after a restart of the bot's polling)."""
        charge = self.payments.charges[charge_id]
        return self._enqueue_payment(user, charge_id, charge)

    def _charge(self, user: Json, invoice: Invoice) -> None:
        charge_id = f"stxch{secrets.token_hex(10)}"
        charge = Charge(user["id"], invoice.payload, invoice.currency, invoice.total_amount)
        self.payments.charges[charge_id] = charge
        self._enqueue_payment(user, charge_id, charge)

    def _enqueue_payment(self, user: Json, charge_id: str, charge: Charge) -> Json:
        msg = self._user_message(user)  # type: ignore[attr-defined]
        msg["successful_payment"] = {
            "currency": charge.currency,
            "total_amount": charge.total_amount,
            "invoice_payload": charge.payload,
            "telegram_payment_charge_id": charge_id,
            "provider_payment_charge_id": "" if charge.currency == STARS else f"prov-{charge_id}",
        }
        return self._enqueue("message", msg)  # type: ignore[attr-defined]
