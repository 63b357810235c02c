"""The bot's wiring: the `Dispatcher` with its middlewares, routers and error handler,
and what the handlers receive as arguments (`providers`, `config`)."""

from __future__ import annotations

from aiogram import Bot, Dispatcher
from aiogram.types import ErrorEvent
from loguru import logger

from backend.bot import client, keyboards, texts
from backend.bot.config import BotConfig
from backend.bot.handlers import admin, balance, fallback, start, telegram_payments, topup
from backend.bot.middlewares import FloodGuard, UpdateMetrics, UserMiddleware
from backend.bot.shared_state import SharedState, shared_state
from backend.payments.providers.base import PaymentProvider
from backend.payments.vocabulary import ProviderName


def build_dispatcher(
    *,
    providers: dict[ProviderName, PaymentProvider],
    config: BotConfig,
    shared: SharedState | None = None,
) -> Dispatcher:
    """`providers`: the enabled ways to pay by name, in the order the user sees them.
    `shared`: the dialog state, isolation and flood limit (in memory by default).

    All three stay in the dispatcher (`dp["providers"]`, `dp["config"]`, `dp["shared"]`):
    the handlers receive the first two as arguments, and `run_bot` takes everything
    from here, so the runner and the handlers cannot disagree."""
    shared = shared or shared_state(config=config)
    dp = Dispatcher(
        storage=shared.storage,
        events_isolation=shared.isolation,
        providers=providers,
        config=config,
        shared=shared,
    )
    dp.update.outer_middleware(UpdateMetrics())
    dp.update.outer_middleware(FloodGuard(shared.flood))
    dp.update.outer_middleware(UserMiddleware())
    # Order matters: the commands (/start first: the most frequent update, looked at
    # before the others' filters) win over the prompts; fallbacks go last.
    dp.include_routers(
        start.build_router(),
        admin.build_router(),
        telegram_payments.build_router(),
        topup.build_commands_router(),
        balance.build_router(),
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
        await client.send(bot, sender.from_user.id, texts.SUPPORT, reply_markup=keyboards.start())
    await client.report_to_admins(
        bot, config.admin_ids, f"обновление {update.update_id}", repr(event.exception)
    )
    return True
