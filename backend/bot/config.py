from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit

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
    poll_concurrency: int = 64  # bills asked about at a polled provider at once
    max_open_bills: int = 3
    flood_rate: float = 2.0  # updates a second one user may send on average
    flood_burst: int = 10  # ... and at once
    lock_retry: float = 5.0  # seconds between looks at the single-instance lock
    late_payment_grace: timedelta = timedelta(days=1)  # closed bills still asked about
    update_concurrency: int = 64  # updates handled at once; the rest wait at Telegram
    # seconds between reads of getStarTransactions (backend.payments.reconcile)
    star_reconcile_interval: float = 300.0
    notice_interval: float = 2.0  # seconds between looks for notices to send
    # seconds between closings of the dashboard's past days (backend/payments/dashboard_days.py)
    dashboard_close_interval: float = 300.0
    broadcast_rate: float = 25.0  # broadcast messages a second at most (BROADCAST_RATE)

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
            broadcast_rate=float(settings.BROADCAST_RATE),
        )


SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,256}")  # Telegram's rule for secret_token


@dataclass(frozen=True)
class WebhookConfig:
    base_url: str  # the public origin Telegram posts to: https://bot.example.com
    path: str  # /telegram/webhook
    secret: str
    host: str  # what the HTTP server binds
    port: int
    max_connections: int = 40
    workers: int = 1

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + self.path

    @classmethod
    def from_values(
        cls,
        *,
        base_url: str,
        path: str,
        secret: str,
        listen: str,
        max_connections: str,
        workers: str,
    ) -> WebhookConfig:
        """The settings checked one by one: a ValueError names the first wrong one."""
        parts = urlsplit(base_url)
        if not base_url:
            raise ValueError("WEBHOOK_BASE_URL is not set: the public https:// origin of the bot")
        # http only to this machine: a local Bot API server takes it (and so do the tests)
        secure = parts.scheme == "https" or (
            parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
        )
        if not secure or not parts.netloc or parts.path not in ("", "/"):
            raise ValueError(f"WEBHOOK_BASE_URL must be an https:// origin, got {base_url!r}")
        if not path.startswith("/") or "?" in path or "#" in path:
            raise ValueError(f"WEBHOOK_PATH must start with /, got {path!r}")
        if not secret:
            raise ValueError("WEBHOOK_SECRET is not set: 1-256 of A-Z a-z 0-9 _ -")
        if not SECRET_SHAPE.fullmatch(secret):
            raise ValueError("WEBHOOK_SECRET must be 1-256 of A-Z a-z 0-9 _ - (Telegram's rule)")
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"WEBHOOK_LISTEN must be host:port, got {listen!r}")
        if not max_connections.isdigit() or not 1 <= int(max_connections) <= 100:
            raise ValueError(f"WEBHOOK_MAX_CONNECTIONS must be 1-100, got {max_connections!r}")
        if not workers.isdigit() or int(workers) < 1:
            raise ValueError(f"BOT_WORKERS must be a whole number from 1, got {workers!r}")
        return cls(
            base_url=base_url,
            path=path,
            secret=secret,
            host=host.strip("[]"),
            port=int(port),
            max_connections=int(max_connections),
            workers=int(workers),
        )


def webhook_config_from_settings() -> WebhookConfig | None:
    """None in polling mode; the checked webhook settings in webhook mode. A ValueError
    names the first wrong setting in one line (runbot and scripts/run.sh say it)."""
    if settings.BOT_MODE == "polling":
        return None
    if settings.BOT_MODE != "webhook":
        raise ValueError(f"BOT_MODE must be polling or webhook, got {settings.BOT_MODE!r}")
    webhook = WebhookConfig.from_values(
        base_url=settings.WEBHOOK_BASE_URL,
        path=settings.WEBHOOK_PATH,
        secret=settings.WEBHOOK_SECRET,
        listen=settings.WEBHOOK_LISTEN,
        max_connections=settings.WEBHOOK_MAX_CONNECTIONS,
        workers=settings.BOT_WORKERS,
    )
    if webhook.workers > 1 and not settings.REDIS_URL:
        raise ValueError(
            "REDIS_URL is not set: BOT_WORKERS above 1 share the dialogs through Redis"
        )
    return webhook
