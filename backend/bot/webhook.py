"""Webhook mode: Telegram POSTs updates to `WEBHOOK_BASE_URL` + `WEBHOOK_PATH`.

Built on aiogram's `aiogram.webhook.aiohttp_server`. The request handler adds what the
product needs on top of it:

- a request without the exact `X-Telegram-Bot-Api-Secret-Token` gets 401 and is not
  read; a body that is not JSON or not an Update gets 400; one over 1 MB gets 413;
- an ordinary update is answered 200 at once and handled in a task (at most
  `BOT_UPDATE_CONCURRENCY` at once: beyond that the answer waits for a slot, and
  Telegram, which keeps at most `max_connections` requests open, waits with it);
- a payment (`successful_payment`) is answered only after its credit is committed, 200
  when it settled and 500 otherwise, which makes Telegram deliver it again;
- `POST /payments/yookassa/notifications` takes YooKassa's notifications when yookassa
  is a way to pay (backend/payments/notifications.py: the body is never trusted; 200
  once the bill is settled, 5xx for YooKassa to send it again);
- `GET /healthz` says whether the database (and Redis, when configured) answer;
- `GET /metrics` gives the Prometheus metrics (backend/common/metrics.py).

Both GET endpoints are on WEBHOOK_LISTEN only: the proxy in deploy/ passes on nothing
but WEBHOOK_PATH (and YooKassa's notifications go to the admin server there, which
serves the same path in polling mode too).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from loguru import logger
from pydantic import ValidationError

from backend.bot.config import WebhookConfig
from backend.bot.intake import UpdateRunner, carries_money
from backend.common.metrics import metrics_view
from backend.payments.flows import Notify
from backend.payments.notifications import NOTIFICATION_PATH, yookassa_notification_handle
from backend.payments.providers.base import PolledProvider
from backend.security import address_behind_proxy

MAX_BODY = 1024 * 1024  # Telegram's updates are far smaller; anything bigger is not one
HealthCheck = Callable[[], Awaitable[dict[str, bool]]]


class UpdateRequestHandler(SimpleRequestHandler):
    """aiogram's handler, with the answers above. The bot's session is closed by the
    runner, not by the app's shutdown."""

    def __init__(self, *, runner: UpdateRunner, dispatcher: Dispatcher, bot: Bot, secret: str):
        super().__init__(dispatcher=dispatcher, bot=bot, secret_token=secret)
        self.runner = runner

    async def close(self) -> None:
        pass

    async def handle(self, request: web.Request) -> web.Response:
        header = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not self.verify_secret(header, self.bot):
            return web.Response(status=401, text="Unauthorized")
        try:  # aiohttp itself answers 413 past client_max_size
            update = Update.model_validate(
                await request.json(loads=json.loads), context={"bot": self.bot}
            )
        except (ValueError, ValidationError, TypeError):
            return web.Response(status=400, text="Bad Request: not an Update")
        if carries_money(update):
            task = await self.runner.spawn(self.runner.settled(update))
            if not await task:
                return web.Response(status=500, text="payment not settled: send it again")
            return web.json_response({})
        await self.runner.spawn(self.runner.handle(update))
        return web.json_response({})


def build_app(
    *,
    bot: Bot,
    dp: Dispatcher,
    runner: UpdateRunner,
    webhook: WebhookConfig,
    health: HealthCheck,
    yookassa: PolledProvider | None = None,
    notify: Notify | None = None,
) -> web.Application:
    """The listener's app; with `yookassa` (and `notify`, who tells a bill's owner) it
    also takes YooKassa's notifications."""
    app = web.Application(client_max_size=MAX_BODY)
    UpdateRequestHandler(runner=runner, dispatcher=dp, bot=bot, secret=webhook.secret).register(
        app, path=webhook.path
    )

    async def healthz(request: web.Request) -> web.Response:
        checks = await health()
        status = 200 if all(checks.values()) else 503
        body = {name: "ok" if up else "down" for name, up in checks.items()}
        return web.json_response(body, status=status)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    if yookassa is not None and notify is not None:
        provider, tell = yookassa, notify

        async def notification(request: web.Request) -> web.Response:
            answer = await yookassa_notification_handle(
                body=await request.read(),
                address=address_behind_proxy(remote=request.remote, headers=request.headers),
                provider=provider,
                notify=tell,
            )
            return web.Response(status=answer.status, text=answer.text)

        app.router.add_post(NOTIFICATION_PATH, notification)
    return app


async def set_webhook(*, bot: Bot, webhook: WebhookConfig, allowed_updates: list[str]) -> None:
    await bot.set_webhook(
        url=webhook.url,
        secret_token=webhook.secret,
        allowed_updates=allowed_updates,
        max_connections=webhook.max_connections,
        drop_pending_updates=False,
    )
    logger.info("webhook set: Telegram posts updates to {}", webhook.url)
