"""YooKassa's HTTP notifications end to end: the fake YooKassa posts them over HTTP to
the bot's webhook listener (and, through Django's test client, to the admin server);
the bot asks the fake about the payment before it acts, the user hears of it through
the fake Bot API. Duplicates, out-of-order and forged notifications, a YooKassa that does
not answer the re-fetch, and none at all (the poller)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient

from backend.bot import texts
from backend.payments.models import Bill
from backend.payments.notifications import NOTIFICATION_PATH, yookassa_address_allowed
from tests.constants import TOKEN, YOOKASSA_KEY, YOOKASSA_SHOP_ID
from tests.helpers import button, db_bills, db_ledger, db_user, eventually, open_bill
from tests.test_webhook import HeldBill

PAID = "Платёж прошёл успешно"
YOOKASSA_ADDRESS = "185.71.76.10"  # in YooKassa's published 185.71.76.0/27


@pytest.fixture
def url(webhook) -> str:
    """Where YooKassa posts its notifications to the bot's webhook listener."""
    return f"http://127.0.0.1:{webhook.port}{NOTIFICATION_PATH}"


@pytest.fixture
async def start(make_bot, webhook, yookassa):
    """Starts the bot in webhook mode with YooKassa as its way to pay."""

    async def started(**changes):
        changes = {"payments": ("yookassa",), **changes}
        return await make_bot(webhook=webhook, yookassa=yookassa, **changes)

    return started


async def a_bill(tg, yookassa, telegram_id: int, amount: str = "500"):
    """A bill opened through the dialog: (its message, its YooKassa payment)."""
    message = await open_bill(tg, tg.user(telegram_id), amount)
    [bill] = await db_bills(telegram_id)
    return message, yookassa.payment_of(bill.pk)


def told_paid(tg, chat_id: int) -> list:
    return [
        c
        for c in tg.calls
        if c.method == "sendMessage" and c.params["chat_id"] == chat_id and PAID in c.params["text"]
    ]


async def credited(telegram_id: int, amount: str) -> None:
    """The user's balance is `amount`, from exactly one ledger row."""
    assert (await db_user(telegram_id)).balance == Decimal(amount)
    assert [e.amount for e in await db_ledger(telegram_id)] == [Decimal(amount)]


# --- the bot's webhook listener -------------------------------------------------------


async def test_a_notification_credits_once_and_duplicates_or_late_events_change_nothing(
    start, url, tg, yookassa
):
    await start()
    _, payment = await a_bill(tg, yookassa, 7101)
    yookassa.set_status(payment["id"], "waiting_for_capture")  # held, then captured
    yookassa.set_status(payment["id"], "succeeded")
    held, succeeded = yookassa.events_of(payment["id"])
    assert (held.event, succeeded.event) == ("payment.waiting_for_capture", "payment.succeeded")

    delivery = await yookassa.send_notification(url, succeeded)
    assert delivery.status == 200
    # Answered after the commit: the bill is paid by the time the answer is read.
    [stored] = await db_bills(7101)
    assert stored.status == Bill.Status.PAID and stored.provider_status == "succeeded"
    note = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 7101)
    assert note.params["text"] == texts.bill_paid(Decimal(500), Decimal(500))
    gets = [r for r in yookassa.requests if r.method == "GET" and not r.failed]
    assert [r.object_id for r in gets] == [payment["id"]]  # asked YooKassa before acting

    # Again, the older event after it, and a forged cancellation: all 200, nothing more.
    for late in (succeeded, held, yookassa.forged(payment["id"], "payment.canceled")):
        assert (await yookassa.send_notification(url, late)).status == 200
    await tg.assert_no_call("sendMessage", within=0.5)
    assert len(told_paid(tg, 7101)) == 1
    await credited(7101, "500.00")
    assert (await db_bills(7101))[0].status == Bill.Status.PAID


