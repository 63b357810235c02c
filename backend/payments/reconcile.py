"""Telegram Stars payments whose `successful_payment` update never arrived.

Telegram considers an update delivered once the bot has asked for the next ones; a bot
killed in between never sees it again. For Stars, getStarTransactions still lists the
payment: every `interval` seconds (and at start) the bot reads the payments made since
its oldest Stars bill that could still be paid (at most `STARS_RECONCILE_WINDOW` back), and
credits those whose payload is one of its bills and whose charge id no bill records
yet, through the same service as the update (one credit per charge id, whoever comes
first), telling the user as usual. Provider-token payments are listed by no Bot API
call and cannot be reconciled this way.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TypeGuard

from django.utils import timezone
from loguru import logger

from backend.common.db import db_async
from backend.payments import selectors, services
from backend.payments.flows import Notify
from backend.payments.providers.base import PaymentProvider, ProviderError
from backend.payments.providers.telegram import (
    STAR_TRANSACTIONS_MAX_PAGES,
    StarPayment,
    TelegramPaymentsProvider,
)
from backend.payments.services import BillTransition
from backend.payments.vocabulary import STARS_CURRENCY, STARS_RECONCILE_WINDOW, ProviderName

RECONCILE_INTERVAL = 300.0  # seconds between two reads of getStarTransactions
CLOCK_MARGIN = timedelta(minutes=10)  # Telegram's clock may be behind ours
PROVIDER = ProviderName.TELEGRAM


def lists_star_payments(provider: PaymentProvider) -> TypeGuard[TelegramPaymentsProvider]:
    """A provider whose payments this module can read back: Telegram in Stars."""
    return isinstance(provider, TelegramPaymentsProvider) and provider.takes_stars


@db_async
def _unpaid_since(since: datetime) -> datetime | None:
    return selectors.unpaid_invoices_since(provider=PROVIDER, currency=STARS_CURRENCY, since=since)


@db_async
def _not_recorded(payments: tuple[StarPayment, ...]) -> list[StarPayment]:
    """The payments of our Stars bills whose charge id no bill records yet."""
    ours = selectors.bill_ids_invoiced(
        provider=PROVIDER, currency=STARS_CURRENCY, bill_ids=[p.payload for p in payments]
    )
    known = selectors.charge_ids_known(
        provider=PROVIDER, charge_ids=[p.charge_id for p in payments]
    )
    return [p for p in payments if p.payload in ours and p.charge_id not in known]


async def reconcile_star_payments(
    *,
    provider: TelegramPaymentsProvider,
    notify: Notify,
    window: timedelta = STARS_RECONCILE_WINDOW,
    max_pages: int = STAR_TRANSACTIONS_MAX_PAGES,
    skip: set[str] | None = None,
) -> list[BillTransition]:
    """One round: credit the Stars payments Telegram lists that no bill records, oldest
    first, and tell their payers; returns the credits made.

    Telegram is not asked when no Stars bill of the last `window` could still be paid.
    A payment that matches its bill in nothing (another payer, another sum, a bill paid
    by another charge) is not credited: the service logs it as an ERROR, and its charge
    id goes into `skip`, so that later rounds of the same loop do not log it again.
    ProviderError: Telegram did not answer; nothing was changed.
    """
    skip = set() if skip is None else skip
    since = await _unpaid_since(timezone.now() - window)
    if since is None:
        return []
    since -= CLOCK_MARGIN
    read = await provider.star_payments(since=since, max_pages=max_pages)
    if not read.complete:
        logger.warning(
            "Stars reconciliation read {} pages of getStarTransactions and did not get "
            "back to {:%Y-%m-%d %H:%M}: older payments were not looked at",
            read.pages, since,
        )  # fmt: skip
    missing = [p for p in await _not_recorded(read.payments) if p.charge_id not in skip]
    credited = []
    for payment in sorted(missing, key=lambda p: p.date):
        try:
            transition = await services.abill_pay_reported(
                bill_id=payment.payload,
                telegram_id=payment.telegram_id,
                currency=STARS_CURRENCY,
                total=payment.stars,
                charge_id=payment.charge_id,
            )
        except Exception:
            logger.exception(
                "Stars payment {} of bill {!r} not credited, will retry next round",
                payment.charge_id, payment.payload,
            )  # fmt: skip
            continue
        if transition.mismatch:
            skip.add(payment.charge_id)
            continue
        if not transition.credited:
            continue  # its update came meanwhile and credited it
        logger.warning(
            "Stars payment {} of bill {} was never reported by an update: credited from "
            "getStarTransactions",
            payment.charge_id, transition.bill.pk,
        )  # fmt: skip
        credited.append(transition)
        try:
            await notify(transition)
        except Exception:
            logger.exception("could not tell user about bill {}", transition.bill.pk)
    return credited


async def run_star_reconciler(
    *,
    provider: PaymentProvider,
    notify: Notify,
    interval: float = RECONCILE_INTERVAL,
    window: timedelta = STARS_RECONCILE_WINDOW,
) -> None:
    """Reconcile Stars payments at once, then every `interval` seconds, forever. A failed
    round (Telegram or the database down) is logged and the next one runs as usual.
    Returns at once for a provider that does not take Stars (a provider token)."""
    if not lists_star_payments(provider):
        logger.debug("{}: no Stars payments to reconcile", provider.name)
        return
    logger.info("Stars reconciliation started: getStarTransactions every {} s", interval)
    mismatched: set[str] = set()
    while True:
        try:
            credited = await reconcile_star_payments(
                provider=provider, notify=notify, window=window, skip=mismatched
            )
            if credited:
                logger.info("Stars reconciliation: {} lost payments credited", len(credited))
        except ProviderError as e:
            logger.warning("Stars reconciliation failed ({}); retrying in {} s", e, interval)
        except Exception:
            logger.exception("Stars reconciliation failed; retrying in {} s", interval)
        await asyncio.sleep(interval)
