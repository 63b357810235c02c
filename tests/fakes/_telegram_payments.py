"""Telegram Payments in the fake Bot API: invoices, the pre-checkout step, the successful
payment message and Stars refunds, checked as strictly as Telegram documents them.

A test plays the user: `tg.checkout(user, invoice_message)` is the user pressing «Pay»
(a `pre_checkout_query` update); when the bot answers it with ok=True in time, the fake
charges and sends the `successful_payment` message, as Telegram does.

Every Stars charge and refund is also a Star transaction of the bot, listed by
`getStarTransactions` (newest first, as Telegram's server returns them). A test can make
a payment whose update is lost (`lose_next_payments`), or list a payment made elsewhere
(`add_star_payment`) or any other transaction (`add_star_transaction`).
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
    # What the invoice hands to the payment provider: `provider_data` (the JSON, parsed)
    # and the e-mail the form asks for (`need_email`, `send_email_to_provider`).
    provider_data: Any = None
    need_email: bool = False
    send_email_to_provider: bool = False


def _flag(value: Any) -> bool:
    """A Boolean parameter as the Bot API reads it (JSON true, or the form's "true")."""
    return value in (True, "true", "True")


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
    # The bot's Star transactions in the order they happened (StarTransaction dicts).
    star_transactions: list[Json] = field(default_factory=list)
    star_transactions_ascending: bool = False  # list them as the Bot API docs say instead
    lost_payments: int = 0  # charges to come whose successful_payment is never delivered


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
        provider_data = params.get("provider_data")
        if provider_data is not None and not isinstance(provider_data, dict):
            raise ApiError(400, "Bad Request: DATA_JSON_INVALID")
        msg = self._bot_message(chat_id)  # type: ignore[attr-defined]
        msg["invoice"] = {
            "title": title,
            "description": description,
            "start_parameter": str(params.get("start_parameter", "")),
            "currency": currency,
            "total_amount": total,
        }
        self.payments.invoices[(chat_id, msg["message_id"])] = Invoice(
            chat_id,
            msg["message_id"],
            payload,
            currency,
            total,
            provider_token,
            provider_data=provider_data,
            need_email=_flag(params.get("need_email")),
            send_email_to_provider=_flag(params.get("send_email_to_provider")),
        )
        return copy.deepcopy(msg)

    async def _api_answerPreCheckoutQuery(self, params: dict[str, Any]) -> Any:
        pending = self.payments.pre_checkouts.get(str(params.get("pre_checkout_query_id")))
        if pending is None or pending.answer is not None:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired")
        ok = _flag(params.get("ok"))
        if not ok and not params.get("error_message"):
            raise ApiError(400, "Bad Request: error_message is required when ok is false")
        if time.monotonic() - pending.sent_at > PRE_CHECKOUT_DEADLINE:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired")
        pending.answer = {"ok": ok, "error_message": params.get("error_message")}
        if ok:
            self._charge(pending.query["from"], pending.invoice)
        return True

    async def _api_refundStarPayment(self, params: dict[str, Any]) -> Any:
        charge_id = str(params.get("telegram_payment_charge_id"))
        charge = self.payments.charges.get(charge_id)
        if charge is None or charge.user_id != params.get("user_id"):
            raise ApiError(400, "Bad Request: CHARGE_ID_INVALID")
        if charge.currency != STARS:
            raise ApiError(400, "Bad Request: CHARGE_ID_INVALID")
        if charge.refunded:
            raise ApiError(400, "Bad Request: CHARGE_ALREADY_REFUNDED")
        charge.refunded = True
        partner = self._star_partner(params["user_id"], charge.payload)
        self._star_transaction(charge_id, charge.total_amount, receiver=partner)
        return True

    async def _api_getStarTransactions(self, params: dict[str, Any]) -> Any:
        offset = max(0, int(params.get("offset", 0)))
        limit = max(1, min(int(params.get("limit", 100)), 100))
        order = sorted(
            enumerate(self.payments.star_transactions),
            key=lambda t: (t[1]["date"], t[0]),
            reverse=not self.payments.star_transactions_ascending,
        )
        return {"transactions": copy.deepcopy([t for _, t in order[offset : offset + limit]])}

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

    def lose_next_payments(self, times: int = 1) -> None:
        """The next `times` charges are made, but their successful_payment update is
        never delivered (the bot was killed after Telegram counted it as received)."""
        self.payments.lost_payments += times

    def add_star_payment(
        self, user: Json, payload: str, total_amount: int, *, date: int | None = None
    ) -> str:
        """A Stars payment with this payload that the bot never hears of (an invoice of
        someone else's making, a payment long ago); listed by getStarTransactions.
        Returns its charge id."""
        charge_id = f"stxch{secrets.token_hex(10)}"
        self.payments.charges[charge_id] = Charge(user["id"], payload, STARS, total_amount)
        self._star_transaction(
            charge_id, total_amount, source=self._star_partner(user, payload), date=date
        )
        return charge_id

    def add_star_transaction(self, transaction: Json) -> None:
        """Any StarTransaction dict (a withdrawal, paid media, a gift…), listed as it is;
        its `date` defaults to now."""
        self.payments.star_transactions.append({"date": int(time.time()), **transaction})

    def _charge(self, user: Json, invoice: Invoice) -> None:
        charge_id = f"stxch{secrets.token_hex(10)}"
        charge = Charge(user["id"], invoice.payload, invoice.currency, invoice.total_amount)
        self.payments.charges[charge_id] = charge
        if invoice.currency == STARS:
            partner = self._star_partner(user, invoice.payload)
            self._star_transaction(charge_id, invoice.total_amount, source=partner)
        if self.payments.lost_payments:
            self.payments.lost_payments -= 1
            return
        self._enqueue_payment(user, charge_id, charge)

    @staticmethod
    def _star_partner(user: Json | int, payload: str) -> Json:
        """A TransactionPartnerUser of an invoice payment."""
        if isinstance(user, int):
            user = {"id": user, "is_bot": False, "first_name": "User"}
        return {
            "type": "user",
            "transaction_type": "invoice_payment",
            "user": dict(user),
            "invoice_payload": payload,
        }

    def _star_transaction(self, transaction_id: str, amount: int, **parts: Any) -> None:
        """Record a Star transaction: `source` for an incoming one, `receiver` for an
        outgoing one; `date` defaults to now."""
        date = parts.pop("date", None)
        self.payments.star_transactions.append(
            {
                "id": transaction_id,
                "amount": amount,
                "date": int(time.time()) if date is None else date,
                **parts,
            }
        )

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
