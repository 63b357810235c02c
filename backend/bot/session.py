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
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.methods.base import Response, TelegramType
from loguru import logger

from backend.common import metrics

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


# The status label of a failed request, by aiogram's exception (which keeps no HTTP
# code): the first class that matches; TelegramEntityTooLarge is a TelegramNetworkError.
_FAILURE_STATUS: tuple[tuple[type[Exception], str], ...] = (
    (TelegramRetryAfter, "429"),
    (TelegramForbiddenError, "403"),
    (TelegramBadRequest, "400"),  # TelegramMigrateToChat too: aiogram parses it from a 400
    (TelegramUnauthorizedError, "401"),
    (TelegramNotFound, "404"),
    (TelegramConflictError, "409"),
    (TelegramEntityTooLarge, "413"),
    (TelegramServerError, "5xx"),
    (TelegramNetworkError, "network_error"),  # no answer: connection refused, a timeout
    (ClientDecodeError, "bad_response"),  # an answer that is not Telegram's JSON
    (TelegramAPIError, "error"),  # another HTTP code
)


def request_status(error: Exception) -> str:
    for kind, status in _FAILURE_STATUS:
        if isinstance(error, kind):
            return status
    return "error"


class RequestMetrics(BaseRequestMiddleware):
    """Counts each HTTP request to the Bot API by method and status
    (`topup_telegram_requests_total`). Registered inside TelegramRequestPolicy, so each
    retry after a 429 is a request of its own, and the 429 is counted."""

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> TelegramType:
        try:
            result = await make_request(bot, method)
        except Exception as e:
            metrics.count_request(method.__api_method__, request_status(e))
            raise
        metrics.count_request(method.__api_method__, "ok")
        return result
