"""Webhook delivery of the fake Bot API, as Telegram does it.

`setWebhook` makes the fake POST every pending update to the URL as JSON with the
`X-Telegram-Bot-Api-Secret-Token` header, up to `max_connections` at once. An update is
forgotten only after a 2xx answer; any other answer, a refused connection or a timeout
keeps it, and it is sent again a little later (Telegram retries for a day). While a
webhook is set, getUpdates is refused with 409, as Telegram does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ._telegram_payments import ApiError

Json = dict[str, Any]
RETRY_DELAY = 0.2  # seconds before an update that was not taken is sent again
POST_TIMEOUT = 30.0


@dataclass
class Delivery:
    """One POST of an update to the webhook and how it ended."""

    update_id: int
    status: int | None = None  # None: no HTTP answer (refused, reset, timed out)
    error: str = ""


@dataclass
class WebhookState:
    url: str = ""
    secret_token: str = ""
    max_connections: int = 40
    allowed_updates: list[str] | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    in_flight: set[int] = field(default_factory=set)


class TelegramWebhook:
    """Mixed into FakeTelegram (it provides `updates`, `_notify`, `_wait_until`)."""

    webhook: WebhookState

    def _init_webhook(self) -> None:
        self.webhook = WebhookState()
        self._delivery_task: asyncio.Task | None = None

    async def _api_setWebhook(self, params: Json) -> Any:
        url = str(params.get("url") or "")
        if not url:
            return await self._api_deleteWebhook(params)
        if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ApiError(400, "Bad Request: bad webhook: HTTPS url must be provided")
        secret = str(params.get("secret_token") or "")
        allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
        if len(secret) > 256 or not set(secret) <= allowed:
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        self.webhook.url = url
        self.webhook.secret_token = secret
        self.webhook.max_connections = int(params.get("max_connections") or 40)
        self.webhook.allowed_updates = params.get("allowed_updates")
        if self._delivery_task is None or self._delivery_task.done():
            self._delivery_task = asyncio.create_task(self._deliver_forever())
        self._notify()  # type: ignore[attr-defined]
        return True

    async def _api_deleteWebhook(self, params: Json) -> Any:
        self.webhook.url = ""
        if params.get("drop_pending_updates") in (True, "true", "True"):
            self.updates.clear()  # type: ignore[attr-defined]
        self._notify()  # type: ignore[attr-defined]
        return True

    async def _api_getWebhookInfo(self, params: Json) -> Any:
        return {
            "url": self.webhook.url,
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),  # type: ignore[attr-defined]
            "max_connections": self.webhook.max_connections,
        }

    def webhook_deliveries(self, update_id: int | None = None) -> list[Delivery]:
        return [d for d in self.webhook.deliveries if update_id is None or d.update_id == update_id]

    async def _deliver_forever(self) -> None:
        posts: set[asyncio.Task] = set()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(POST_TIMEOUT)) as http:
            try:
                while self.webhook.url and not self._stopping.is_set():  # type: ignore[attr-defined]
                    ready = await self._wait_until(self._deliverable, 1.0)  # type: ignore[attr-defined]
                    for update in ready or []:
                        self.webhook.in_flight.add(update["update_id"])
                        post = asyncio.create_task(self._deliver(http, update))
                        posts.add(post)
                        post.add_done_callback(posts.discard)
            finally:
                for post in list(posts):
                    post.cancel()
                await asyncio.gather(*posts, return_exceptions=True)

    def _deliverable(self) -> list[Json] | None:
        room = self.webhook.max_connections - len(self.webhook.in_flight)
        pending = [
            u
            for u in self.updates  # type: ignore[attr-defined]
            if u["update_id"] not in self.webhook.in_flight
        ]
        return pending[:room] or None if room > 0 else None

    async def _deliver(self, http: aiohttp.ClientSession, update: Json) -> None:
        delivery = Delivery(update["update_id"])
        self.webhook.deliveries.append(delivery)
        headers = {"Content-Type": "application/json"}
        if self.webhook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook.secret_token
        try:
            async with http.post(
                self.webhook.url, data=json.dumps(update), headers=headers
            ) as response:
                delivery.status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            delivery.error = type(e).__name__
        if delivery.status is not None and 200 <= delivery.status < 300:
            with contextlib.suppress(ValueError):
                self.updates.remove(update)  # type: ignore[attr-defined]
        else:
            await self._sleep(RETRY_DELAY)  # type: ignore[attr-defined]
        self.webhook.in_flight.discard(update["update_id"])
        self._notify()  # type: ignore[attr-defined]
