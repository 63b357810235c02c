from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connections

from backend import log_setup as backend_logging
from backend.bot.config import BotConfig, WebhookConfig
from backend.bot.dispatcher import build_bot, build_dispatcher
from backend.bot.runner import run_bot
from backend.bot.shared_state import shared_state
from backend.payments.providers.qiwi import QiwiProvider
from backend.payments.providers.telegram import TelegramPaymentsProvider
from tests.fakes import FakeQiwi, FakeTelegram, make_secret_key

# Shaped like the real thing, so the log redaction is tested against real shapes.
TOKEN = "7012345678:AAHfakeTokenForTests_0123456789abcdef"
QIWI_KEY = make_secret_key()
PROVIDER_TOKEN = "381764678:TEST:5f0c2a9e71d4"  # a Telegram Payments provider token
ADMIN_ID = 900001


@pytest.fixture(scope="session", autouse=True)
def log_dir(tmp_path_factory):
    """Logs of the test run go to a folder of their own, with the test secrets redacted."""
    path = tmp_path_factory.mktemp("logs")
    backend_logging.setup({"level": "DEBUG", "dir": path, "secrets": [TOKEN, QIWI_KEY]})
    return path


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        yield fake
    assert not fake.unexpected, f"the bot called methods the fake does not know: {fake.unexpected}"


@pytest.fixture
async def qiwi() -> AsyncIterator[FakeQiwi]:
    async with FakeQiwi(secret_key=QIWI_KEY) as fake:
        yield fake


@pytest.fixture
def config() -> BotConfig:
    return BotConfig(
        admin_ids=frozenset({ADMIN_ID}),
        admin_site_url="https://admin.example.com/admin/",
        min_amount=Decimal(1),
        max_amount=Decimal(100000),
        bill_lifetime=timedelta(minutes=5),
        # The poller runs once at start, then waits: the check button is tested alone.
        # Poller tests start the bot with a short interval (`make_bot`).
        poll_interval=3600,
        # The tests click faster than people; test_flood.py starts the bot with the defaults.
        flood_rate=1000.0,
        flood_burst=1000,
        lock_retry=0.2,
    )


class BotProcess:
    """The bot as `runbot` runs it (real aiogram, real pyqiwip2p), in this event loop."""

    def __init__(
        self,
        tg: FakeTelegram,
        qiwi: FakeQiwi,
        config: BotConfig,
        qiwi_timeout: float = 2,
        payments: tuple[str, ...] = ("qiwi",),
        telegram_payments: dict | None = None,
        redis_url: str = "",
        redis_prefix: str = "topup-test",
    ) -> None:
        self.tg, self.qiwi, self.config = tg, qiwi, config
        self.redis_url, self.redis_prefix = redis_url, redis_prefix
        self.qiwi_timeout = qiwi_timeout
        self.payments = payments
        # TelegramPaymentsProvider's settings: provider_token, currency, rubles_per_star
        self.telegram_payments = {
            "provider_token": "",
            "currency": "RUB",
            "rubles_per_star": Decimal(1),
            **(telegram_payments or {}),
        }
        self._task: asyncio.Task | None = None
        self._stop: asyncio.Event | None = None

    async def start(self, *, polling: bool = True, webhook: WebhookConfig | None = None) -> None:
        """Start; with `polling` wait until it polls (a second bot process waits instead),
        with `webhook` until it has set its webhook."""
        bot = build_bot(token=TOKEN, api_server=self.tg.base_url)
        makers = {
            "qiwi": lambda: QiwiProvider(
                secret_key=QIWI_KEY, api_url=self.qiwi.base_url, timeout=self.qiwi_timeout
            ),
            "telegram": lambda: TelegramPaymentsProvider(bot=bot, **self.telegram_payments),
        }
        providers = {name: makers[name]() for name in self.payments}
        self.shared = shared_state(
            config=self.config, redis_url=self.redis_url, prefix=self.redis_prefix
        )
        self.dp = build_dispatcher(providers=providers, config=self.config, shared=self.shared)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(
            run_bot(
                bot=bot,
                providers=providers,
                config=self.config,
                shared=self.shared,
                dispatcher=self.dp,
                handle_signals=False,
                stop=self._stop,
                webhook=webhook,
            )
        )
        if webhook is not None:
            await self.tg.wait_call("setWebhook")
        elif polling:
            await self.tg.wait_call("getUpdates")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stop.set()  # also while it waits for the lock or for Telegram
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self._task, timeout=10)
        self._task = None


@pytest.fixture
async def make_bot(transactional_db, tg, qiwi, config):
    """Starts the bot with some settings changed: `await make_bot(poll_interval=0.2)`."""
    started: list[BotProcess] = []

    async def make(
        *,
        polling: bool = True,
        qiwi_timeout: float = 2,
        payments: tuple[str, ...] = ("qiwi",),
        telegram_payments: dict | None = None,
        webhook: WebhookConfig | None = None,
        redis_url: str = "",
        redis_prefix: str = "topup-test",
        **changes,
    ) -> BotProcess:
        process = BotProcess(
            tg,
            qiwi,
            dataclasses.replace(config, **changes),
            qiwi_timeout,
            payments,
            telegram_payments,
            redis_url,
            redis_prefix,
        )
        await process.start(polling=polling, webhook=webhook)
        started.append(process)
        return process

    yield make
    for process in started:
        await process.stop()
    # The ORM thread of sync_to_async keeps its connection; close it so the test
    # database can be flushed and dropped.
    await sync_to_async(connections.close_all)()


@pytest.fixture
async def bot(make_bot) -> BotProcess:
    return await make_bot()


@pytest.fixture
async def boss_client(transactional_db, async_client, settings, tg, qiwi):
    """An admin superuser's client; the admin reaches the fake Telegram and QIWI."""
    settings.QIWI_SECRET_KEY = QIWI_KEY
    settings.QIWI_API_URL = qiwi.base_url
    settings.TELEGRAM_API_TOKEN = TOKEN
    settings.TELEGRAM_API_SERVER = tg.base_url
    boss = await sync_to_async(User.objects.create_superuser)("boss", "b@example.com", "pw")
    await sync_to_async(async_client.force_login)(boss)
    yield async_client
    await sync_to_async(connections.close_all)()
