from aiogram import Router
from aiogram.types import CallbackQuery


async def stale_button(callback: CallbackQuery) -> None:
    """A button we no longer know (garbage or an old layout): stop its spinner."""
    await callback.answer()


def build_router() -> Router:
    router = Router(name="fallback")
    router.callback_query.register(stale_button)
    return router
