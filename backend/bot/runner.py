"""The bot process's lifecycle: polling or webhook, the bill jobs, the instance lock.

- Polling: one process per bot token and database (the instance lock); a second one
  waits and takes over when the first stops. It polls and runs the bill jobs.
- Webhook: every process serves the webhook at once; the bill jobs (QIWI poller,
  Telegram bill expiry, Stars reconciliation) run in the one that holds the instance
  lock, and another takes them over when it dies.

SIGTERM, Ctrl-C or `stop` end it: no new updates are taken, the ones in hand get up to
10 s, and everything is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextlib import suppress
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import AiogramError, TelegramRetryAfter, TelegramUnauthorizedError
from aiohttp import web
from django.db import connection
from loguru import logger

from backend.bot.broadcasts import run_broadcast_sender
from backend.bot.client import BillNotifier, publish_commands
from backend.bot.config import BotConfig, WebhookConfig
from backend.bot.instance_lock import InstanceLock, instance_lock
from backend.bot.intake import STOP_GRACE, UpdateRunner
from backend.bot.notices import run_notice_sender
from backend.bot.polling import PollingIntake, install_stop_signals, remove_stop_signals
from backend.bot.shared_state import SharedState
from backend.bot.webhook import build_app, set_webhook
from backend.common.db import db_async, db_jobs_close
from backend.payments.dashboard_days import run_dashboard_closer
from backend.payments.poller import run_expiry, run_poller
from backend.payments.providers.base import PaymentProvider, PolledProvider
from backend.payments.reconcile import run_star_reconciler
from backend.payments.vocabulary import ProviderName

Providers = dict[ProviderName, PaymentProvider]


class TokenRefused(Exception):
    """Telegram does not know the token: no retry will help."""


async def wait_for_telegram(bot: Bot, max_delay: float = 30.0) -> None:
    """Ask Telegram who we are until it answers; polling needs that answer to start.

    An unreachable or failing Bot API is retried with a growing pause, so a bot that
    starts during a network outage starts working when the network is back.
    """
    delay = 1.0
    while True:
        try:
            me = await bot.me()
        except TelegramUnauthorizedError:
            raise TokenRefused(
                "Telegram refused TELEGRAM_API_TOKEN: check it with @BotFather"
            ) from None
        except TelegramRetryAfter as e:
            await asyncio.sleep(e.retry_after)
            continue
        except AiogramError as e:  # unreachable, 5xx, a broken answer
            logger.warning("Telegram Bot API unavailable ({}); retrying in {:.0f} s", e, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
            continue
        logger.info("connected to Telegram as @{}", me.username)
        return


async def take_instance_lock(lock: InstanceLock, retry: float) -> None:
    """Wait until no other bot process holds this token's lock on this database."""
    said = False
    while not await lock.acquire():
        if not said:
            logger.warning(
                "another bot process is running for this bot on this database; "
                "waiting for it to stop (checking every {} s)",
                retry,
            )
            said = True
        await asyncio.sleep(retry)
    if said:
        logger.info("the other bot process has stopped: taking over")


async def keep_instance_lock(lock: InstanceLock, every: float) -> None:
    """Returns when the lock is lost for good: a lock lost with its database session is
    taken again, unless another process got it meanwhile."""
    while True:
        await asyncio.sleep(every)
        if await lock.held() or await lock.acquire():
            continue
        logger.error("another bot process took over the lock")
        return


