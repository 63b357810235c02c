"""Self-tests for tests/fakes: real aiogram and real pyqiwip2p against the fake servers,
and plain HTTP against the fake YooKassa."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import httpx
import pytest
import pytest_asyncio
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from pyqiwip2p import AioQiwiP2P
from pyqiwip2p.p2p_types import QiwiError

from tests.fakes import FakeQiwi, FakeTelegram, FakeYooKassa, make_secret_key

pytestmark = pytest.mark.asyncio

KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="Pay 100", callback_data="pay:100")]]
)


def make_bot(tg: FakeTelegram, token: str | None = None) -> Bot:
    api = TelegramAPIServer.from_base(tg.base_url)
    return Bot(token or tg.token, session=AiohttpSession(api=api))


@pytest_asyncio.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest_asyncio.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    bot = make_bot(tg)
    yield bot
    await bot.session.close()


async def test_get_me_send_and_edit(tg: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username) == (42, "topup_test_bot")

    msg = await bot.send_message(777, "hi", reply_markup=KEYBOARD)
    call = await tg.wait_call("sendMessage")
    assert call.params["chat_id"] == 777
    assert call.params["text"] == "hi"
    assert call.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Pay 100", "callback_data": "pay:100"}]]
    }
    assert msg.reply_markup is not None
    assert msg.reply_markup.model_dump() == KEYBOARD.model_dump()
    assert tg.message_of(call)["message_id"] == msg.message_id

    await bot.edit_message_text("paid", chat_id=777, message_id=msg.message_id)
    edit = await tg.wait_call("editMessageText")
    assert edit.params["message_id"] == msg.message_id
    assert tg.messages[(777, msg.message_id)]["text"] == "paid"
    assert "reply_markup" not in tg.messages[(777, msg.message_id)]
    with pytest.raises(TelegramBadRequest, match="not modified"):
        await bot.edit_message_text("paid", chat_id=777, message_id=msg.message_id)

    await tg.assert_no_call("sendMessage", within=0.1)
    assert tg.unexpected == []


async def test_faults(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail_next("sendMessage", status=429, retry_after=7)
    with pytest.raises(TelegramRetryAfter) as exc:
        await bot.send_message(1, "x")
    assert exc.value.retry_after == 7

    tg.fail_next("sendMessage", status=502, raw_body="<html>bad gateway</html>")
    with pytest.raises(ClientDecodeError):
        await bot.send_message(1, "x")

    tg.fail_next("sendMessage", delay=5)
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(1, "x", request_timeout=0.2)

    await bot.send_message(1, "finally")
    assert [c.failed for c in tg.calls] == [True, True, True, False]
    assert (await tg.wait_call("sendMessage")).params["text"] == "finally"


async def test_unsupported_method_and_bad_token(tg: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="not supported by fake"):
        await bot.get_chat(1)
    assert [c.method for c in tg.unexpected] == ["getChat"]

    intruder = make_bot(tg, token="999:wrong")
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await intruder.get_me()
    finally:
        await intruder.session.close()


async def test_updates_roundtrip(tg: FakeTelegram, bot: Bot) -> None:
    ivan = tg.user(1001)
    sent = tg.send_text(ivan, "/start ref42")
    updates = await bot.get_updates(offset=0, timeout=1)
    assert [u.update_id for u in updates] == [sent["update_id"]]
    message = updates[0].message
    assert message is not None and message.text == "/start ref42"
    assert message.entities is not None and message.entities[0].length == len("/start")

    # long poll wakes up as soon as an update is pushed
    poll = asyncio.create_task(bot.get_updates(offset=sent["update_id"] + 1, timeout=1))
    await asyncio.sleep(0.05)
    await bot.send_message(1001, "choose", reply_markup=KEYBOARD)
    press = tg.press(ivan, tg.message_of(await tg.wait_call("sendMessage")), "pay:100")
    (update,) = await poll
    assert update.callback_query is not None
    assert update.callback_query.id == press["callback_query"]["id"]
    assert update.callback_query.data == "pay:100"
    assert update.callback_query.message is not None

    tg.send_sticker(ivan)
    (sticker,) = await bot.get_updates(offset=update.update_id + 1, timeout=1)
    assert sticker.message is not None and sticker.message.sticker is not None
    assert await bot.get_updates(offset=sticker.update_id + 1, timeout=0) == []


# ---- QIWI ---------------------------------------------------------------------------


class RewriteTransport(httpx.AsyncBaseTransport):
    """Send every request to `base_url`, keeping path and query."""

    def __init__(self, base_url: str) -> None:
        self._target = httpx.URL(base_url)
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self._target.scheme, host=self._target.host, port=self._target.port
        )
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest_asyncio.fixture
async def qiwi() -> AsyncIterator[FakeQiwi]:
    async with FakeQiwi(make_secret_key()) as fake:
        yield fake


def make_p2p(qiwi: FakeQiwi, key: str | None = None, timeout: float = 5.0) -> AioQiwiP2P:
    p2p = AioQiwiP2P(auth_key=key or qiwi.secret_key)
    transport = RewriteTransport(qiwi.base_url)
    p2p._client = httpx.AsyncClient(transport=transport, timeout=timeout)
    return p2p


async def test_qiwi_bill_check_reject(qiwi: FakeQiwi) -> None:
    expiration = datetime.now(UTC) + timedelta(minutes=15)
    async with make_p2p(qiwi) as p2p:
        bill = await p2p.bill(bill_id="b1", amount=100, expiration=expiration)
        assert (bill.bill_id, bill.status, bill.amount) == ("b1", "WAITING", "100.00")
        assert bill.pay_url.startswith("https://oplata.qiwi.com/form/?invoice_uid=")
        put = await qiwi.wait_request("PUT", "b1")
        assert put.json is not None and put.json["amount"] == {
            "currency": "RUB",
            "value": "100.00",
        }
        assert put.headers["Authorization"] == f"Bearer {qiwi.secret_key}"

        again = await p2p.bill(bill_id="b1", amount=100, expiration=expiration)
        assert again.pay_url == bill.pay_url

        qiwi.set_status("b1", "PAID")
        assert (await p2p.check("b1")).status == "PAID"
        assert (await p2p.reject("b1")).status == "PAID"

        await p2p.bill(bill_id="b2", amount=50.5, expiration=expiration)
        assert (await p2p.reject("b2")).status == "REJECTED"
        assert qiwi.bills["b2"]["amount"]["value"] == "50.50"
    assert qiwi.unexpected == []


async def test_qiwi_errors(qiwi: FakeQiwi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # pyqiwip2p dumps QiwiCrash_*.txt into the cwd on errors
    async with make_p2p(qiwi, timeout=0.3) as p2p:
        with pytest.raises(QiwiError) as exc:
            await p2p.check("nope")
        assert exc.value.error_code == "api.invoice.not.found"

        qiwi.fail_next("GET", status=502, body="<html>bad gateway</html>")
        with pytest.raises(ValueError, match="not JSON"):
            await p2p.check("nope")

        qiwi.fail_next("PUT", delay=2)
        with pytest.raises(httpx.TimeoutException):
            await p2p.bill(bill_id="slow", amount=10)

    async with make_p2p(qiwi, key=make_secret_key()) as intruder:
        with pytest.raises(QiwiError) as exc:
            await intruder.check("nope")
        assert exc.value.error_code == "auth.unauthorized"
    assert all(r.failed for r in qiwi.requests)


# --- the fake YooKassa, asked over plain HTTP -----------------------------------------


@pytest_asyncio.fixture
async def yookassa() -> AsyncIterator[FakeYooKassa]:
    async with FakeYooKassa(shop_id="100500", secret_key="test_k") as fake:
        yield fake


def yookassa_payment(value: str = "100.00", **changes) -> dict:
    return {
        "amount": {"value": value, "currency": "RUB"},
        "capture": True,
        "confirmation": {"type": "redirect", "return_url": "https://t.me/bot"},
        "description": "top-up",
        "metadata": {"bill_id": "b1"},
        **changes,
    }


def yookassa_auth(secret: str = "test_k") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"100500:{secret}".encode()).decode()}


async def yookassa_call(
    fake: FakeYooKassa,
    method: str,
    path: str,
    body: dict | None = None,
    *,
    key: str | None = "k1",
    secret: str = "test_k",
) -> tuple[int, dict]:
    headers = {"Idempotence-Key": key} if key else {}
    async with (
        aiohttp.ClientSession(headers=yookassa_auth(secret)) as session,
        session.request(method, fake.api_url + path, json=body, headers=headers) as answer,
    ):
        return answer.status, await answer.json()


async def test_yookassa_idempotence_key_auth_and_amounts(yookassa: FakeYooKassa) -> None:
    status, made = await yookassa_call(yookassa, "POST", "/payments", yookassa_payment())
    assert status == 200 and made["status"] == "pending" and not made["paid"]
    assert made["confirmation"]["confirmation_url"].endswith(made["id"])
    # The same key and body: the same payment; another body: YooKassa's 400.
    assert await yookassa_call(yookassa, "POST", "/payments", yookassa_payment()) == (200, made)
    status, error = await yookassa_call(yookassa, "POST", "/payments", yookassa_payment("101.00"))
    assert status == 400 and error["type"] == "error" and error["code"] == "invalid_request"
    assert error["parameter"] == "Idempotence-Key" and len(yookassa.payments) == 1
    status, error = await yookassa_call(yookassa, "POST", "/payments", yookassa_payment(), key=None)
    assert (status, error["parameter"]) == (400, "Idempotence-Key")
    for value in ("100", "100.5", "100.000", "1e2", "-1.00", "0.00"):
        status, error = await yookassa_call(
            yookassa, "POST", "/payments", yookassa_payment(value), key=value
        )
        assert (status, error["parameter"]) == (400, "amount.value"), value
    for field, value in (("capture", False), ("confirmation", {"type": "embedded"})):
        body = yookassa_payment(**{field: value})
        status, error = await yookassa_call(yookassa, "POST", "/payments", body, key=field)
        assert status == 400 and error["parameter"].startswith(field)
    status, error = await yookassa_call(
        yookassa, "GET", f"/payments/{made['id']}", secret="test_other", key=None
    )
    assert (status, error["code"]) == (401, "invalid_credentials")
    assert len(yookassa.payments) == 1 and yookassa.unexpected == []


async def test_yookassa_statuses_cancel_and_events(yookassa: FakeYooKassa) -> None:
    _, made = await yookassa_call(yookassa, "POST", "/payments", yookassa_payment())
    cancel = f"/payments/{made['id']}/cancel"
    status, error = await yookassa_call(yookassa, "POST", cancel, {}, key="c1")
    assert status == 400 and "pending" in error["description"]  # only waiting_for_capture
    yookassa.set_status(made["id"], "waiting_for_capture")
    status, cancelled = await yookassa_call(yookassa, "POST", cancel, {}, key="c2")
    assert status == 200 and cancelled["status"] == "canceled"
    assert cancelled["cancellation_details"]["reason"] == "canceled_by_merchant"
    assert [e.event for e in yookassa.events] == ["payment.waiting_for_capture", "payment.canceled"]
    status, got = await yookassa_call(yookassa, "GET", f"/payments/{made['id']}", key=None)
    assert (status, got["status"]) == (200, "canceled")
    status, _ = await yookassa_call(yookassa, "GET", "/payments/nope", key=None)
    assert status == 404
    yookassa.fail_next("GET", status=429, headers={"Retry-After": "3"})
    async with (
        aiohttp.ClientSession(headers=yookassa_auth()) as session,
        session.get(yookassa.api_url + f"/payments/{made['id']}") as answer,
    ):
        assert answer.status == 429 and answer.headers["Retry-After"] == "3"
        assert (await answer.json())["code"] == "too_many_requests"
