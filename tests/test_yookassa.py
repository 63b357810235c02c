"""YooKassa as a way to pay, end to end: real aiogram over HTTP against the fake Bot API,
the YooKassa adapter against the fake YooKassa, a real database."""

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import override_settings

from backend.bot import texts
from backend.checks import bot_settings_errors
from backend.payments import services
from backend.payments.flows import bill_check
from backend.payments.models import Bill
from backend.payments.providers import providers_from_settings
from backend.payments.providers.base import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRefused,
)
from backend.payments.providers.yookassa import YooKassaProvider
from backend.payments.vocabulary import BillStatus
from tests.constants import ADMIN_ID, YOOKASSA_BASIC, YOOKASSA_KEY, YOOKASSA_SHOP_ID
from tests.fakes import BOT_USER
from tests.helpers import (
    ROOT,
    ask_to_pay,
    button,
    db_bills,
    db_ledger,
    db_user,
    eventually,
    open_bill,
    press_confirm,
)

FAST = {"poll_interval": 0.2}
PAID = "Платёж прошёл успешно"


@pytest.fixture
async def start(make_bot, yookassa):
    """Starts the bot with YooKassa as its only way to pay: `await start(**changes)`."""

    async def started(**changes):
        return await make_bot(payments=("yookassa",), yookassa=yookassa, **changes)

    return started


async def bill_and_payment(yookassa, telegram_id: int) -> tuple[Bill, dict]:
    [bill] = await db_bills(telegram_id)
    return bill, yookassa.payment_of(bill.pk)


async def payment_for(yookassa, telegram_id: int) -> dict:
    return (await bill_and_payment(yookassa, telegram_id))[1]


def success_notes(tg, chat_id: int) -> list:
    return [
        c
        for c in tg.calls
        if c.method == "sendMessage" and c.params["chat_id"] == chat_id and PAID in c.params["text"]
    ]


# --- the dialog -----------------------------------------------------------------------


async def test_the_dialog_sends_yookassas_confirmation_url_and_the_check_button_credits_once(
    start, tg, yookassa
):
    await start()
    user = tg.user(7001)
    message = await open_bill(tg, user, "1 000")
    bill, payment = await bill_and_payment(yookassa, 7001)
    assert bill.status == Bill.Status.WAITING and bill.provider == "yookassa"
    assert bill.charge_id == payment["id"]  # YooKassa's payment id, unique per provider
    pay_link = button(message, texts.PAY_LINK_BUTTON)["url"]
    assert pay_link == payment["confirmation"]["confirmation_url"] == bill.pay_url

    create = await yookassa.wait_request("POST")
    assert create.headers["Idempotence-Key"] == bill.pk
    assert create.headers["Authorization"] == f"Basic {YOOKASSA_BASIC}"
    lifetime = timedelta(minutes=5)
    assert create.json == {
        "amount": {"value": "1000.00", "currency": "RUB"},
        "capture": True,
        "confirmation": {
            "type": "redirect",
            "return_url": f"https://t.me/{BOT_USER['username']}",
        },
        "description": texts.invoice_description(Decimal(1000), "1 000 ₽", lifetime),
        "metadata": {"bill_id": bill.pk},
    }

    check = button(message, texts.CHECK_BUTTON)["callback_data"]
    tg.press(user, tg.message_of(message), check)
    waiting = await tg.wait_call("sendMessage")
    assert waiting.params["text"] == texts.BILL_WAITING

    yookassa.set_status(payment["id"], "succeeded")
    tg.press(user, tg.message_of(message), check)
    paid = await tg.wait_call("sendMessage")
    assert PAID in paid.params["text"] and "Ваш баланс: 1 000 ₽" in paid.params["text"]
    tg.press(user, tg.message_of(message), check)
    again = await tg.wait_call("answerCallbackQuery", lambda p: p.get("text"))
    assert again.params["text"] == texts.BILL_ALREADY_PAID
    assert (await db_user(7001)).balance == Decimal("1000.00")
    assert len(await db_ledger(7001)) == 1
    [stored] = await db_bills(7001)
    assert stored.status == Bill.Status.PAID and stored.provider_status == "succeeded"


