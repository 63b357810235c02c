"""/balance and «Мой баланс»: the user's balance and their last changes."""

from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from django.utils import timezone

from backend.bot import keyboards, texts
from backend.bot.callbacks import MyBalance
from backend.payments.selectors import auser_statement
from backend.users.models import TelegramUser

LAST_ENTRIES = 5


async def send_statement(bot: Bot, user: TelegramUser) -> None:
    statement = await auser_statement(user=user, limit=LAST_ENTRIES)
    entries = [(timezone.localtime(e.created_at), e.kind, e.amount) for e in statement.entries]
    await bot.send_message(
        user.telegram_id,
        texts.statement(statement.balance, entries),
        reply_markup=keyboards.top_up(),
    )


async def balance_command(message: Message, bot: Bot, db_user: TelegramUser) -> None:
    await send_statement(bot, db_user)


async def balance_button(callback: CallbackQuery, bot: Bot, db_user: TelegramUser) -> None:
    await callback.answer()
    await send_statement(bot, db_user)


def build_router() -> Router:
    router = Router(name="balance")
    router.message.register(balance_command, Command("balance"))
    router.callback_query.register(balance_button, MyBalance.filter())
    return router
