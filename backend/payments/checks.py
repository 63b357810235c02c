"""Asking the provider about a bill and applying the answer: shared by the check
button and the poller, so both make exactly the same transitions."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from backend.common.db import db_async
from backend.payments import services
from backend.payments.models import Bill
from backend.payments.providers.base import PaymentProvider, ProviderBill, ProviderNotFound

# A NEW bill younger than this may still be in the middle of its creation call.
NEW_BILL_GRACE = timedelta(minutes=2)

_apply = db_async(services.bill_apply_status)
_mark_failed = db_async(services.bill_mark_failed)


async def _apply_remote(bill: Bill, remote: ProviderBill, *, expired_locally: bool = False):
    return await _apply(
        bill_id=bill.pk,
        status=remote.status,
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
        and remote.status in services.PROVIDER_OPEN
        and remote.status == bill.provider_status
        and now < bill.expires_at
    )


async def bill_check(*, provider: PaymentProvider, bill: Bill) -> services.BillTransition:
    """Refresh one open bill from the provider.

    A bill still WAITING after its lifetime is rejected at the provider, so nobody can
    pay it unnoticed later; if the provider answers that it was paid after all, the
    payment is credited.
    """
    now = timezone.now()
    if bill.status in Bill.LATE_PAYABLE:  # only a late PAID changes these
        remote = await provider.get_bill(bill_id=bill.pk)
        if remote.status != "PAID":
            return services.BillTransition(bill=bill, changed=False)
        return await _apply_remote(bill, remote)
    if bill.status == Bill.Status.NEW and now - bill.created_at < NEW_BILL_GRACE:
        return services.BillTransition(bill=bill, changed=False)
    try:
        remote = await provider.get_bill(bill_id=bill.pk)
    except ProviderNotFound:
        if bill.status != Bill.Status.NEW:
            raise
        await _mark_failed(bill_id=bill.pk, error="the provider has no such bill")
        bill.status = Bill.Status.FAILED
        return services.BillTransition(bill=bill, changed=True)
    if _unchanged(bill, remote, now=now):
        return services.BillTransition(bill=bill, changed=False)
    transition = await _apply_remote(bill, remote)
    if transition.bill.is_open and now >= bill.expires_at and remote.status == "WAITING":
        remote = await provider.reject_bill(bill_id=bill.pk)
        transition = await _apply_remote(bill, remote, expired_locally=True)
    return transition