async def test_a_forged_success_for_a_pending_payment_credits_nothing(start, url, tg, yookassa):
    await start()
    _, payment = await a_bill(tg, yookassa, 7102, "300")
    forged = yookassa.forged(payment["id"])
    assert forged["object"]["status"] == "succeeded" and forged["object"]["paid"] is True

    delivery = await yookassa.send_notification(url, forged)
    assert delivery.status == 200  # answered: asking again would not change YooKassa's word
    await yookassa.wait_request("GET", payment["id"])  # it asked, and heard «pending»
    [stored] = await db_bills(7102)
    assert stored.status == Bill.Status.WAITING and stored.provider_status == "pending"
    assert (await db_user(7102)).balance == 0 and await db_ledger(7102) == []
    await tg.assert_no_call("sendMessage", within=0.3)


async def test_the_answer_waits_for_the_commit(start, url, tg, yookassa):
    await start()
    _, payment = await a_bill(tg, yookassa, 7110, "210")
    yookassa.set_status(payment["id"], "succeeded")
    [succeeded] = yookassa.events_of(payment["id"])
    [bill] = await db_bills(7110)
    with HeldBill(bill.pk):  # another transaction holds the bill: the credit waits
        delivery = asyncio.create_task(yookassa.send_notification(url, succeeded))
        await yookassa.wait_request("GET", payment["id"])
        answered, _ = await asyncio.wait({delivery}, timeout=0.5)
        assert not answered and yookassa.deliveries == []
    assert (await delivery).status == 200
    await credited(7110, "210.00")


async def test_a_late_success_of_an_expired_bill_is_credited(start, url, tg, yookassa):
    """A bill expired here while its page stayed open at YooKassa (a pending payment
    cannot be cancelled): the notification of its late success credits it."""
    process = await start(bill_lifetime=timedelta(seconds=1), poll_interval=0.2)
    _, payment = await a_bill(tg, yookassa, 7111, "75")
    expired = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 7111)
    assert expired.params["text"] == texts.BILL_EXPIRED
    await process.stop()
    await start()  # its poller asks once at the start, then sleeps for an hour
    await yookassa.wait_request("GET", payment["id"])
    assert (await db_bills(7111))[0].status == Bill.Status.EXPIRED
    yookassa.set_status(payment["id"], "succeeded")
    assert (
        await yookassa.send_notification(url, yookassa.events_of(payment["id"])[-1])
    ).status == 200
    note = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 7111)
    assert PAID in note.params["text"]
    await credited(7111, "75.00")
    assert (await db_bills(7111))[0].status == Bill.Status.PAID


async def test_yookassa_unreachable_answers_5xx_and_the_retry_credits(start, url, tg, yookassa):
    await start(qiwi_timeout=1)  # YOOKASSA_TIMEOUT_SECONDS too
    _, payment = await a_bill(tg, yookassa, 7103, "250")
    yookassa.set_status(payment["id"], "succeeded")
    [succeeded] = yookassa.events_of(payment["id"])
    yookassa.fail_next("GET", status=500)
    yookassa.fail_next("GET", status=502, delay=3)  # no answer in time
    for _ in range(2):
        delivery = await yookassa.send_notification(url, succeeded)
        assert delivery.status == 503
        assert (await db_bills(7103))[0].status == Bill.Status.WAITING
    assert (await db_user(7103)).balance == 0
    await tg.assert_no_call("sendMessage", within=0.3)

    assert (await yookassa.send_notification(url, succeeded)).status == 200  # YooKassa retries
    note = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 7103)
    assert PAID in note.params["text"]
    await credited(7103, "250.00")


async def test_no_notification_at_all_the_poller_credits(start, tg, yookassa):
    """Notifications not enabled in the cabinet: the payment waits one poll interval.
    (tests/test_yookassa.py has the poller's own cases in polling mode.)"""
    await start(poll_interval=0.2)
    _, payment = await a_bill(tg, yookassa, 7104, "120")
    yookassa.set_status(payment["id"], "succeeded")
    note = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 7104)
    assert PAID in note.params["text"]
    assert yookassa.deliveries == []
    await credited(7104, "120.00")