async def test_yookassa_is_a_choice_beside_qiwi(make_bot, tg, qiwi, yookassa):
    await make_bot(payments=("qiwi", "yookassa"), yookassa=yookassa)
    user = tg.user(7002)
    confirmation = await ask_to_pay(tg, user, "300")
    press_confirm(tg, user, confirmation)
    choice = await tg.wait_call("sendMessage")
    assert f"{texts.PAY_YOOKASSA_BUTTON}: 300 ₽" in choice.params["text"]
    pay = button(choice, texts.PAY_YOOKASSA_BUTTON)["callback_data"]
    tg.press(user, tg.message_of(choice), pay)
    message = await tg.wait_call("sendMessage")
    bill, payment = await bill_and_payment(yookassa, 7002)
    assert bill.provider == "yookassa" and qiwi.bills == {}
    assert button(message, texts.PAY_LINK_BUTTON)["url"] == bill.pay_url
    assert payment["amount"] == {"value": "300.00", "currency": "RUB"}


# --- the poller -----------------------------------------------------------------------


async def test_the_poller_credits_a_succeeded_payment_and_tells_the_user_once(start, tg, yookassa):
    await start(**FAST)
    await open_bill(tg, tg.user(7003), "250")
    payment = await payment_for(yookassa, 7003)
    yookassa.set_status(payment["id"], "succeeded")
    note = await tg.wait_call("sendMessage")
    assert note.params["chat_id"] == 7003 and "Ваш баланс: 250 ₽" in note.params["text"]
    # Later rounds find the bill closed (asked about for late payments): no second credit.
    await yookassa.wait_request("GET", payment["id"])
    await tg.assert_no_call("sendMessage", within=1.0)
    assert (await db_user(7003)).balance == Decimal("250.00")
    assert len(await db_ledger(7003)) == 1


async def test_the_check_button_the_poller_and_another_process_racing_credit_once(
    start, tg, yookassa
):
    await start(**FAST)
    user = tg.user(7004)
    message = await open_bill(tg, user, "400")
    payment = await payment_for(yookassa, 7004)
    yookassa.hold()  # every answer waits: the askers all hear «succeeded» at once
    yookassa.set_status(payment["id"], "succeeded")
    tg.press(user, tg.message_of(message), button(message, texts.CHECK_BUTTON)["callback_data"])
    other = YooKassaProvider(  # a second bot process, with its own connections
        shop_id=YOOKASSA_SHOP_ID, secret_key=YOOKASSA_KEY, api_url=yookassa.api_url
    )
    fresh = (await db_bills(7004))[0]
    racers = [asyncio.create_task(bill_check(provider=other, bill=fresh)) for _ in range(3)]

    async def all_asking():
        return yookassa.in_flight >= 5  # the button, the poller and the three

    await eventually(all_asking)
    yookassa.release()
    transitions = await asyncio.gather(*racers)
    await other.close()
    await eventually(lambda: _paid(7004))
    await asyncio.sleep(1.0)  # a second message, if any, would be sent by now
    credited = [t for t in transitions if t.credited]
    assert len(credited) + len(success_notes(tg, 7004)) == 1
    assert (await db_user(7004)).balance == Decimal("400.00")
    assert len(await db_ledger(7004)) == 1
    await sync_to_async(connections.close_all)()


async def _paid(telegram_id: int) -> bool:
    return (await db_bills(telegram_id))[0].status == Bill.Status.PAID


@pytest.mark.parametrize(
    ("value", "currency", "word"),
    [("5.00", None, "5.00 RUB"), ("500.00", "USD", "500.00 USD")],
)
async def test_a_payment_of_another_amount_or_currency_is_not_credited(
    start, tg, yookassa, log_dir, value, currency, word
):
    await start(**FAST)
    await open_bill(tg, tg.user(7005), "500")
    bill, payment = await bill_and_payment(yookassa, 7005)
    yookassa.set_amount(payment["id"], value, currency)  # first: never paid in full
    yookassa.set_status(payment["id"], "succeeded")

    async def refused():  # the bill's error is written after the log line
        return f"PAID with {word}" in (await db_bills(7005))[0].error

    await eventually(refused)
    assert f"reported PAID with {word}" in (log_dir / "bot.log").read_text("utf-8")
    [bill] = await db_bills(7005)
    assert bill.status == Bill.Status.WAITING
    assert (await db_user(7005)).balance == 0 and await db_ledger(7005) == []
    await tg.assert_no_call("sendMessage", within=0.3)