async def until_stopped(stop: asyncio.Event, work: Awaitable[Any]) -> tuple[bool, Any]:
    """(True, result of `work`), or (False, None) when `stop` came first (work cancelled)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        return True, task.result()
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    return False, None


def bill_jobs(*, providers: Providers, bot: Bot, config: BotConfig) -> list[asyncio.Task]:
    """The background work on bills: a polled provider (QIWI, YooKassa) is polled; the others'
    bills expire by their clock, and Stars payments are reconciled from
    getStarTransactions."""
    notifier = BillNotifier(bot)
    jobs = []
    for provider in providers.values():
        if isinstance(provider, PolledProvider):
            work = [
                run_poller(
                    provider=provider,
                    notify=notifier,
                    interval=config.poll_interval,
                    concurrency=config.poll_concurrency,
                    late_grace=config.late_payment_grace,
                )
            ]
        else:
            work = [
                run_expiry(provider=provider, notify=notifier, interval=config.poll_interval),
                run_star_reconciler(
                    provider=provider,
                    notify=notifier,
                    interval=config.star_reconcile_interval,
                ),
            ]
        jobs += [asyncio.create_task(w, name=f"bills-{provider.name}") for w in work]
    return jobs


def lock_holder_jobs(
    *, providers: Providers, bot: Bot, config: BotConfig, runner: UpdateRunner
) -> list[asyncio.Task]:
    """What the one process holding the instance lock runs besides its intake: the bill
    jobs, the notices to users, the broadcasts (giving way to the updates `runner` has
    in hand), closing the dashboard's past days, and setting the bot's menu once."""
    return [
        *bill_jobs(providers=providers, bot=bot, config=config),
        asyncio.create_task(
            run_notice_sender(bot=bot, interval=config.notice_interval), name="notices"
        ),
        asyncio.create_task(
            run_broadcast_sender(
                bot=bot,
                rate=config.broadcast_rate,
                interval=config.notice_interval,
                busy=lambda: runner.busy,
            ),
            name="broadcasts",
        ),
        asyncio.create_task(
            run_dashboard_closer(
                interval=config.dashboard_close_interval, late_grace=config.late_payment_grace
            ),
            name="dashboard",
        ),
        asyncio.create_task(
            publish_commands(
                bot,
                config.admin_ids,
                receipts=any(p.needs_receipt_contact for p in providers.values()),
            ),
            name="menu",
        ),
    ]


async def cancel(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with suppress(asyncio.CancelledError, Exception):
            await task


async def run_bot(
    *,
    bot: Bot,
    dispatcher: Dispatcher,
    handle_signals: bool = True,
    stop: asyncio.Event | None = None,
    webhook: WebhookConfig | None = None,
) -> None:
    """Run the bot until stopped (SIGTERM, Ctrl-C or `stop`), then close everything:
    long polling, or with `webhook` an HTTP server Telegram posts updates to.

    `dispatcher`: as `build_dispatcher` made it; its providers, config and shared state
    (see shared_state) are the ones used here, and are closed here with the bot."""
    dp = dispatcher
    providers: Providers = dp["providers"]
    config: BotConfig = dp["config"]
    shared: SharedState = dp["shared"]
    stop = stop or asyncio.Event()
    if handle_signals:
        install_stop_signals(stop)
    try:
        if webhook is None:
            await _run_polling(bot=bot, dp=dp, providers=providers, config=config, stop=stop)
        else:
            await _run_webhook(
                bot=bot,
                dp=dp,
                providers=providers,
                config=config,
                stop=stop,
                webhook=webhook,
                shared=shared,
            )
    finally:
        try:
            await bot.session.close()
            for provider in providers.values():
                await provider.close()
            await shared.close()
            await db_jobs_close()
            logger.info("bot stopped")
        finally:
            # Only now: a second SIGTERM while closing (run.sh sends one more) must not
            # kill the process halfway by the default action.
            if handle_signals:
                remove_stop_signals()


async def _run_polling(
    *,
    bot: Bot,
    dp: Dispatcher,
    providers: Providers,
    config: BotConfig,
    stop: asyncio.Event,
) -> None:
    lock = instance_lock(bot.id)
    try:
        started, _ = await until_stopped(stop, _start_polling(lock, bot, config))
        if not started:
            return
        intake = PollingIntake(
            bot=bot,
            dp=dp,
            concurrency=config.update_concurrency,
            allowed_updates=dp.resolve_used_update_types(),
            stopping=stop,
            dispatcher=dp,
        )
        jobs = lock_holder_jobs(providers=providers, bot=bot, config=config, runner=intake.runner)
        guard = asyncio.create_task(_stop_when_lost(lock, config.lock_retry, stop))
        try:
            logger.info("polling Telegram for updates")
            await intake.run()
        finally:
            await cancel([guard, *jobs])
    finally:
        await lock.release()


async def _start_polling(lock: InstanceLock, bot: Bot, config: BotConfig) -> None:
    await take_instance_lock(lock, config.lock_retry)
    await wait_for_telegram(bot)
    # Telegram refuses getUpdates while a webhook is set (a switch back from webhook mode).
    await bot.delete_webhook(drop_pending_updates=False)


async def _stop_when_lost(lock: InstanceLock, every: float, stop: asyncio.Event) -> None:
    await keep_instance_lock(lock, every)
    logger.error("this process stops polling")
    stop.set()


async def _run_webhook(
    *,
    bot: Bot,
    dp: Dispatcher,
    providers: Providers,
    config: BotConfig,
    stop: asyncio.Event,
    webhook: WebhookConfig,
    shared: SharedState,
) -> None:
    started, _ = await until_stopped(stop, wait_for_telegram(bot))
    if not started:
        return
    runner = UpdateRunner(bot=bot, dp=dp, concurrency=config.update_concurrency, dispatcher=dp)

    async def health() -> dict[str, bool]:
        checks = {"database": await _answers(_database_answers())}
        if shared.redis is not None:
            checks["redis"] = await _answers(shared.redis_answers())
        return checks

    yookassa = providers.get(ProviderName.YOOKASSA)
    app = build_app(
        bot=bot,
        dp=dp,
        runner=runner,
        webhook=webhook,
        health=health,
        yookassa=yookassa if isinstance(yookassa, PolledProvider) else None,
        notify=BillNotifier(bot),
    )
    server = web.AppRunner(app, access_log=None, shutdown_timeout=STOP_GRACE)
    await server.setup()
    jobs = asyncio.create_task(
        _bill_jobs_when_locked(bot=bot, providers=providers, config=config, runner=runner)
    )
    try:
        site = web.TCPSite(server, webhook.host, webhook.port, reuse_port=webhook.workers > 1)
        await site.start()
        logger.info("serving the webhook on {}:{}{}", webhook.host, webhook.port, webhook.path)
        await until_stopped(
            stop,
            set_webhook(bot=bot, webhook=webhook, allowed_updates=dp.resolve_used_update_types()),
        )
        await stop.wait()
    finally:
        stopping_since = asyncio.get_running_loop().time()
        await server.cleanup()  # no new requests; those in hand get STOP_GRACE in all
        elapsed = asyncio.get_running_loop().time() - stopping_since
        await runner.finish(grace=max(0.1, STOP_GRACE - elapsed))
        await cancel([jobs])


async def _bill_jobs_when_locked(
    *, bot: Bot, providers: Providers, config: BotConfig, runner: UpdateRunner
) -> None:
    """The lock holder's jobs in one process of all that serve the webhook."""
    lock = instance_lock(bot.id)
    try:
        while True:
            await take_instance_lock(lock, config.lock_retry)
            jobs = lock_holder_jobs(providers=providers, bot=bot, config=config, runner=runner)
            try:
                await keep_instance_lock(lock, config.lock_retry)
            finally:
                await cancel(jobs)
    finally:
        await lock.release()


@db_async
def _database_answers() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone() == (1,)


async def _answers(check: Awaitable[bool]) -> bool:
    try:
        return await asyncio.wait_for(check, timeout=5)
    except Exception:
        return False
