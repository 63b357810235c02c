"""The background check of open bills: one round reads them from the database and
asks the provider about each, a bounded number at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from django.utils import timezone
from loguru import logger

from backend.common.db import db_async
from backend.payments import selectors
from backend.payments.checks import bill_check
from backend.payments.models import Bill
from backend.payments.providers.base import PaymentProvider, ProviderError
from backend.payments.services import BillTransition

Notify = Callable[[BillTransition], Awaitable[None]]

_bills_to_check = db_async(selectors.bills_to_check)
DEFAULT_LATE_GRACE = timedelta(days=1)


async def check_bills(
    *, bills: list[Bill], provider: PaymentProvider, notify: Notify, concurrency: int = 8
) -> list[BillTransition | Exception]:
    """Check each bill at the provider and tell its owner what changed.

    A bill that cannot be checked now is logged and left for the next round; it never
    delays the others. Returns, per bill, the transition or the error.
    """
    limit = asyncio.Semaphore(concurrency)

    async def one(bill: Bill) -> BillTransition | Exception:
        async with limit:
            try:
                transition = await bill_check(provider=provider, bill=bill)
            except ProviderError as e:
                logger.warning("bill {} not checked, will retry next round: {}", bill.pk, e)
                return e
            except Exception as e:
                logger.exception("bill {} not checked, will retry next round", bill.pk)
                return e
        news = transition.unknown_status and transition.unknown_status != bill.provider_status
        if transition.changed or news:
            try:
                await notify(transition)
            except Exception:
                logger.exception("could not tell user about bill {}", bill.pk)
        return transition

    return await asyncio.gather(*(one(bill) for bill in bills))


async def poll_once(
    *,
    provider: PaymentProvider,
    notify: Notify,
    concurrency: int = 8,
    late_grace: timedelta = DEFAULT_LATE_GRACE,
) -> int:
    """Check every open bill, and every bill closed within `late_grace`, once; returns
    how many were checked."""
    bills = await _bills_to_check(late_since=timezone.now() - late_grace)
    await check_bills(bills=bills, provider=provider, notify=notify, concurrency=concurrency)
    return len(bills)


async def run_poller(
    *,
    provider: PaymentProvider,
    notify: Notify,
    interval: float,
    concurrency: int = 8,
    late_grace: timedelta = DEFAULT_LATE_GRACE,
) -> None:
    """Poll forever, every `interval` seconds; a failed round (say, the database is
    down) is logged and the next one runs as usual."""
    logger.info("bill poller started: every {} s", interval)
    while True:
        try:
            checked = await poll_once(
                provider=provider, notify=notify, concurrency=concurrency, late_grace=late_grace
            )
            if checked:
                logger.debug("poll round: {} open bills checked", checked)
        except Exception:
            logger.exception("poll round failed; retrying in {} s", interval)
        await asyncio.sleep(interval)