# --- expiry and late payments -----------------------------------------------------------


async def test_an_expired_pending_payment_cannot_be_cancelled_and_a_late_success_is_credited(
    start, tg, yookassa
):
    await start(bill_lifetime=timedelta(seconds=1), **FAST)
    await open_bill(tg, tg.user(7006), "75")
    expired = await tg.wait_call("sendMessage", timeout=5)
    assert expired.params["text"] == texts.BILL_EXPIRED
    bill, payment = await bill_and_payment(yookassa, 7006)
    [bill] = await db_bills(7006)
    # YooKassa cancels only waiting_for_capture: the pending payment stays as it is.
    assert bill.status == Bill.Status.EXPIRED and bill.provider_status == "pending"
    assert not [r for r in yookassa.requests if r.path.endswith("/cancel")]
    assert payment["status"] == "pending"

    yookassa.set_status(payment["id"], "succeeded")  # the page was still open
    note = await tg.wait_call("sendMessage")
    assert PAID in note.params["text"]
    assert (await db_user(7006)).balance == Decimal("75.00")
    assert len(await db_ledger(7006)) == 1


async def test_an_expired_payment_waiting_for_capture_is_cancelled_at_yookassa(start, tg, yookassa):
    process = await start(bill_lifetime=timedelta(0))
    await open_bill(tg, tg.user(7007), "60")
    bill, payment = await bill_and_payment(yookassa, 7007)
    await process.stop()
    yookassa.set_status(payment["id"], "waiting_for_capture")
    await start(**FAST)
    note = await tg.wait_call("sendMessage", timeout=5)
    assert note.params["text"] == texts.BILL_EXPIRED
    cancel = await yookassa.wait_request("POST", payment["id"])
    assert cancel.path.endswith("/cancel") and cancel.headers["Idempotence-Key"]
    assert payment["status"] == "canceled"
    [bill] = await db_bills(7007)
    assert bill.status == Bill.Status.EXPIRED and bill.provider_status == "canceled"
    assert (await db_user(7007)).balance == 0


async def test_a_payment_yookassa_cancelled_itself_expires_the_bill(start, tg, yookassa):
    await start(**FAST)
    await open_bill(tg, tg.user(7008), "90")
    payment = await payment_for(yookassa, 7008)
    yookassa.set_status(payment["id"], "canceled", reason="expired_on_confirmation")
    note = await tg.wait_call("sendMessage")
    assert note.params["text"] == texts.BILL_EXPIRED
    assert (await db_bills(7008))[0].status == Bill.Status.EXPIRED


# --- faults -----------------------------------------------------------------------------


async def test_a_create_without_a_clear_answer_is_sent_again_with_the_same_key(start, tg, yookassa):
    await start()
    yookassa.fail_next("POST", status=500)
    message = await open_bill(tg, tg.user(7009), "120")
    [bill] = await db_bills(7009)
    creates = [r for r in yookassa.requests if r.method == "POST"]
    assert [r.failed for r in creates] == [True, False]
    assert {r.headers["Idempotence-Key"] for r in creates} == {bill.pk}
    assert button(message, texts.PAY_LINK_BUTTON)["url"] == bill.pay_url
    assert len(yookassa.payments) == 1


async def test_a_create_that_keeps_failing_is_reported_not_swallowed(start, tg, yookassa):
    await start()
    yookassa.fail_next("POST", status=503, times=2)
    user = tg.user(7010)
    press_confirm(tg, user, await ask_to_pay(tg, user, "130"))
    support = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 7010)
    assert support.params["text"] == texts.SUPPORT
    report = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == ADMIN_ID)
    assert "HTTP 503" in report.params["text"]
    [bill] = await db_bills(7010)
    assert bill.status == Bill.Status.FAILED and "HTTP 503" in bill.error
    assert YOOKASSA_KEY not in report.params["text"] + bill.error


