"""Webhook mode end to end: the fake Bot API posts updates to the bot's HTTP server, as
Telegram does (JSON, the secret header, again after any answer but a 2xx), and the bot
answers through the Bot API as in polling mode."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import aiohttp
import pytest
from django.db import connection, transaction

from backend.bot import texts
from backend.bot.config import WebhookConfig
from backend.payments.models import Bill
from tests.constants import PROVIDER_TOKEN
from tests.constants import WEBHOOK_SECRET as SECRET
from tests.helpers import ask_to_pay, db_bills, db_ledger, db_user, eventually, press_confirm


async def test_setwebhook_and_a_dialog_through_it(make_bot, tg, webhook):
    await make_bot(webhook=webhook)
    [call] = tg.sent("setWebhook")
    assert call.params["url"] == webhook.url
    assert call.params["secret_token"] == SECRET
    assert call.params["max_connections"] == "40"
    assert set(call.params["allowed_updates"]) == {
        "message",
        "callback_query",
        "pre_checkout_query",
    }
    assert not tg.sent("getUpdates")

    user = tg.user(9401)
    tg.send_text(user, "/start")
    hello = await tg.wait_call("sendMessage")
    assert hello.params["chat_id"] == 9401
    assert all(d.status == 200 for d in tg.webhook_deliveries())


async def post(webhook: WebhookConfig, body: bytes, secret: str | None = SECRET, path=None):
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    url = f"http://127.0.0.1:{webhook.port}{path or webhook.path}"
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        return r.status, await r.text()


START = {
    "update_id": 900,
    "message": {
        "message_id": 1,
        "date": 1764300000,
        "chat": {"id": 9402, "type": "private", "first_name": "Ева"},
        "from": {"id": 9402, "is_bot": False, "first_name": "Ева"},
        "text": "/start",
    },
}


@pytest.mark.parametrize(
    ("secret", "body", "status"),
    [
        (None, json.dumps(START).encode(), 401),
        ("wrong", json.dumps(START).encode(), 401),
        (SECRET[:-1], json.dumps(START).encode(), 401),
        (SECRET, b"{not json", 400),
        (SECRET, b"[]", 400),
        (SECRET, b'{"message": {}}', 400),
        (SECRET, json.dumps({**START, "padding": "x" * (1024 * 1024)}).encode(), 413),
    ],
)
async def test_requests_that_are_not_telegrams_updates_are_refused(
    make_bot, tg, webhook, secret, body, status
):
    await make_bot(webhook=webhook)
    assert (await post(webhook, body, secret=secret))[0] == status
    await tg.assert_no_call("sendMessage", within=0.3)


async def test_an_update_posted_with_the_secret_is_handled(make_bot, tg, webhook):
    await make_bot(webhook=webhook)
    assert (await post(webhook, json.dumps(START).encode()))[0] == 200
    assert (await tg.wait_call("sendMessage")).params["chat_id"] == 9402


async def test_healthz_says_the_database_answers(make_bot, webhook):
    await make_bot(webhook=webhook)
    url = f"http://127.0.0.1:{webhook.port}/healthz"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert await response.json() == {"database": "ok"}


class HeldBill:
    """Another connection holds the bill's row (and on SQLite the write lock), so the
    payment's credit waits for it."""

    def __init__(self, bill_id: str) -> None:
        self.bill_id = bill_id
        self.holding, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold)

    def _hold(self) -> None:
        try:
            with transaction.atomic():
                Bill.objects.select_for_update().get(pk=self.bill_id)
                self.holding.set()
                self.release.wait(30)
        finally:
            connection.close()

    def __enter__(self) -> HeldBill:
        self.thread.start()
        assert self.holding.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.thread.join(10)


async def test_a_payment_is_answered_only_after_it_is_credited(make_bot, tg, webhook):
    await make_bot(
        webhook=webhook,
        payments=("telegram",),
        telegram_payments={"provider_token": PROVIDER_TOKEN},
    )
    user = tg.user(9403)
    press_confirm(tg, user, await ask_to_pay(tg, user, "300"))
    invoice = await tg.wait_call("sendInvoice")
    [bill] = await db_bills(9403)

    with HeldBill(bill.pk):
        tg.checkout(user, tg.message_of(invoice))
        await tg.wait_call("answerPreCheckoutQuery")
        payment_id = max(u["update_id"] for u in tg.updates)

        async def posted():
            return tg.webhook_deliveries(payment_id)

        [delivery] = await eventually(posted)
        # The credit waits for the held row, and so does the answer to Telegram.
        await tg.assert_no_call("sendMessage", within=0.5)
        assert delivery.status is None and payment_id in tg.webhook.in_flight
        # (No database read here: the bot's ORM thread is the one that waits.)

    paid = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 9403)
    assert paid.params["text"] == texts.bill_paid(Decimal(300), Decimal(300))

    async def answered():
        return delivery.status == 200

    await eventually(answered)
    assert [e.amount for e in await db_ledger(9403)] == [Decimal("300.00")]
    assert (await db_user(9403)).balance == Decimal("300.00")


@pytest.mark.parametrize(
    ("redis_url", "status", "body"),
    [
        ("redis://127.0.0.1:6379/15", 200, {"database": "ok", "redis": "ok"}),
        ("redis://127.0.0.1:1/15", 503, {"database": "ok", "redis": "down"}),
    ],
)
async def test_healthz_says_whether_redis_answers(make_bot, webhook, redis_url, status, body):
    await make_bot(webhook=webhook, redis_url=redis_url)
    url = f"http://127.0.0.1:{webhook.port}/healthz"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert (response.status, await response.json()) == (status, body)
