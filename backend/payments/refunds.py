"""Giving a Telegram Stars payment back: the balance first, then Telegram, then the bill.

The balance goes down (a refund row) before Telegram is asked, so the money cannot be
both refunded and kept. Telegram's clear «no» puts the amount back (an adjustment row);
no clear answer (a network fault, a 5xx) leaves the bill REFUNDING, and a second attempt
asks Telegram again: a charge already refunded counts as done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import AbstractBaseUser

from backend.common.db import db_async
from backend.payments import services
from backend.payments.models import Bill
from backend.payments.providers.base import ProviderRefused

if TYPE_CHECKING:  # aiogram takes seconds to import: not for every manage.py command
    from backend.payments.providers.telegram import TelegramPaymentsProvider

ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"

_begin = db_async(services.bill_refund_begin)
_finish = db_async(services.bill_refund_finish)
_cancel = db_async(services.bill_refund_cancel)


async def bill_refund(
    *, provider: TelegramPaymentsProvider, bill_id: str, admin: AbstractBaseUser | None = None
) -> Bill:
    """Refund one bill. Raises BalanceError (not refundable, the balance is too low),
    ProviderRefused (Telegram said no; the balance is restored) or ProviderError (no
    clear answer; the bill stays REFUNDING, try again)."""
    bill = await _begin(bill_id=bill_id, admin=admin)
    try:
        await provider.refund(telegram_id=bill.user.telegram_id, charge_id=bill.charge_id)
    except ProviderRefused as e:
        if ALREADY_REFUNDED not in str(e):
            await _cancel(bill_id=bill_id, error=str(e), admin=admin)
            raise
    return await _finish(bill_id=bill_id)
