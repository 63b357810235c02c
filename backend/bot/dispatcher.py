from __future__ import annotations

import asyncio
from contextlib import suppress

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import AiogramError, TelegramRetryAfter, TelegramUnauthorizedError
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import ErrorEvent
from loguru import logger

from backend.bot import keyboards, notify, texts
from backend.bot.config import BotConfig
from backend.bot.handlers import admin, fallback, start, telegram_payments, topup
from backend.bot.instance_lock import InstanceLock, instance_lock
from backend.bot.middlewares import FloodGuard, UserMiddleware
from backend.bot.polling import Intake
from backend.bot.session import TelegramRequestPolicy
from backend.payments.poller import run_expiry, run_poller
from backend.payments.providers.base import PaymentProvider


def build_bot(*, token: str, api_server: str) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_server))
    session.middleware(TelegramRequestPolicy())
    return Bot(
        token,
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def build_dispatcher(
    *,
    providers: dict[str, PaymentProvider],
    config: BotConfig,
    storage: BaseStorage | None = None,
) -> Dispatcher:
    """`providers`: the enabled ways to pay by name, in the order the user sees them."""
    dp = Dispatcher(storage=storage or MemoryStorage(), providers=providers, config=config)
    dp.update.outer_middleware(FloodGuard(rate=config.flood_rate, burst=config.flood_burst))
    dp.update.outer_middleware(UserMiddleware())
    # Order matters: /admin and /start win over the amount prompt; fallbacks go last.
    dp.include_routers(
        admin.build_router(),
        telegram_payments.build_router(),
        start.build_router(),
        topup.build_router(),
        fallback.build_router(),
    )
    dp.errors.register(on_error)
    return dp


async def on_error(event: ErrorEvent, bot: Bot, config: BotConfig) -> bool:
    """An unexpected failure in a handler: logged with its traceback, reported to the
    admins, and the user gets the support message instead of silence."""
    update = event.update
    logger.opt(exception=event.exception).error("update {} failed", update.update_id)
    sender = update.message or update.callback_query or update.edited_message
    if sender is not None and sender.from_user is not None:
        await notify.send(bot, sender.from_user.id, texts.SUPPORT, reply_markup=keyboards.start())
    await notify.report_to_admins(
        bot, config.admin_ids, f"обновление {update.update_id}", repr(event.exception)
    )
    return True


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
    """Wait until no other bot process polls this token on this database."""
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


async def keep_instance_lock(lock: InstanceLock, intake: Intake, every: float) -> None:
    """A lock lost with its database session is taken again; if another process got it
    meanwhile, this one stops polling."""
    while True:
        await asyncio.sleep(every)
        if await lock.held() or await lock.acquire():
            continue
        logger.error("another bot process took over the lock: this one stops polling")
        intake.stop()
        return


class _StoppedEarly(Exception):
    pass


async def _start_up(lock: InstanceLock, bot: Bot, config: BotConfig) -> None:
    await take_instance_lock(lock, config.lock_retry)
    await wait_for_telegram(bot)


async def run_bot(
    *,
    bot: Bot,
    providers: dict[str, PaymentProvider],
    config: BotConfig,
    dispatcher: Dispatcher | None = None,
    handle_signals: bool = True,
    stop: asyncio.Event | None = None,
) -> None:
    """Long-poll Telegram and check open bills until stopped (SIGTERM, Ctrl-C, or `stop`
    set); then close everything.

    Only one process polls a bot token on one database: a second one waits here.
    """
    dp = dispatcher or build_dispatcher(providers=providers, config=config)
    stop = stop or asyncio.Event()
    lock = instance_lock(bot.id)
    starting = asyncio.ensure_future(_start_up(lock, bot, config))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not starting.done():  # stopped while waiting for the lock or for Telegram
            starting.cancel()
            with suppress(asyncio.CancelledError):
                await starting
            raise _StoppedEarly
        starting.result()
    except BaseException as e:
        starting.cancel()
        await lock.release()
        await bot.session.close()
        await _close(providers)
        if isinstance(e, _StoppedEarly):
            return
        raise
    notifier = notify.BillNotifier(bot)
    intake = Intake(
        bot=bot,
        dp=dp,
        concurrency=config.update_concurrency,
        allowed_updates=dp.resolve_used_update_types(),
        stopping=stop,
        dispatcher=dp,
    )
    background = [
        asyncio.create_task(keep_instance_lock(lock, intake, config.lock_retry), name="lock")
    ]
    for provider in providers.values():
        if provider.polled:
            task = run_poller(
                provider=provider,
                notify=notifier,
                interval=config.poll_interval,
                concurrency=config.poll_concurrency,
                late_grace=config.late_payment_grace,
            )
        else:
            task = run_expiry(provider=provider, notify=notifier, interval=config.poll_interval)
        background.append(asyncio.create_task(task, name=f"bills-{provider.name}"))
    try:
        logger.info("polling Telegram for updates")
        await intake.run(handle_signals=handle_signals)
    finally:
        for task in background:
            task.cancel()
        for task in background:
            with suppress(asyncio.CancelledError):
                await task
        await lock.release()
        await bot.session.close()
        await _close(providers)
        logger.info("bot stopped")


async def _close(providers: dict[str, PaymentProvider]) -> None:
    for provider in providers.values():
        await provider.close()
