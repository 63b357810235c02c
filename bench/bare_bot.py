"""A bare aiogram 3 bot, the reference for bench/updates.py: no Django, no database.

/start → the same greeting shape as the product's (HTML, the sender's first name, one
inline button). Reads TELEGRAM_API_TOKEN and TELEGRAM_API_SERVER from the environment
and long-polls until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import os

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.filters import CommandStart
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.text_decorations import html_decoration

KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="Пополнить баланс", callback_data="topup")]]
)


def greeting(first_name: str) -> str:
    return (
        f"Привет, {html_decoration.quote(first_name)}\n"
        "Я - бот для пополнения баланса.\n"
        "Нажмите на кнопку, чтобы пополнить баланс"
    )


async def start(message: Message, bot: Bot) -> None:
    user = message.from_user
    if user is None:
        return
    await bot.send_message(user.id, greeting(user.first_name), reply_markup=KEYBOARD)


async def main() -> None:
    server = os.environ.get("TELEGRAM_API_SERVER") or "https://api.telegram.org"
    session = AiohttpSession(api=TelegramAPIServer.from_base(server))
    bot = Bot(
        os.environ["TELEGRAM_API_TOKEN"],
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )
    dp = Dispatcher()
    dp.message.register(start, CommandStart())
    await dp.start_polling(bot, allowed_updates=dp.resolve_used_update_types())


if __name__ == "__main__":
    asyncio.run(main())
