"""In-process fake HTTP servers for end-to-end tests (Telegram Bot API, QIWI P2P,
YooKassa)."""

from ._telegram_state import BOT_USER
from .qiwi import FakeQiwi, QiwiRequest, make_secret_key, qiwi_error
from .telegram import Call, FakeTelegram
from .yookassa import FakeYooKassa, yookassa_error

__all__ = [
    "BOT_USER",
    "Call",
    "FakeQiwi",
    "FakeTelegram",
    "FakeYooKassa",
    "QiwiRequest",
    "make_secret_key",
    "qiwi_error",
    "yookassa_error",
]
