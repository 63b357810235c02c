"""The background check of open bills: one round reads them from the database and
asks the provider about each, a bounded number at a time.

A 429 from the provider slows the round down instead of failing bills: the bill is
asked about again later in the same round (after the provider's Retry-After, which
pauses every request of the round, or after a growing pause of its own), and fewer
bills are asked about at once for a while (`Throttle`).
"""

from __future__ import annotations

import asyncio
import heapq
from datetime import timedelta

from django.utils import timezone
from loguru import logger

from backend.common import metrics
from backend.payments import selectors, services
from backend.payments.flows import Notify, bill_check, bill_news
from backend.payments.models import Bill
from backend.payments.providers.base import (
    PaymentProvider,
    PolledProvider,
    ProviderError,
    ProviderRateLimited,
)
from backend.payments.services import BillTransition

DEFAULT_LATE_GRACE = timedelta(days=1)
DEFAULT_CONCURRENCY = 64
RATE_LIMIT_TRIES = 6  # asks about one bill in a round while the provider answers 429
RATE_LIMIT_BACKOFF = 0.5  # seconds before the second ask without Retry-After; doubles
RATE_LIMIT_MAX_PAUSE = 60.0  # seconds: a longer Retry-After is cut to this


class Throttle:
    """How many bills of a round are asked about at once, and from when.

    Worker `i` of the round takes a new bill only while `i < limit`. A 429 halves the
    limit (once for all the requests already running when it came; never below a
    quarter of `ceiling`) and, with a Retry-After, holds every request until then;
    each `limit` answers in a row without a 429 raise the limit by one again.
    """

    def __init__(self, ceiling: int) -> None:
        self.ceiling = max(1, ceiling)
        self.floor = max(1, self.ceiling // 4)
        self.limit = self.ceiling
        self.resume_at = 0.0  # loop time before which no request starts
        self.epoch = 0  # how many times the limit was lowered
        self._answers = 0  # answers without a 429 since the limit last changed
        self._finished = False
        self._changed = asyncio.Event()

    async def turn(self, index: int) -> None:
        """Wait until worker `index` may take a new bill (or the round is over)."""
        while index >= self.limit and not self._finished:
            await self._changed.wait()

    async def ready(self) -> int:
        """Wait out the pause the provider asked for; returns the epoch to report a 429 in."""
        loop = asyncio.get_running_loop()
        while (pause := self.resume_at - loop.time()) > 0:
            await asyncio.sleep(pause)
        return self.epoch

    def answered(self) -> None:
        self._answers += 1
        if self._answers >= self.limit and self.limit < self.ceiling:
            self._answers = 0
            self.limit += 1
            self._wake()

    def rate_limited(self, *, epoch: int, retry_after: float | None) -> None:
        """A 429 to a request sent in `epoch`."""
        self._answers = 0
        if retry_after is not None:
            pause = min(max(retry_after, 0.0), RATE_LIMIT_MAX_PAUSE)
            self.resume_at = max(self.resume_at, asyncio.get_running_loop().time() + pause)
        if epoch == self.epoch:  # the first 429 since the last lowering
            self.epoch += 1
            self.limit = max(self.floor, self.limit // 2)

    def finish(self) -> None:
        """No bill is left to take: the workers waiting for their turn stop waiting."""
        self._finished = True
        self._wake()

    def _wake(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()


async def _check_one(
    *, bill: Bill, provider: PaymentProvider, throttle: Throttle
) -> BillTransition | Exception:
    """One ask about one bill, after the pause the provider asked for; the error, if any,
    is returned (a 429 is left to the caller, who asks again later)."""
    epoch = await throttle.ready()
    try:
        transition = await bill_check(provider=provider, bill=bill)
    except ProviderRateLimited as e:
        throttle.rate_limited(epoch=epoch, retry_after=e.retry_after)
        return e
    except ProviderError as e:
        logger.warning("bill {} not checked, will retry next round: {}", bill.pk, e)
        return e
    except Exception as e:
        logger.exception("bill {} not checked, will retry next round", bill.pk)
        return e
    throttle.answered()
    return transition


async def check_bills(
    *,
    bills: list[Bill],
    provider: PaymentProvider,
    notify: Notify,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[BillTransition | Exception]:
    """Check each bill at the provider and tell its owner what changed.

    At most `concurrency` workers take the bills in order, oldest first. A bill that got
    a 429 is taken again later in the round: after the provider's Retry-After, or after
    a pause of its own that doubles with each 429 (its worker goes on with other bills
    meanwhile). A bill that cannot be checked now is logged and left for the next
    round; it never delays the others, and neither does a message to a user (Telegram
    may make it wait). Returns, per bill, the transition or the error.
    """
    loop = asyncio.get_running_loop()
    throttle = Throttle(min(concurrency, len(bills)))
    pending = list(reversed(range(len(bills))))  # positions of the bills not taken yet
    retries: list[tuple[float, int, int]] = []  # (when, position, attempt): a heap
    by_position: dict[int, BillTransition | Exception] = {}
    messages: list[asyncio.Task[None]] = []

    async def worker(index: int) -> None:
        while True:
            await throttle.turn(index)
            if retries and retries[0][0] <= loop.time():
                _, position, attempt = heapq.heappop(retries)
            elif pending:
                position, attempt = pending.pop(), 1
            elif retries:
                await asyncio.sleep(retries[0][0] - loop.time())
                continue
            else:  # the workers still asking see to their own retries
                throttle.finish()
                return
            bill = bills[position]
            result = await _check_one(bill=bill, provider=provider, throttle=throttle)
            if isinstance(result, ProviderRateLimited):
                if attempt < RATE_LIMIT_TRIES:
                    pause = 0.0 if result.retry_after is not None else RATE_LIMIT_BACKOFF
                    when = loop.time() + pause * 2 ** (attempt - 1)
                    heapq.heappush(retries, (when, position, attempt + 1))
                    continue
                logger.warning("bill {} not checked, will retry next round: {}", bill.pk, result)
            by_position[position] = result
            if isinstance(result, Exception):
                continue
            if bill_news(before=bill, transition=result):
                messages.append(asyncio.create_task(_tell(notify, result)))

    try:
        await asyncio.gather(*(worker(index) for index in range(throttle.ceiling)))
        await asyncio.gather(*messages)
    finally:
        for message in messages:
            message.cancel()
    return [by_position[position] for position in range(len(bills))]


async def _tell(notify: Notify, transition: BillTransition) -> None:
    try:
        await notify(transition)
    except Exception:
        logger.exception("could not tell user about bill {}", transition.bill.pk)


async def poll_once(
    *,
    provider: PolledProvider,
    notify: Notify,
    concurrency: int = DEFAULT_CONCURRENCY,
    late_grace: timedelta = DEFAULT_LATE_GRACE,
) -> int:
    """Check every open bill, and every bill closed within `late_grace`, once; returns
    how many were checked. Its duration is observed (`topup_poll_round_seconds`)."""
    with metrics.poll_round_timer(provider.name):
        bills = await selectors.abills_to_check(
            late_since=timezone.now() - late_grace, provider=provider.name
        )
        await check_bills(bills=bills, provider=provider, notify=notify, concurrency=concurrency)
    return len(bills)


async def run_poller(
    *,
    provider: PolledProvider,
    notify: Notify,
    interval: float,
    concurrency: int = DEFAULT_CONCURRENCY,
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


async def run_expiry(*, provider: PaymentProvider, notify: Notify, interval: float) -> None:
    """For a provider that is never asked (Telegram): its open bills expire by their own
    clock, and their owners are told, every `interval` seconds."""
    while True:
        try:
            for transition in await services.abills_expire(provider=provider.name):
                try:
                    await notify(transition)
                except Exception:
                    logger.exception("could not tell user about bill {}", transition.bill.pk)
        except Exception:
            logger.exception("expiring {} bills failed; retrying in {} s", provider.name, interval)
        await asyncio.sleep(interval)


async def check_now(
    *, bills: list[Bill], providers: dict[str, PaymentProvider], notify: Notify
) -> list[BillTransition | Exception]:
    """The admin's «check now»: what the bill jobs would do to these bills, at once, for
    whichever provider each has. A polled provider is asked (as a poll round does); for
    Telegram Stars the payments Telegram lists are reconciled first (a payment whose
    update was lost is credited, not expired), then a bill past its lifetime expires.
    Returns, per bill, the transition or the error; a bill whose provider cannot be
    reached from here (`providers` lacks it) gets a ProviderError."""
    # Not at the top: it imports aiogram, which this module's other users do not need.
    from backend.payments.reconcile import lists_star_payments, reconcile_star_payments

    results: dict[str, BillTransition | Exception] = {}
    for name in dict.fromkeys(bill.provider for bill in bills):
        mine = [bill for bill in bills if bill.provider == name]
        provider = providers.get(name)
        if provider is None:
            error = ProviderError(f"{name}: not available here (TELEGRAM_API_TOKEN is not set)")
            results.update((bill.pk, error) for bill in mine)
            continue
        if lists_star_payments(provider):
            ids = {bill.pk for bill in mine}
            for credited in await reconcile_star_payments(provider=provider, notify=notify):
                if credited.bill.pk in ids:
                    results[credited.bill.pk] = credited
            mine = [bill for bill in mine if bill.pk not in results]
        checked = await check_bills(bills=mine, provider=provider, notify=notify)
        results.update(zip((bill.pk for bill in mine), checked, strict=True))
    return [results[bill.pk] for bill in bills]
