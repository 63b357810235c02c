"""Fiscal receipts (54-ФЗ) in YooKassa's shape: the `receipt` of a payment made through
its API, and the same receipt in a Telegram invoice's `provider_data` when the provider
token's provider is YooKassa.

A top-up is one item: «Пополнение баланса» (what a fiscal receipt should name: the
payment's own description, with the bill's lifetime, is for the payment page), quantity
1, the whole amount, the owner's VAT code, `payment_subject=service`,
`payment_mode=full_payment`. The VAT rate and the tax system are the owner's legal
choice: the bot only passes their codes on.

The settings read this module: no Django, no provider library here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from backend.common.money import CENT

# YooKassa's tables (yookassa.ru/developers/payment-acceptance/receipts/54fz/parameters-values):
# vat_code 1 no VAT, 2 0%, 3 10%, 4 20%, 5 10/110, 6 20/120, 7 5%, 8 7%, 9 5/105,
# 10 7/107; tax_system_code 1 ОСН, 2 УСН доходы, 3 УСН доходы минус расходы, 4 ЕНВД,
# 5 ЕСХН, 6 патент.
VAT_CODES = range(1, 11)
TAX_SYSTEM_CODES = range(1, 7)
PAYMENT_SUBJECT = "service"
PAYMENT_MODE = "full_payment"
ITEM_DESCRIPTION = "Пополнение баланса"
QUANTITY = "1.00"

EMAIL_MAX = 254
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@(?:[^@\s\x00-\x1f\x7f.]+\.)+[^@\s\x00-\x1f\x7f.]+")
_PHONE_SEPARATORS = re.compile(r"[\s\-()]")
_RUSSIAN_PHONE = re.compile(r"(?:\+7|7|8)(\d{10})")


class ReceiptContactError(ValueError):
    """Neither an e-mail nor a Russian phone number."""


def receipt_contact_parse(text: str) -> str:
    """The contact as YooKassa wants it: an e-mail as written (spaces around it cut), or
    a Russian phone as 11 digits from 7 (`+7 (916) 123-45-67`, `8 916 1234567` →
    `79161234567`). Raises ReceiptContactError for anything else."""
    text = text.strip()
    if "@" in text:
        if len(text) > EMAIL_MAX or not _EMAIL.fullmatch(text):
            raise ReceiptContactError(f"not an e-mail address: {text[:80]!r}")
        return text
    match = _RUSSIAN_PHONE.fullmatch(_PHONE_SEPARATORS.sub("", text))
    if match is None:
        raise ReceiptContactError(f"not a Russian phone number or an e-mail: {text[:80]!r}")
    return "7" + match[1]


def receipt_customer(contact: str) -> dict[str, str]:
    """A stored contact as the receipt's `customer`: an e-mail has an @, a phone has
    only digits (`receipt_contact_parse` made it so)."""
    return {"email": contact} if "@" in contact else {"phone": contact}


@dataclass(frozen=True)
class ReceiptSettings:
    """What the owner chose: YOOKASSA_VAT_CODE and YOOKASSA_TAX_SYSTEM_CODE."""

    vat_code: int = 1
    tax_system_code: int | None = None  # None: not sent, the shop's own

    def receipt(self, *, amount: Decimal, currency: str, contact: str = "") -> dict[str, Any]:
        """The receipt of a one-item top-up of `amount` (two decimals); with `contact`,
        its `customer` (a Telegram invoice has none: Telegram asks for the e-mail)."""
        value = f"{amount.quantize(CENT)}"
        receipt: dict[str, Any] = {}
        if contact:
            receipt["customer"] = receipt_customer(contact)
        receipt["items"] = [
            {
                "description": ITEM_DESCRIPTION,
                "quantity": QUANTITY,
                "amount": {"value": value, "currency": currency},
                "vat_code": self.vat_code,
                "payment_subject": PAYMENT_SUBJECT,
                "payment_mode": PAYMENT_MODE,
            }
        ]
        if self.tax_system_code is not None:
            receipt["tax_system_code"] = self.tax_system_code
        return receipt
