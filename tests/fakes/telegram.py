"""Fake Telegram Bot API server that real aiogram 3 talks to over HTTP."""

from __future__ import annotations

import copy
import json
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web

from ._telegram_payments import ApiError, TelegramPayments
from ._telegram_state import BOT_USER, Json, TelegramState
from ._telegram_webhook import TelegramWebhook

TRUE_METHODS = {
    "answerCallbackQuery",
    "setMyCommands",
    "deleteMyCommands",
    "close",
    "logOut",
}
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply "
    "markup are exactly the same as a current content and reply markup of the message"
)
_INT = re.compile(r"-?\d+")
_NEVER_JSON = {"text", "caption"}
_STRING_IDS = {"callback_query_id", "inline_message_id", "inline_query_id", "file_id"}

Params = dict[str, Any]
Predicate = Callable[[Params], bool]


@dataclass
class Call:
    method: str
    params: Params
    failed: bool = False
    result: Any = None  # the "result" the fake answered with (e.g. a Message dict)
    consumed: bool = field(default=False, repr=False)
    at: float = field(default_factory=time.monotonic, repr=False)  # when it came


@dataclass
class _Fault:
    status: int
    description: str | None
    retry_after: int | None
    raw_body: str | None
    delay: float


def _decode(key: str, value: Any) -> Any:
    if not isinstance(value, str):  # uploaded file
        return {"filename": getattr(value, "filename", None)}
    if key not in _NEVER_JSON and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if key.endswith("_id") and key not in _STRING_IDS and _INT.fullmatch(value):
        return int(value)
    return value


def _error(status: int, description: str, retry_after: int | None = None) -> web.Response:
    body: Json = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=status)


def _inline(markup: Any) -> Any:
    """Telegram echoes back only inline keyboards in the returned Message."""
    return markup if isinstance(markup, dict) and "inline_keyboard" in markup else None


class FakeTelegram(TelegramPayments, TelegramWebhook, TelegramState):
    def __init__(self, token: str = "123456:TEST-token") -> None:
        super().__init__()
        self._init_payments()
        self._init_webhook()
        self.token = token
        self.calls: list[Call] = []
        self.unexpected: list[Call] = []
        self._faults: dict[str, deque[_Fault]] = defaultdict(deque)

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        raw: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            raw.update(await request.json())
        else:
            raw.update(await request.post())
        method = request.match_info["method"]
        # stays failed=True (invisible to wait_call) until answered successfully
        call = Call(method, {k: _decode(k, v) for k, v in raw.items()}, failed=True)
        self.calls.append(call)
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        if self._faults[method]:
            return await self._fault_response(self._faults[method].popleft())
        handler = getattr(self, f"_api_{method}", None)
        if method in TRUE_METHODS:
            handler = self._api_true
        if handler is None:
            self.unexpected.append(call)
            return _error(400, f"Bad Request: method {method} not supported by fake")
        try:
            result = await handler(call.params)
        except ApiError as e:
            return _error(e.status, e.description)
        call.result, call.failed = result, False
        self._notify()
        return web.json_response({"ok": True, "result": result})

    async def _fault_response(self, fault: _Fault) -> web.Response:
        await self._sleep(fault.delay)
        if fault.raw_body is not None:
            return web.Response(status=fault.status, text=fault.raw_body)
        retry_after = fault.retry_after
        if retry_after is None and fault.status == HTTPStatus.TOO_MANY_REQUESTS:
            retry_after = 1
        defaults = {
            429: f"Too Many Requests: retry after {retry_after}",
            403: "Forbidden: bot was blocked by the user",
        }
        description = fault.description or defaults.get(
            fault.status, HTTPStatus(fault.status).phrase
        )
        return _error(fault.status, description, retry_after)

    # ---- API methods -------------------------------------------------------------
    async def _api_true(self, params: Params) -> Any:
        return True

    async def _api_getMe(self, params: Params) -> Any:
        return dict(BOT_USER)

    async def _api_getUpdates(self, params: Params) -> Any:
        if self.webhook.url:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(params.get("offset", 0))
        limit = max(1, min(int(params.get("limit", 100)), 100))
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        elif offset < 0:
            self.updates = self.updates[offset:]
        timeout = min(float(params.get("timeout", 0)), 1.0)  # capped long poll
        await self._wait_until(lambda: self.updates or None, timeout)
        return copy.deepcopy(self.updates[:limit])

    async def _api_sendMessage(self, params: Params) -> Any:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int):
            raise ApiError(400, "Bad Request: chat not found")
        if not params.get("text"):
            raise ApiError(400, "Bad Request: message text is empty")
        msg = self._bot_message(chat_id)
        msg["text"] = params["text"]
        if markup := _inline(params.get("reply_markup")):
            msg["reply_markup"] = markup
        return copy.deepcopy(msg)

    async def _api_editMessageText(self, params: Params) -> Any:
        if not params.get("text"):
            raise ApiError(400, "Bad Request: message text is empty")
        return self._edit(params, text=params["text"])

    async def _api_editMessageReplyMarkup(self, params: Params) -> Any:
        return self._edit(params)

    def _edit(self, params: Params, **changes: Any) -> Any:
        if params.get("inline_message_id"):
            return True
        msg = self.messages.get((params.get("chat_id"), params.get("message_id")))  # type: ignore[arg-type]
        if msg is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        changes["reply_markup"] = _inline(params.get("reply_markup"))
        if all(msg.get(k) == v for k, v in changes.items()):
            raise ApiError(400, NOT_MODIFIED)
        msg.update(changes)
        if msg["reply_markup"] is None:  # editing without markup drops the keyboard
            del msg["reply_markup"]
        msg["edit_date"] = int(time.time())
        return copy.deepcopy(msg)

    # ---- helpers for tests -------------------------------------------------------
    def fail_next(
        self,
        method: str,
        *,
        status: int = 500,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        raw_body: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Queue `times` failures for `method`; description defaults per status."""
        fault = _Fault(status, description, retry_after, raw_body, delay)
        self._faults[method].extend(copy.copy(fault) for _ in range(times))

    def sent(self, method: str | None = None) -> list[Call]:
        """Successful calls, optionally only of one method."""
        return [c for c in self.calls if not c.failed and method in (None, c.method)]

    def message_of(self, call: Call) -> Json:
        """The Message dict the fake answered `call` with."""
        if not isinstance(call.result, dict) or "message_id" not in call.result:
            raise AssertionError(f"{call.method} call has no Message result: {call}")
        return copy.deepcopy(call.result)

    async def wait_call(
        self, method: str, predicate: Predicate | None = None, timeout: float = 5.0
    ) -> Call:
        """Next unconsumed successful call of `method`; marks it consumed."""
        call = await self._wait_fresh(self.calls, self._matcher(method, predicate), timeout)
        if call is None:
            raise AssertionError(f"no {method} call within {timeout}s; seen:\n{self._log()}")
        call.consumed = True
        return call

    async def assert_no_call(
        self, method: str, within: float = 0.5, predicate: Predicate | None = None
    ) -> None:
        """Fail if an unconsumed successful `method` call exists or arrives within `within`."""
        call = await self._wait_fresh(self.calls, self._matcher(method, predicate), within)
        if call is not None:
            raise AssertionError(f"unexpected {method}: {call.params}\nseen:\n{self._log()}")

    @staticmethod
    def _matcher(method: str, predicate: Predicate | None) -> Callable[[Call], bool]:
        return lambda c: c.method == method and (predicate is None or predicate(c.params))

    def _log(self) -> str:
        return "\n".join(
            f"  {c.method}{' (failed)' if c.failed else ''} {c.params}" for c in self.calls
        )
