"""Callback data of the inline buttons. Anyone can send any callback data, so each
factory accepts only what the bot itself packs: anything else matches no handler and
gets the fallback's empty answer."""

from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from pydantic import BeforeValidator, Field

from backend.payments.vocabulary import ProviderName


def _plain_digits(value: object) -> object:
    # pydantic alone would take «1_000», «+5» or «5.0» from a forged button.
    if isinstance(value, str) and not (value.isascii() and value.isdigit() and len(value) < 10):
        raise ValueError("not an amount the bot packs")
    return value


Amount = Annotated[int, BeforeValidator(_plain_digits)]


class TopUp(CallbackData, prefix="topup"):
    pass


class Cancel(CallbackData, prefix="cancel"):
    pass


class MyBalance(CallbackData, prefix="balance"):
    pass


class Confirm(CallbackData, prefix="confirm"):
    """Carries the amount, so a confirmation survives a restart of the bot."""

    amount: Amount


class PayWith(CallbackData, prefix="pay"):
    """The chosen way to pay, with the amount (as Confirm carries it)."""

    provider: ProviderName
    amount: Amount


class CheckBill(CallbackData, prefix="check"):
    bill_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]  # services.bill_create's ids
