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
- `GET /healthz` says whether the database (and Redis, when configured) answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from loguru import logger
from pydantic import ValidationError

from backend.bot.intake import UpdateRunner, carries_money

MAX_BODY = 1024 * 1024  # Telegram's updates are far smaller; anything bigger is not one
SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,256}")  # Telegram's rule for secret_token
HealthCheck = Callable[[], Awaitable[dict[str, bool]]]


@dataclass(frozen=True)
class WebhookConfig:
    base_url: str  # the public origin Telegram posts to: https://bot.example.com
    path: str  # /telegram/webhook
    secret: str
    host: str  # what the HTTP server binds
    port: int
    max_connections: int = 40
    workers: int = 1

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + self.path

    @classmethod
    def from_values(
        cls,
        *,
        base_url: str,
        path: str,
        secret: str,
        listen: str,
        max_connections: str,
        workers: str,
    ) -> WebhookConfig:
        """The settings checked one by one: a ValueError names the first wrong one."""
        parts = urlsplit(base_url)
        if not base_url:
            raise ValueError("WEBHOOK_BASE_URL is not set: the public https:// origin of the bot")
        # http only to this machine: a local Bot API server takes it (and so do the tests)
        secure = parts.scheme == "https" or (
            parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
        )
        if not secure or not parts.netloc or parts.path not in ("", "/"):
            raise ValueError(f"WEBHOOK_BASE_URL must be an https:// origin, got {base_url!r}")
        if not path.startswith("/") or "?" in path or "#" in path:
            raise ValueError(f"WEBHOOK_PATH must start with /, got {path!r}")
        if not secret:
            raise ValueError("WEBHOOK_SECRET is not set: 1-256 of A-Z a-z 0-9 _ -")
        if not SECRET_SHAPE.fullmatch(secret):
            raise ValueError("WEBHOOK_SECRET must be 1-256 of A-Z a-z 0-9 _ - (Telegram's rule)")
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"WEBHOOK_LISTEN must be host:port, got {listen!r}")
        if not max_connections.isdigit() or not 1 <= int(max_connections) <= 100:
            raise ValueError(f"WEBHOOK_MAX_CONNECTIONS must be 1-100, got {max_connections!r}")
        if not workers.isdigit() or int(workers) < 1:
            raise ValueError(f"BOT_WORKERS must be a whole number from 1, got {workers!r}")
        return cls(
            base_url=base_url,
            path=path,
            secret=secret,
            host=host.strip("[]"),
            port=int(port),
            max_connections=int(max_connections),
            workers=int(workers),
        )


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
) -> web.Application:
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
