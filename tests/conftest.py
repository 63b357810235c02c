"""Fixtures and hooks only: the test secrets are in tests/constants.py, the helpers
(and the `BotProcess` that `make_bot` starts) in tests/helpers.py."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.db import connections
from django.test import Client
from loguru import logger

from backend import log_setup
from backend.bot.config import BotConfig, WebhookConfig
from tests.constants import (
    ADMIN_ID,
    PROVIDER_TOKEN,
    QIWI_KEY,
    TOKEN,
    WEBHOOK_SECRET,
    YOOKASSA_BASIC,
    YOOKASSA_KEY,
    YOOKASSA_SHOP_ID,
)
from tests.fakes import FakeQiwi, FakeTelegram, FakeYooKassa
from tests.helpers import ROOT, BotProcess, free_port, tracked_files, written_files


@pytest.fixture(scope="session")
def session_logs(tmp_path_factory):
    """Logs of the test run go to a folder of their own, with the test secrets redacted.
    A module may override `log_dir` (tests/test_deploy_security.py does); no session
    fixture may depend on a name a module overrides, so they depend on this one."""
    path = tmp_path_factory.mktemp("logs")
    log_setup.setup({"level": "DEBUG", "dir": path, "secrets": [TOKEN, QIWI_KEY, YOOKASSA_KEY]})
    return path


@pytest.fixture(scope="session")
def log_dir(session_logs):
    """The test run's log folder, where the tests read what was logged."""
    return session_logs


@pytest.fixture(scope="session", autouse=True)
def no_secret_written(session_logs):
    """Sets the logs up before the first test. After the last test, whatever order the
    tests ran in: no secret is in any file under the project or the logs folder —
    logs, tracebacks, crash files a library dropped. A leak fails the run as an error at
    the teardown of the last test."""
    # bot.log is there however few tests run, and however few of them log.
    logger.debug("test session: the secrets check reads this folder at the end")
    yield
    files = [*written_files(ROOT, tracked_files()), *written_files(session_logs)]
    assert any(p.name == "bot.log" for p in files)  # the logs were looked at
    leaks = [
        path
        for path in files
        for secret in (TOKEN, QIWI_KEY, PROVIDER_TOKEN, YOOKASSA_KEY, YOOKASSA_BASIC)
        if secret.encode() in path.read_bytes()
    ]
    assert leaks == []
    assert not list(ROOT.glob("QiwiCrash*"))


@pytest.fixture(scope="session", autouse=True)
def ledger_emptied_by_truncate(django_db_setup, django_db_blocker):
    """Django empties the tables between transactional tests with DELETE on MySQL, and
    the ledger's trigger refuses a DELETE (as it should): the ledger is emptied with
    TRUNCATE there, which fires no trigger (as PostgreSQL's flush always does)."""
    ops = connections["default"].ops
    if connections["default"].vendor != "mysql":
        yield
        return
    flush = ops.sql_flush
    table = ops.quote_name("payments_ledgerentry")

    def sql_flush(style, tables, **kwargs):
        return [
            f"TRUNCATE {table};" if statement.endswith(f"{table};") else statement
            for statement in flush(style, tables, **kwargs)
        ]

    ops.sql_flush = sql_flush
    yield
    del ops.sql_flush


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
async def yookassa() -> AsyncIterator[FakeYooKassa]:
    async with FakeYooKassa(shop_id=YOOKASSA_SHOP_ID, secret_key=YOOKASSA_KEY) as fake:
        yield fake
    assert not fake.unexpected, f"calls the fake YooKassa does not know: {fake.unexpected}"


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


@pytest.fixture
def webhook() -> WebhookConfig:
    """Webhook mode on a free port of 127.0.0.1: `make_bot(webhook=webhook)`."""
    port = free_port()
    return WebhookConfig(
        base_url=f"http://127.0.0.1:{port}",
        path="/telegram/webhook",
        secret=WEBHOOK_SECRET,
        host="127.0.0.1",
        port=port,
        max_connections=40,
    )


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
        yookassa: FakeYooKassa | None = None,
        provider_settings: dict | None = None,
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
            yookassa,
            provider_settings,
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
    """An admin superuser's client; the admin reaches the fake Telegram and QIWI, and
    both ways to pay are on (the bills admin offers the actions of those that are)."""
    settings.PAYMENT_PROVIDERS = ["qiwi", "telegram"]
    settings.QIWI_SECRET_KEY = QIWI_KEY
    settings.QIWI_API_URL = qiwi.base_url
    settings.TELEGRAM_API_TOKEN = TOKEN
    settings.TELEGRAM_API_SERVER = tg.base_url
    boss = await sync_to_async(User.objects.create_superuser)("boss", "b@example.com", "pw")
    await sync_to_async(async_client.force_login)(boss)
    yield async_client
    await sync_to_async(connections.close_all)()


@pytest.fixture
def staff_client(db) -> Client:
    """Staff who may see and change users, but not export or read logs."""
    staff = User.objects.create_user("clerk", password="pw", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_telegramuser", "change_telegramuser"])
    )
    client = Client()
    client.force_login(staff)
    return client
