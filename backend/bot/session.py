"""What every request to the Bot API goes through (an aiogram request middleware).

- 429 Too Many Requests: wait as long as Telegram says and send again, so no reply and
  no payment notification is dropped for a flood limit.
- «message is not modified» and «query is too old»: nothing is lost by them (the
  message already reads so; the button's spinner has stopped by itself), so they are
  logged quietly and treated as done.
- 409 Conflict on getUpdates: another program polls this bot token; say so plainly.
- aiogram parses every answer with `Response[<the method's result type>]`, a pydantic
  generic model that pydantic caches only weakly: after each garbage collection it was
  built anew (about a millisecond, a tenth of the bot's CPU under load). The policy
  keeps a reference to the one of each method it sees.
"""

from __future__ import annotations

import asyncio
import time

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramBadRequest, TelegramConflictError, TelegramRetryAfter
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.methods.base import Response, TelegramType
from loguru import logger

HARMLESS = ("message is not modified", "query is too old", "query id is invalid")
MAX_FLOOD_WAITS = 10
CONFLICT_LOG_EVERY = 300.0  # seconds


class TelegramRequestPolicy(BaseRequestMiddleware):
    def __init__(self) -> None:
        self._conflict_logged_at = 0.0
        self._response_types: dict[type, type] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> TelegramType:
        if type(method) not in self._response_types:
            self._response_types[type(method)] = Response[method.__returning__]
        waits = 0
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as e:
                if isinstance(method, GetUpdates) or waits >= MAX_FLOOD_WAITS:
                    raise
                waits += 1
                logger.warning(
                    "Telegram flood limit on {}: waiting {} s", method.__api_method__, e.retry_after
                )
                await asyncio.sleep(e.retry_after)
            except TelegramBadRequest as e:
                if not any(text in e.message.lower() for text in HARMLESS):
                    raise
                logger.info("{}: {} (ignored)", method.__api_method__, e.message)
                return True  # type: ignore[return-value]  # the methods concerned return bool
            except TelegramConflictError:
                now = time.monotonic()
                if now - self._conflict_logged_at > CONFLICT_LOG_EVERY:
                    self._conflict_logged_at = now
                    logger.error(
                        "409 Conflict: another program is polling this bot token (or a "
                        "webhook is set); stop it, or this bot will not get updates"
                    )
                raise