async def test_the_notification_the_poller_and_the_check_button_racing_credit_once(
    start, url, tg, yookassa
):
    await start(poll_interval=0.2)
    message, payment = await a_bill(tg, yookassa, 7105, "400")
    yookassa.hold()  # every answer waits: all the askers hear «succeeded» at once
    yookassa.set_status(payment["id"], "succeeded")
    [succeeded] = yookassa.events_of(payment["id"])
    user = tg.user(7105)
    tg.press(user, tg.message_of(message), button(message, texts.CHECK_BUTTON)["callback_data"])
    deliveries = [asyncio.create_task(yookassa.send_notification(url, succeeded)) for _ in range(2)]

    async def all_asking():
        return yookassa.in_flight >= 4  # the button, the poller and two notifications

    await eventually(all_asking)
    yookassa.release()
    assert [d.status for d in await asyncio.gather(*deliveries)] == [200, 200]
    note = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 7105)
    assert PAID in note.params["text"]
    await tg.assert_no_call("sendMessage", within=1.0)  # a second «paid» would be sent by now
    assert len(told_paid(tg, 7105)) == 1
    await credited(7105, "400.00")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[]", 400),
        (json.dumps({"type": "payment", "object": {"id": "x"}}).encode(), 400),
        (json.dumps({"type": "notification", "event": "payment.succeeded"}).encode(), 400),
        (json.dumps({"type": "notification", "event": "payment.succeeded", "object": {}}), 400),
        ({"type": "notification", "event": "payment.succeeded", "object": {"id": "../a"}}, 400),
        ({"type": "notification", "event": "payment.succeeded", "object": {"id": "f" * 65}}, 400),
        # Not ours: 200, so YooKassa stops; nobody is asked about it.
        ({"type": "notification", "event": "payment.succeeded", "object": {"id": "2f-1"}}, 200),
        ({"type": "notification", "event": "refund.succeeded", "object": {"id": "2f-2"}}, 200),
    ],
)
async def test_what_is_not_a_notification_of_ours(start, url, tg, yookassa, log_dir, body, status):
    await start()
    if isinstance(body, str):
        body = body.encode()
    delivery = await yookassa.send_notification(url, body)
    assert delivery.status == status
    assert not [r for r in yookassa.requests if r.method == "GET"]
    if status == 200 and "2f-1" in delivery.body.decode():
        log = (log_dir / "bot.log").read_text("utf-8")
        assert "about payment 2f-1: no bill records it" in log


async def test_the_listener_has_no_notifications_without_yookassa(start, url, yookassa):
    await start(payments=("qiwi",))
    assert (await yookassa.send_notification(url, b"{}")).status == 404


# --- the IP allow-list ----------------------------------------------------------------------


def test_yookassas_published_addresses():
    for address in (YOOKASSA_ADDRESS, "185.71.77.31", "77.75.156.11", "77.75.154.200"):
        assert yookassa_address_allowed(address), address
    assert yookassa_address_allowed("2a02:5180::1")
    assert yookassa_address_allowed("::ffff:185.71.76.1")  # IPv4 on a dual-stack socket
    for address in ("185.71.76.32", "77.75.156.12", "127.0.0.1", "2a02:5181::1", "", None, "x"):
        assert not yookassa_address_allowed(address), address


async def test_the_allow_list_believes_only_the_proxys_header(start, url, tg, yookassa, settings):
    settings.YOOKASSA_NOTIFY_IP_CHECK = True
    await start()
    _, payment = await a_bill(tg, yookassa, 7106, "90")
    yookassa.set_status(payment["id"], "succeeded")
    [succeeded] = yookassa.events_of(payment["id"])
    forwarded = {"X-Forwarded-For": YOOKASSA_ADDRESS, "X-Real-IP": YOOKASSA_ADDRESS}
    # No proxy configured: the peer is 127.0.0.1, and what a client claims is ignored.
    assert (await yookassa.send_notification(url, succeeded, headers=forwarded)).status == 403
    settings.ADMIN_CLIENT_IP_HEADER = "X-Real-IP"
    outsider = {"X-Real-IP": "203.0.113.5", "X-Forwarded-For": YOOKASSA_ADDRESS}
    assert (await yookassa.send_notification(url, succeeded, headers=outsider)).status == 403
    assert not [r for r in yookassa.requests if r.method == "GET"]
    assert (await db_bills(7106))[0].status == Bill.Status.WAITING
    inside = {"X-Real-IP": YOOKASSA_ADDRESS}
    assert (await yookassa.send_notification(url, succeeded, headers=inside)).status == 200
    await credited(7106, "90.00")


