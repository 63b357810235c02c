"""What happens to a bill with a provider in the loop, side by side: issuing it
(`bill_issue`), checking it (`bill_check`), refunding it (`bill_refund`).

Each writes through `backend.payments.services` and talks to the provider through its
adapter; none of them talks to users: the bot, the bill jobs and the admin tell people
what these return.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from backend.common import metrics
from backend.payments import services
from backend.payments.models import Bill
from backend.payments.providers.base import (
    PaymentProvider,
    PolledProvider,
    ProviderBill,
    ProviderNotFound,
    ProviderRefused,
)
from backend.payments.services import BillTransition
from backend.payments.vocabulary import BillStatus
from backend.users.models import TelegramUser

if TYPE_CHECKING:  # aiogram takes seconds to import: not for every manage.py command
    from backend.payments.providers.telegram import TelegramPaymentsProvider

# Tells a bill's owner what a transition means for them (the bot's BillNotifier).
Notify = Callable[[BillTransition], Awaitable[None]]

# A NEW bill younger than this may still be in the middle of its creation call.
NEW_BILL_GRACE = timedelta(minutes=2)


# --- issuing ------------------------------------------------------------------------------


class BillNotIssued(Exception):
    """The provider did not make the bill: it is FAILED here and can never be paid."""

    def __init__(self, bill: Bill, error: Exception) -> None:
        super().__init__(f"bill {bill.pk} not created: {error}")
        self.bill, self.error = bill, error


async def bill_issue(
    *,
    provider: PaymentProvider,
    user: TelegramUser,
    amount: Decimal,
    lifetime: timedelta,
    max_open: int | None,
    comment: str,
) -> Bill:
    """Write a NEW bill, have the provider make it, and store what it answered: the
    bill comes back WAITING, with its pay link (empty when the provider has put its
    payment form into the chat itself, as Telegram does).

    Raises TooManyOpenBills (nothing written) or BillNotIssued (the provider failed or
    refused; the bill is FAILED; the caller logs it, with the provider's error)."""
    bill = await services.abill_create(
        user=user, amount=amount, lifetime=lifetime, max_open=max_open, provider=provider.name
    )
    try:
        remote = await provider.create_bill(
            bill_id=bill.pk,
            amount=bill.amount,
            currency=bill.currency,
            expires_at=bill.expires_at,
            comment=comment,
            telegram_id=user.telegram_id,
            receipt_contact=user.receipt_contact,
        )
    except Exception as e:
        await services.abill_mark_failed(bill_id=bill.pk, error=str(e))
        metrics.bill_failed(provider.name)
        raise BillNotIssued(bill, e) from e
    bill = await services.abill_mark_created(
        bill_id=bill.pk,
        pay_url=remote.pay_url,
        provider_status=remote.provider_status,
        quote=remote.quote,
        charge_id=remote.charge_id,
    )
    metrics.bill_created(provider.name)
    return bill


# --- checking -----------------------------------------------------------------------------


async def _apply(
    bill: Bill, remote: ProviderBill, *, expired_locally: bool = False
) -> BillTransition:
    return await services.abill_apply_status(
        bill_id=bill.pk,
        status=remote.status,
        provider_status=remote.provider_status,
        amount=remote.amount,
        currency=remote.currency,
        pay_url=remote.pay_url,
        expired_locally=expired_locally,
    )


def _unchanged(bill: Bill, remote: ProviderBill, *, now: datetime) -> bool:
    """The provider says what we already have: still WAITING, not past its lifetime.

    Most bills of a round are like that, and applying the answer would read the bill in
    a transaction of its own only to change nothing. A bill that moved meanwhile (the
    check button, another process) is no business of this answer either.
    """
    return (
        bill.status == Bill.Status.WAITING
        and remote.status == BillStatus.WAITING
        and remote.provider_status == bill.provider_status
        and now < bill.expires_at
    )


async def bill_check(*, provider: PaymentProvider, bill: Bill) -> BillTransition:
    """Refresh one bill: the poller's round, the check button, the admin's «check now».

    A polled provider is asked. A bill still WAITING after its lifetime is rejected at
    the provider, so nobody can pay it unnoticed later; if the provider answers that it
    was paid after all, the payment is credited; if it cannot reject it, the bill
    expires here all the same (a late payment is still credited, as for any expired
    bill). A provider that reports its payments
    itself is not asked: its open bill past its lifetime expires.
    """
    now = timezone.now()
    if not isinstance(provider, PolledProvider):
        if bill.is_open and now >= bill.expires_at:
            return await services.abill_expire(bill_id=bill.pk)
        return BillTransition(bill=bill, changed=False)
    if bill.status in Bill.LATE_PAYABLE:  # only a late PAID changes these
        remote = await provider.get_bill(bill_id=bill.pk, charge_id=bill.charge_id)
        if remote.status != BillStatus.PAID:
            return BillTransition(bill=bill, changed=False)
        return await _apply(bill, remote)
    if bill.status == Bill.Status.NEW and now - bill.created_at < NEW_BILL_GRACE:
        return BillTransition(bill=bill, changed=False)
    try:
        remote = await provider.get_bill(bill_id=bill.pk, charge_id=bill.charge_id)
    except ProviderNotFound:
        if bill.status != Bill.Status.NEW:
            raise
        await services.abill_mark_failed(bill_id=bill.pk, error="the provider has no such bill")
        bill.status = Bill.Status.FAILED
        return BillTransition(bill=bill, changed=True)
    if _unchanged(bill, remote, now=now):
        return BillTransition(bill=bill, changed=False)
    transition = await _apply(bill, remote)
    if transition.bill.is_open and now >= bill.expires_at and remote.status == BillStatus.WAITING:
        remote = await provider.reject_bill(bill_id=bill.pk, charge_id=bill.charge_id)
        transition = await _apply(bill, remote, expired_locally=True)
        if transition.bill.is_open and remote.status == BillStatus.WAITING:
            # The provider cannot close it (YooKassa's pending payment): it expires
            # here, and a payment that still comes within the grace period is credited.
            transition = await services.abill_expire(
                bill_id=bill.pk, provider_status=remote.provider_status
            )
    return transition


def bill_news(*, before: Bill, transition: BillTransition) -> bool:
    """Whether a check of `before` found something its owner is told: a move of its
    status, or a provider's word we do not know that differs from the one stored."""
    unknown = transition.unknown_status
    return transition.changed or bool(unknown and unknown != before.provider_status)


# --- refunding (Telegram Stars) -----------------------------------------------------------

ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"


async def bill_refund(
    *, provider: TelegramPaymentsProvider, bill_id: str, admin: AbstractBaseUser | None = None
) -> Bill:
    """Give a Telegram Stars payment back: the balance first, then Telegram, then the bill.

    The balance goes down (a refund row) before Telegram is asked, so the money cannot
    be both refunded and kept. Telegram's clear «no» puts the amount back (an adjustment
    row) and raises ProviderRefused; no clear answer (a network fault, a 5xx) raises
    ProviderError and leaves the bill REFUNDING, and a second attempt asks Telegram
    again: a charge already refunded counts as done. BalanceError: not refundable, or
    the balance is too low.
    """
    bill = await services.abill_refund_begin(bill_id=bill_id, admin=admin)
    try:
        await provider.refund(telegram_id=bill.user.telegram_id, charge_id=bill.charge_id)
    except ProviderRefused as e:
        if ALREADY_REFUNDED not in str(e):
            await services.abill_refund_cancel(bill_id=bill_id, error=str(e), admin=admin)
            raise
    return await services.abill_refund_finish(bill_id=bill_id)
