"""In-process fake HTTP servers for end-to-end tests (Telegram Bot API, QIWI P2P)."""

from ._telegram_state import BOT_USER
from .qiwi import FakeQiwi, QiwiRequest, make_secret_key, qiwi_error
from .telegram import Call, FakeTelegram

__all__ = [
    "BOT_USER",
    "Call",
    "FakeQiwi",
    "FakeTelegram",
    "QiwiRequest",
    "make_secret_key",
    "qiwi_error",
]
