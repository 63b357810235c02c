from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings


@dataclass(frozen=True)
class BotConfig:
    """What the handlers need from the settings; handlers receive it as `config`."""

    admin_ids: frozenset[int]
    admin_site_url: str
    min_amount: Decimal
    max_amount: Decimal
    bill_lifetime: timedelta
    poll_interval: float
    poll_concurrency: int = 64  # bills asked about at QIWI at once
    max_open_bills: int = 3
    flood_rate: float = 2.0  # updates a second one user may send on average
    flood_burst: int = 10  # ... and at once
    lock_retry: float = 5.0  # seconds between looks at the single-instance lock
    late_payment_grace: timedelta = timedelta(days=1)  # closed bills still asked about
    update_concurrency: int = 64  # updates handled at once; the rest wait at Telegram
    # seconds between reads of getStarTransactions (backend.payments.reconcile)
    star_reconcile_interval: float = 300.0

    @classmethod
    def from_settings(cls) -> BotConfig:
        return cls(
            admin_ids=frozenset(settings.ADMIN_TELEGRAM_IDS),
            admin_site_url=settings.ADMIN_SITE_URL,
            min_amount=settings.MIN_AMOUNT,
            max_amount=settings.MAX_AMOUNT,
            bill_lifetime=timedelta(seconds=settings.BILL_LIFETIME_SECONDS),
            poll_interval=float(settings.BILL_POLL_INTERVAL_SECONDS),
            poll_concurrency=settings.BILL_POLL_CONCURRENCY,
            max_open_bills=settings.MAX_OPEN_BILLS,
            late_payment_grace=timedelta(seconds=settings.BILL_LATE_PAYMENT_GRACE_SECONDS),
            update_concurrency=settings.BOT_UPDATE_CONCURRENCY,
        )