@pytest.mark.parametrize(
    ("fault", "logged"),
    [
        ({"status": 500}, "HTTP 500"),
        ({"status": 200, "body": "<html>not json</html>"}, "not a JSON object"),
        ({"status": 401}, "check YOOKASSA_SHOP_ID and YOOKASSA_SECRET_KEY"),
        ({"status": 502, "delay": 3}, "no answer in time"),
    ],
)
async def test_a_failed_check_is_told_to_the_user_and_logged(
    start, tg, yookassa, log_dir, fault, logged
):
    await start(qiwi_timeout=1)
    user = tg.user(7011)
    message = await open_bill(tg, user, "140")
    yookassa.fail_next("GET", **fault)
    tg.press(user, tg.message_of(message), button(message, texts.CHECK_BUTTON)["callback_data"])
    failed = await tg.wait_call("sendMessage", timeout=5)
    assert failed.params["text"] == texts.CHECK_FAILED
    log = (log_dir / "bot.log").read_text("utf-8")
    assert logged in log
    assert YOOKASSA_KEY not in log and YOOKASSA_BASIC not in log
    assert (await db_bills(7011))[0].status == Bill.Status.WAITING


async def test_a_429_slows_the_poller_down_and_the_payment_is_credited(start, tg, yookassa):
    process = await start()
    await open_bill(tg, tg.user(7012), "150")
    payment = await payment_for(yookassa, 7012)
    await process.stop()
    yookassa.set_status(payment["id"], "succeeded")
    yookassa.fail_next("GET", status=429, headers={"Retry-After": "1"}, times=2)
    await start(**FAST)
    note = await tg.wait_call("sendMessage", timeout=8)
    assert PAID in note.params["text"]
    gets = [r for r in yookassa.requests if r.method == "GET"]
    assert [r.failed for r in gets[:3]] == [True, True, False]
    assert gets[1].at - gets[0].at >= 0.9  # the Retry-After was waited out
    assert (await db_user(7012)).balance == Decimal("150.00")


@pytest.mark.parametrize(
    ("fault", "logged"),
    [
        ({"status": 500}, "HTTP 500"),
        ({"status": 200, "body": "{not json"}, "not a JSON object"),
        ({"status": 502, "delay": 3}, "no answer in time"),
    ],
)
async def test_a_failed_poll_is_logged_and_the_next_round_credits(
    start, tg, yookassa, log_dir, fault, logged
):
    process = await start()
    await open_bill(tg, tg.user(7015), "160")
    payment = await payment_for(yookassa, 7015)
    await process.stop()
    yookassa.set_status(payment["id"], "succeeded")
    yookassa.fail_next("GET", **fault)
    await start(qiwi_timeout=1, **FAST)
    note = await tg.wait_call("sendMessage", timeout=8)
    assert PAID in note.params["text"]
    [bill] = await db_bills(7015)
    lines = (log_dir / "bot.log").read_text("utf-8").splitlines()
    assert [line for line in lines if f"bill {bill.pk} not checked" in line and logged in line]
    gets = [r for r in yookassa.requests if r.method == "GET"]
    assert [r.failed for r in gets[:2]] == [True, False]
    assert (await db_user(7015)).balance == Decimal("160.00")
    assert len(await db_ledger(7015)) == 1


# --- the adapter alone ------------------------------------------------------------------


@pytest.fixture
async def adapter(yookassa):
    provider = YooKassaProvider(
        shop_id=YOOKASSA_SHOP_ID,
        secret_key=YOOKASSA_KEY,
        api_url=yookassa.api_url,
        return_url="https://example.com/back",
        timeout=1,
    )
    yield provider
    await provider.close()


async def create(adapter, bill_id: str = "b" * 32, amount: str = "10", comment: str = "x"):
    return await adapter.create_bill(
        bill_id=bill_id,
        amount=Decimal(amount),
        currency="RUB",
        expires_at=None,
        comment=comment,
    )


