"""What no other router took: any message outside the dialog, and unknown buttons."""

from aiogram import Bot, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from backend.bot.handlers.start import send_greeting
from backend.users.models import TelegramUser


async def anything_else(
    message: Message, bot: Bot, db_user: TelegramUser, state: FSMContext
) -> None:
    """Outside the dialog, any message brings the greeting back."""
    await send_greeting(bot, db_user, state, None)


async def stale_button(callback: CallbackQuery) -> None:
    """A button we no longer know (garbage or an old layout): stop its spinner."""
    await callback.answer()


def build_router() -> Router:
    router = Router(name="fallback")
    router.message.register(anything_else, StateFilter(None))
    router.callback_query.register(stale_button)
    return router