# --- the admin server ----------------------------------------------------------------------


@pytest.fixture
def admin_server(settings, tg, yookassa):
    """The admin server's settings, YooKassa on: Django's client, refusing what has no
    CSRF token (a notification has none, and needs none)."""
    settings.PAYMENT_PROVIDERS = ["yookassa"]
    settings.YOOKASSA_SHOP_ID, settings.YOOKASSA_SECRET_KEY = YOOKASSA_SHOP_ID, YOOKASSA_KEY
    settings.YOOKASSA_API_URL = yookassa.api_url
    settings.TELEGRAM_API_TOKEN = TOKEN
    settings.TELEGRAM_API_SERVER = tg.base_url
    return AsyncClient(enforce_csrf_checks=True)


async def post(client: AsyncClient, body: dict) -> tuple[int, str]:
    response = await client.post(NOTIFICATION_PATH, json.dumps(body), "application/json")
    return response.status_code, response.content.decode()


async def test_the_admin_server_credits_once_and_ignores_a_forgery(
    make_bot, admin_server, tg, yookassa
):
    await make_bot(payments=("yookassa",), yookassa=yookassa)  # polling; no listener
    _, paid = await a_bill(tg, yookassa, 7107, "80")
    _, pending = await a_bill(tg, yookassa, 7108, "70")
    yookassa.set_status(paid["id"], "succeeded")
    [succeeded] = yookassa.events_of(paid["id"])

    for _ in range(2):
        assert await post(admin_server, yookassa.notification(succeeded)) == (200, "ok")
    note = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 7107)
    assert PAID in note.params["text"]
    await credited(7107, "80.00")
    assert (await db_bills(7107))[0].status == Bill.Status.PAID

    assert (await post(admin_server, yookassa.forged(pending["id"])))[0] == 200
    await yookassa.wait_request("GET", pending["id"])
    assert (await db_bills(7108))[0].status == Bill.Status.WAITING
    assert (await db_user(7108)).balance == 0
    await tg.assert_no_call("sendMessage", within=0.5)
    assert len(told_paid(tg, 7107)) == 1
    await sync_to_async(connections.close_all)()


async def test_the_admin_server_answers_5xx_while_yookassa_is_down(
    make_bot, admin_server, tg, yookassa
):
    await make_bot(payments=("yookassa",), yookassa=yookassa)
    _, payment = await a_bill(tg, yookassa, 7109, "60")
    yookassa.set_status(payment["id"], "succeeded")
    [succeeded] = yookassa.events_of(payment["id"])
    yookassa.fail_next("GET", status=503)
    assert (await post(admin_server, yookassa.notification(succeeded)))[0] == 503
    assert (await db_bills(7109))[0].status == Bill.Status.WAITING
    assert (await post(admin_server, yookassa.notification(succeeded)))[0] == 200
    await credited(7109, "60.00")
    await sync_to_async(connections.close_all)()


async def test_the_admin_server_has_no_notifications_without_yookassa(
    transactional_db, admin_server, settings
):
    assert (await admin_server.get(NOTIFICATION_PATH)).status_code == 405
    settings.PAYMENT_PROVIDERS = ["qiwi"]
    assert (await post(admin_server, {"type": "notification"}))[0] == 404
    assert (await admin_server.get(NOTIFICATION_PATH)).status_code == 404