async def test_the_adapter_maps_statuses_and_keeps_the_raw_answer(adapter, yookassa):
    made = await create(adapter)
    assert (made.status, made.provider_status, made.amount) == (
        BillStatus.WAITING,
        "pending",
        Decimal("10.00"),
    )
    assert made.raw == yookassa.payments[made.charge_id]
    expected = {
        "waiting_for_capture": BillStatus.WAITING,
        "succeeded": BillStatus.PAID,
        "canceled": BillStatus.REJECTED,
    }
    for word, status in expected.items():
        yookassa.set_status(made.charge_id, word, reason="permission_revoked")
        got = await adapter.get_bill(bill_id="b" * 32, charge_id=made.charge_id)
        assert (got.status, got.provider_status, got.pay_url) == (status, word, "")
    yookassa.fail_next("GET", status=200, json_body=yookassa.answer(made.charge_id, status="hold"))
    unknown = await adapter.get_bill(bill_id="b" * 32, charge_id=made.charge_id)
    assert (unknown.status, unknown.provider_status) == (None, "hold")


async def test_the_same_bill_makes_one_payment_and_another_body_is_refused(adapter, yookassa):
    first = await create(adapter)
    again = await create(adapter)
    assert first.charge_id == again.charge_id and len(yookassa.payments) == 1
    with pytest.raises(ProviderRefused, match="Idempotence key duplicated"):
        await create(adapter, amount="11")
    assert len(yookassa.payments) == 1


async def test_the_adapters_errors(adapter, yookassa):
    made = await create(adapter)
    with pytest.raises(ProviderNotFound):
        await adapter.get_bill(bill_id="b" * 32, charge_id="")  # never created
    with pytest.raises(ProviderNotFound):
        await adapter.get_bill(bill_id="b" * 32, charge_id="no-such-payment")
    with pytest.raises(ProviderError, match="not bill"):  # another bill's payment
        await adapter.get_bill(bill_id="c" * 32, charge_id=made.charge_id)
    yookassa.fail_next("GET", status=429, headers={"Retry-After": "7"})
    with pytest.raises(ProviderRateLimited) as limited:
        await adapter.get_bill(bill_id="b" * 32, charge_id=made.charge_id)
    assert limited.value.retry_after == 7
    yookassa.fail_next("GET", status=403)
    with pytest.raises(ProviderAuthError):
        await adapter.get_bill(bill_id="b" * 32, charge_id=made.charge_id)
    yookassa.fail_next("GET", status=200, json_body=yookassa.answer(made.charge_id, amount={}))
    with pytest.raises(ProviderError, match="without a field"):
        await adapter.get_bill(bill_id="b" * 32, charge_id=made.charge_id)
    wrong = YooKassaProvider(
        shop_id=YOOKASSA_SHOP_ID, secret_key="test_wrong", api_url=yookassa.api_url
    )
    with pytest.raises(ProviderAuthError) as refused:
        await wrong.get_bill(bill_id="b" * 32, charge_id=made.charge_id)
    await wrong.close()
    assert "test_wrong" not in str(refused.value)
    # A pending payment is not cancelled: it comes back as it is.
    pending = await adapter.reject_bill(bill_id="b" * 32, charge_id=made.charge_id)
    assert pending.status == BillStatus.WAITING
    assert not [r for r in yookassa.requests if r.path.endswith("/cancel")]


@sync_to_async
def stale_new_bill(telegram_id: int) -> Bill:
    """A YooKassa bill whose creation call never finished (the bot died during it)."""
    from backend.payments.services import bill_create
    from backend.users.services import user_upsert

    user = user_upsert(
        telegram_id=telegram_id, username="", first_name="A", last_name="", language_code=""
    )
    bill = bill_create(
        user=user, amount=Decimal(80), lifetime=timedelta(minutes=5), provider="yookassa"
    )
    Bill.objects.filter(pk=bill.pk).update(created_at=bill.created_at - timedelta(minutes=3))
    return Bill.objects.get(pk=bill.pk)


