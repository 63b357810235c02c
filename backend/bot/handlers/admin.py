from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from backend.bot import texts
from backend.bot.config import BotConfig


async def admin(message: Message, config: BotConfig) -> None:
    """Admins get the link to the django-admin; anyone else hears nothing of it."""
    if message.from_user is None or message.from_user.id not in config.admin_ids:
        return
    await message.answer(texts.admin_link(config.admin_site_url))


def build_router() -> Router:
    router = Router(name="admin")
    router.message.register(admin, Command("admin"))
    return router
