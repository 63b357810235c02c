from aiogram import Bot, Router
from aiogram.filters import CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from backend.bot import keyboards, texts
from backend.bot.callbacks import Cancel
from backend.users.models import TelegramUser


async def send_greeting(
    bot: Bot, user: TelegramUser, state: FSMContext, raw_state: str | None
) -> None:
    """The start of the dialog; `/start` and «Отмена» both land here. The dialog keeps
    no data beside its state, so with no state there is nothing to clear (and with Redis
    two round trips are saved on the bot's busiest path)."""
    if raw_state is not None:
        await state.clear()
    await bot.send_message(
        user.telegram_id, texts.greeting(user.first_name), reply_markup=keyboards.start()
    )


async def start(
    message: Message, bot: Bot, db_user: TelegramUser, state: FSMContext, raw_state: str | None
) -> None:
    await send_greeting(bot, db_user, state, raw_state)


async def cancel(
    callback: CallbackQuery,
    bot: Bot,
    db_user: TelegramUser,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    await callback.answer()
    await send_greeting(bot, db_user, state, raw_state)


def build_router() -> Router:
    router = Router(name="start")
    router.message.register(start, CommandStart())
    router.callback_query.register(cancel, Cancel.filter())
    return router