async def test_a_bill_left_new_by_a_crash_fails_quietly(transactional_db, adapter):
    """Its payment id was never stored, so nobody got its link: nothing can be paid."""
    bill = await stale_new_bill(7013)
    transition = await bill_check(provider=adapter, bill=bill)
    assert transition.changed and transition.bill.status == Bill.Status.FAILED
    await sync_to_async(connections.close_all)()


# --- settings -----------------------------------------------------------------------------


def test_yookassa_needs_its_shop_id_and_key(settings):
    settings.PAYMENT_PROVIDERS = ["yookassa"]
    settings.YOOKASSA_SHOP_ID = ""
    settings.YOOKASSA_SECRET_KEY = ""
    errors = bot_settings_errors()
    assert "YOOKASSA_SHOP_ID is not set: put it into .env or the environment" in errors
    assert "YOOKASSA_SECRET_KEY is not set: put it into .env or the environment" in errors
    settings.PAYMENT_PROVIDERS = ["qiwi"]
    assert not [e for e in bot_settings_errors() if "YOOKASSA" in e]


async def test_the_registry_makes_the_adapter_from_the_settings(yookassa):
    with override_settings(
        YOOKASSA_SHOP_ID=YOOKASSA_SHOP_ID,
        YOOKASSA_SECRET_KEY=YOOKASSA_KEY,
        YOOKASSA_API_URL=yookassa.api_url,
        YOOKASSA_RETURN_URL="https://example.com/thanks",
    ):
        made = providers_from_settings(None, names=["yookassa"])
    [provider] = made.values()
    payment = await create(provider, bill_id="d" * 32)
    await provider.close()
    confirmation = yookassa.payments[payment.charge_id]["confirmation"]
    assert confirmation["return_url"] == "https://example.com/thanks"


# --- the admin's «check now» ----------------------------------------------------------------


async def test_the_admins_check_now_asks_yookassa_and_credits_once(
    boss_client, settings, tg, yookassa
):
    settings.PAYMENT_PROVIDERS = ["yookassa"]
    settings.YOOKASSA_SHOP_ID, settings.YOOKASSA_SECRET_KEY = YOOKASSA_SHOP_ID, YOOKASSA_KEY
    settings.YOOKASSA_API_URL = yookassa.api_url
    bill = await stale_new_bill(7014)
    adapter = YooKassaProvider(
        shop_id=YOOKASSA_SHOP_ID,
        secret_key=YOOKASSA_KEY,
        api_url=yookassa.api_url,
        return_url="https://example.com/back",
    )
    remote = await create(adapter, bill_id=bill.pk, amount="80")
    await adapter.close()
    await sync_to_async(services.bill_mark_created)(
        bill_id=bill.pk,
        pay_url=remote.pay_url,
        provider_status=remote.provider_status,
        charge_id=remote.charge_id,
    )
    yookassa.set_status(remote.charge_id, "succeeded")
    for _ in range(2):
        response = await boss_client.post(
            "/admin/payments/bill/",
            {"action": "check_now", "_selected_action": [bill.pk]},
            follow=True,
        )
        assert response.status_code == 200
    note = await tg.wait_call("sendMessage")
    assert note.params["chat_id"] == 7014 and PAID in note.params["text"]
    assert (await db_user(7014)).balance == Decimal("80.00")
    assert len(await db_ledger(7014)) == 1
    gets = [r.object_id for r in yookassa.requests if r.method == "GET"]
    assert gets == [remote.charge_id]  # asked by its payment id; once paid, not again


def test_the_key_and_its_basic_authorization_are_redacted_in_the_logs():
    """settings.py hands both to the log setup, as it does the QIWI key."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "backend.settings",
        "YOOKASSA_SHOP_ID": YOOKASSA_SHOP_ID,
        "YOOKASSA_SECRET_KEY": YOOKASSA_KEY,
    }
    code = "from django.conf import settings; print(*settings.LOGGING['secrets'], sep='\\n')"
    printed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert YOOKASSA_KEY in printed and YOOKASSA_BASIC in printed
