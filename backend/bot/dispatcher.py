"""The bot's wiring: the `Bot` (its HTTP session and request policy) and the
`Dispatcher` with its middlewares, routers and error handler."""

from __future__ import annotations

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.types import ErrorEvent
from loguru import logger

from backend.bot import keyboards, notify, texts
from backend.bot.config import BotConfig
from backend.bot.handlers import admin, fallback, start, telegram_payments, topup
from backend.bot.middlewares import FloodGuard, UpdateMetrics, UserMiddleware
from backend.bot.session import RequestMetrics, TelegramRequestPolicy
from backend.bot.shared_state import SharedState, shared_state
from backend.payments.providers.base import PaymentProvider


def build_bot(*, token: str, api_server: str) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_server))
    session.middleware(TelegramRequestPolicy())
    session.middleware(RequestMetrics())  # inside the policy: each 429 retry is counted
    return Bot(
        token,
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def build_dispatcher(
    *,
    providers: dict[str, PaymentProvider],
    config: BotConfig,
    shared: SharedState | None = None,
) -> Dispatcher:
    """`providers`: the enabled ways to pay by name, in the order the user sees them.
    `shared`: the dialog state, isolation and flood limit (in memory by default)."""
    shared = shared or shared_state(config=config)
    dp = Dispatcher(
        storage=shared.storage,
        events_isolation=shared.isolation,
        providers=providers,
        config=config,
    )
    dp.update.outer_middleware(UpdateMetrics())
    dp.update.outer_middleware(FloodGuard(shared.flood))
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
