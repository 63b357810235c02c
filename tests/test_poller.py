"""The background check of open bills, and bills that outlive a restart of the bot."""

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections
from django.utils import timezone

from backend.bot import texts
from backend.payments.models import Bill
from backend.payments.poller import Throttle, check_bills
from backend.payments.providers.base import ProviderError, ProviderRateLimited
from backend.payments.selectors import bills_to_check
from backend.payments.services import BillTransition
from tests.helpers import (
    button,
    db_bills,
    db_ledger,
    db_user,
    eventually,
    open_bill,
    qiwi_answer,
)

FAST = {"poll_interval": 0.2}


async def paid_while_stopped(make_bot, tg, qiwi, amounts: dict[int, str]) -> list[Bill]:
    """Each user opens a bill, the bot stops, QIWI marks the bills PAID; the bills."""
    process = await make_bot()
    for user_id, amount in amounts.items():
        await open_bill(tg, tg.user(user_id), amount)
    bills = [(await db_bills(user_id))[0] for user_id in amounts]
    await process.stop()
    for bill in bills:
        qiwi.set_status(bill.pk, "PAID")
    return bills


async def test_poller_credits_a_paid_bill_and_tells_the_user_once(make_bot, tg, qiwi):
    await make_bot(**FAST)
    user = tg.user(2001)
    await open_bill(tg, user, "250")
    [bill] = await db_bills(2001)
    qiwi.set_status(bill.pk, "PAID")
    note = await tg.wait_call("sendMessage")
    assert note.params["chat_id"] == 2001
    assert "Платёж прошёл успешно" in note.params["text"]
    assert "Ваш баланс: 250 ₽" in note.params["text"]
    # Later rounds find the bill closed: no second credit, no second message.
    await qiwi.wait_request("GET", bill.pk)
    await tg.assert_no_call("sendMessage", within=1.0)
    assert (await db_user(2001)).balance == Decimal("250.00")
    assert len(await db_ledger(2001)) == 1


async def test_expired_bill_is_rejected_at_qiwi_and_the_user_told(make_bot, tg, qiwi):
    await make_bot(bill_lifetime=timedelta(seconds=1), **FAST)
    user = tg.user(2002)
    await open_bill(tg, user, "100")
    [bill] = await db_bills(2002)
    note = await tg.wait_call("sendMessage", timeout=5)
    assert note.params["text"] == texts.BILL_EXPIRED
    assert button(note, texts.TOP_UP_BUTTON)
    await qiwi.wait_request("POST", bill.pk)
    assert qiwi.bills[bill.pk]["status"]["value"] == "REJECTED"
    assert (await db_bills(2002))[0].status == Bill.Status.EXPIRED


async def test_bill_paid_just_before_the_reject_is_credited(make_bot, tg, qiwi):
    """QIWI still said WAITING, but the bill got paid before our reject reached it."""
    process = await make_bot(bill_lifetime=timedelta(0))  # expired as soon as it is made
    user = tg.user(2003)
    await open_bill(tg, user, "700")
    [bill] = await db_bills(2003)
    await process.stop()
    qiwi.fail_next("GET", status=200, json_body=qiwi_answer(qiwi, bill.pk, "WAITING"))
    qiwi.set_status(bill.pk, "PAID")
    await make_bot(**FAST)
    note = await tg.wait_call("sendMessage")
    assert "Платёж прошёл успешно" in note.params["text"]
    await qiwi.wait_request("POST", bill.pk)
    assert (await db_bills(2003))[0].status == Bill.Status.PAID
    assert (await db_user(2003)).balance == Decimal("700.00")


async def test_bill_paid_while_the_bot_was_stopped_is_credited_after_restart(make_bot, tg, qiwi):
    await paid_while_stopped(make_bot, tg, qiwi, {2004: "1 500"})
    await make_bot(**FAST)
    note = await tg.wait_call("sendMessage")
    assert "Ваш баланс: 1 500 ₽" in note.params["text"]
    assert (await db_user(2004)).balance == Decimal("1500.00")


async def test_blocked_users_paid_bill_is_credited_silently(make_bot, tg, qiwi):
    from backend.users.services import user_block

    await make_bot(**FAST)
    user = tg.user(2005)
    await open_bill(tg, user, "400")
    [bill] = await db_bills(2005)
    await sync_to_async(user_block)(telegram_id=2005)
    qiwi.set_status(bill.pk, "PAID")

    async def credited():
        return (await db_bills(2005))[0].status == Bill.Status.PAID

    await eventually(credited)
    await tg.assert_no_call("sendMessage", within=0.5)
    assert (await db_user(2005)).balance == Decimal("400.00")
    assert (await db_bills(2005))[0].status == Bill.Status.PAID


async def test_a_failing_bill_does_not_hold_up_the_others(make_bot, tg, qiwi):
    await paid_while_stopped(make_bot, tg, qiwi, {2006: "10", 2007: "20"})
    qiwi.fail_next("GET", status=502, body="<html>Bad Gateway</html>")
    await make_bot(**FAST)
    notes = [await tg.wait_call("sendMessage"), await tg.wait_call("sendMessage")]
    assert {n.params["chat_id"] for n in notes} == {2006, 2007}
    assert (await db_user(2006)).balance == Decimal("10.00")
    assert (await db_user(2007)).balance == Decimal("20.00")


async def test_a_429_delays_the_payment_message_but_does_not_drop_it(make_bot, tg, qiwi):
    await paid_while_stopped(make_bot, tg, qiwi, {2008: "30"})
    tg.fail_next("sendMessage", status=429, retry_after=1)
    await make_bot(**FAST)
    note = await tg.wait_call("sendMessage", timeout=6)
    assert "Платёж прошёл успешно" in note.params["text"]
    assert [c.failed for c in tg.calls if c.method == "sendMessage"][-2:] == [True, False]


async def test_a_user_who_blocked_the_bot_is_still_credited(make_bot, tg, qiwi):
    await paid_while_stopped(make_bot, tg, qiwi, {2009: "40", 2010: "50"})
    tg.fail_next("sendMessage", status=403, description="Forbidden: bot was blocked by the user")
    await make_bot(**FAST)
    note = await tg.wait_call("sendMessage")  # the other user's message still goes out
    assert note.params["chat_id"] in (2009, 2010)

    async def both_credited():
        return [(await db_user(i)).balance for i in (2009, 2010)] == [
            Decimal("40.00"),
            Decimal("50.00"),
        ]

    await eventually(both_credited)


@sync_to_async
def stale_new_bill(telegram_id: int, amount: str) -> Bill:
    """A bill whose creation call never finished (the bot died during it)."""
    from backend.payments.services import bill_create
    from backend.users.services import user_upsert

    user = user_upsert(
        telegram_id=telegram_id, username="", first_name="A", last_name="", language_code=""
    )
    bill = bill_create(user=user, amount=Decimal(amount), lifetime=timedelta(minutes=5))
    Bill.objects.filter(pk=bill.pk).update(created_at=bill.created_at - timedelta(minutes=3))
    return bill


async def test_a_bill_left_new_by_a_crash_is_recovered_or_failed_quietly(make_bot, tg, qiwi):
    from backend.payments.providers.qiwi import QiwiProvider
    from tests.constants import QIWI_KEY

    at_qiwi = await stale_new_bill(2011, "60")
    lost = await stale_new_bill(2012, "70")
    provider = QiwiProvider(secret_key=QIWI_KEY, api_url=qiwi.base_url)
    await provider.create_bill(
        bill_id=at_qiwi.pk,
        amount=at_qiwi.amount,
        currency="RUB",
        expires_at=at_qiwi.expires_at,
        comment="",
    )
    await provider.close()
    await make_bot(**FAST)

    async def settled():
        return [(await db_bills(i))[0].status for i in (2011, 2012)] == [
            Bill.Status.WAITING,
            Bill.Status.FAILED,
        ]

    await eventually(settled)
    assert (await db_bills(2011))[0].pay_url == qiwi.bills[at_qiwi.pk]["payUrl"]
    assert lost.pk not in qiwi.bills
    await tg.assert_no_call("sendMessage", within=0.5)
    qiwi.set_status(at_qiwi.pk, "PAID")
    note = await tg.wait_call("sendMessage")
    assert note.params["chat_id"] == 2011 and "Платёж прошёл успешно" in note.params["text"]


async def test_paid_with_another_amount_is_not_credited(make_bot, tg, qiwi, log_dir):
    await paid_while_stopped(make_bot, tg, qiwi, {2013: "500"})
    [bill] = await db_bills(2013)
    qiwi.set_amount(bill.pk, "5.00")  # someone paid 5 ₽ for a 500 ₽ bill
    await make_bot(**FAST)

    async def refused():  # the bill's error is written after the log line
        return "PAID with 5.00 RUB" in (await db_bills(2013))[0].error

    await eventually(refused)
    assert "reported PAID with 5.00 RUB" in (log_dir / "bot.log").read_text("utf-8")
    [bill] = await db_bills(2013)
    assert bill.status == Bill.Status.WAITING
    assert (await db_user(2013)).balance == 0
    await tg.assert_no_call("sendMessage", within=0.3)


async def test_a_failed_reject_is_tried_again_next_round(make_bot, tg, qiwi):
    process = await make_bot(bill_lifetime=timedelta(0))
    await open_bill(tg, tg.user(2014), "50")
    await process.stop()
    qiwi.fail_next("POST", status=500)
    await make_bot(**FAST)
    note = await tg.wait_call("sendMessage", timeout=5)
    assert note.params["text"] == texts.BILL_EXPIRED
    assert [r.failed for r in qiwi.requests if r.method == "POST"] == [True, False]
    assert (await db_bills(2014))[0].status == Bill.Status.EXPIRED


async def test_a_slow_qiwi_answer_does_not_hold_up_the_other_bills(make_bot, tg, qiwi):
    await paid_while_stopped(make_bot, tg, qiwi, {2015: "15", 2016: "16"})
    qiwi.fail_next("GET", status=502, delay=4)  # the first bill asked about hangs for 4 s
    await make_bot(qiwi_timeout=10, **FAST)
    # Checked one after the other, the second bill would wait the 4 s out.
    other = await tg.wait_call("sendMessage", timeout=3)
    assert other.params["chat_id"] == 2016
    slow = await tg.wait_call("sendMessage", timeout=8)  # retried after its failure
    assert slow.params["chat_id"] == 2015


async def test_an_expired_bill_paid_late_is_found_and_credited(make_bot, tg, qiwi):
    await make_bot(bill_lifetime=timedelta(0), **FAST)
    await open_bill(tg, tg.user(2017), "75")
    expired = await tg.wait_call("sendMessage")
    assert expired.params["text"] == texts.BILL_EXPIRED
    [bill] = await db_bills(2017)
    qiwi.set_status(bill.pk, "PAID")  # the payment form was still open in a browser
    note = await tg.wait_call("sendMessage")
    assert "Платёж прошёл успешно" in note.params["text"]
    assert (await db_user(2017)).balance == Decimal("75.00")
    assert len(await db_ledger(2017)) == 1


async def test_closed_bills_are_not_asked_about_after_the_grace_period(make_bot, tg, qiwi):
    await make_bot(bill_lifetime=timedelta(0), late_payment_grace=timedelta(0), **FAST)
    await open_bill(tg, tg.user(2018), "85")
    assert (await tg.wait_call("sendMessage")).params["text"] == texts.BILL_EXPIRED
    [bill] = await db_bills(2018)
    asked = len([r for r in qiwi.requests if r.bill_id == bill.pk])
    qiwi.set_status(bill.pk, "PAID")
    await tg.assert_no_call("sendMessage", within=1.0)  # five rounds
    assert len([r for r in qiwi.requests if r.bill_id == bill.pk]) == asked


# --- one round, called directly against the fake QIWI --------------------------------


@pytest.fixture
async def provider(transactional_db, qiwi):
    from backend.payments.providers.qiwi import QiwiProvider
    from tests.constants import QIWI_KEY

    provider = QiwiProvider(secret_key=QIWI_KEY, api_url=qiwi.base_url)
    yield provider
    await provider.close()
    await sync_to_async(connections.close_all)()  # the ORM thread's connection


@sync_to_async
def waiting_bills_in_db(first_telegram_id: int, count: int) -> list[Bill]:
    """`count` users with one WAITING bill each, as the bot leaves them."""
    from backend.payments.services import bill_create, bill_mark_created
    from backend.users.models import TelegramUser

    made = []
    for telegram_id in range(first_telegram_id, first_telegram_id + count):
        user = TelegramUser.objects.create(telegram_id=telegram_id, first_name="A")
        bill = bill_create(user=user, amount=Decimal("100"), lifetime=timedelta(minutes=5))
        bill_mark_created(
            bill_id=bill.pk, pay_url="https://pay.example/", provider_status="WAITING"
        )
        made.append(bill.pk)
    return list(Bill.objects.select_related("user").filter(pk__in=made).order_by("created_at"))


async def waiting_bills(provider, first_telegram_id: int, count: int) -> list[Bill]:
    bills = await waiting_bills_in_db(first_telegram_id, count)
    for bill in bills:
        await provider.create_bill(
            bill_id=bill.pk,
            amount=bill.amount,
            currency=bill.currency,
            expires_at=bill.expires_at,
            comment="",
        )
    return bills


async def one_round(provider, concurrency: int = 4) -> tuple[list, list[BillTransition]]:
    """What check_bills returns for the bills the poller would pick, and what it told."""
    told: list[BillTransition] = []

    async def notify(transition: BillTransition) -> None:
        told.append(transition)

    bills = await sync_to_async(bills_to_check)(
        late_since=timezone.now() - timedelta(days=1), provider="qiwi"
    )
    results = await check_bills(
        bills=bills, provider=provider, notify=notify, concurrency=concurrency
    )
    return results, told


def gets(qiwi, bill_id: str) -> list:
    return [r for r in qiwi.requests if r.method == "GET" and r.bill_id == bill_id]


async def assert_credited_once(bills: list[Bill]) -> None:
    for bill in bills:
        [fresh] = await db_bills(bill.user.telegram_id)
        assert fresh.status == Bill.Status.PAID
        assert (await db_user(bill.user.telegram_id)).balance == bill.amount
        assert len(await db_ledger(bill.user.telegram_id)) == 1


async def test_a_429_with_retry_after_is_waited_out_and_the_bill_checked_in_the_same_round(
    provider, qiwi
):
    bills = await waiting_bills(provider, 3001, 3)
    for bill in bills:
        qiwi.set_status(bill.pk, "PAID")
    qiwi.fail_next("GET", status=429, headers={"Retry-After": "1"})
    results, told = await one_round(provider)
    assert all(isinstance(r, BillTransition) and r.credited for r in results)
    assert sorted(t.bill.pk for t in told) == sorted(b.pk for b in bills)
    throttled = next(r for r in qiwi.requests if r.method == "GET" and r.failed)
    first, again = gets(qiwi, throttled.bill_id)
    assert again.at - first.at >= 0.9  # QIWI's Retry-After, asyncio's timer precision aside
    await assert_credited_once(bills)


async def test_a_429_without_retry_after_backs_off_and_the_bills_are_checked_in_the_round(
    provider, qiwi
):
    bills = await waiting_bills(provider, 3011, 2)
    for bill in bills:
        qiwi.set_status(bill.pk, "PAID")
    qiwi.fail_next("GET", status=429, times=3)  # both bills, then one of them once more
    results, told = await one_round(provider)
    assert all(isinstance(r, BillTransition) and r.credited for r in results)
    assert len(told) == 2
    assert sorted(len(gets(qiwi, b.pk)) for b in bills) == [2, 3]
    await assert_credited_once(bills)
    # The next round finds them closed: no second credit, nothing told.
    results, told = await one_round(provider)
    assert results == [] and told == []
    await assert_credited_once(bills)


async def test_while_a_throttled_bill_waits_its_worker_asks_about_the_next_one(provider, qiwi):
    first, second = await waiting_bills(provider, 3061, 2)
    qiwi.fail_next("GET", status=429)  # no Retry-After: the first bill waits on its own
    results, _ = await one_round(provider, concurrency=1)
    assert [r.bill_id for r in qiwi.requests if r.method == "GET"] == [
        first.pk,
        second.pk,
        first.pk,
    ]
    assert all(isinstance(r, BillTransition) for r in results)


async def test_a_retry_after_holds_the_other_bills_of_the_round_too(provider, qiwi):
    first, second = await waiting_bills(provider, 3071, 2)
    qiwi.fail_next("GET", status=429, headers={"Retry-After": "1"})
    results, _ = await one_round(provider, concurrency=1)
    asked = [r for r in qiwi.requests if r.method == "GET"]
    assert [r.bill_id for r in asked] == [first.pk, first.pk, second.pk]
    assert asked[2].at - asked[0].at >= 0.9
    assert all(isinstance(r, BillTransition) for r in results)


async def test_a_bill_throttled_on_every_ask_is_left_for_the_next_round(provider, qiwi):
    from backend.payments.poller import RATE_LIMIT_TRIES

    [bill] = await waiting_bills(provider, 3021, 1)
    qiwi.set_status(bill.pk, "PAID")
    qiwi.fail_next("GET", status=429, headers={"Retry-After": "0"}, times=RATE_LIMIT_TRIES)
    [result], told = await one_round(provider)
    assert isinstance(result, ProviderRateLimited) and result.retry_after == 0
    assert len(gets(qiwi, bill.pk)) == RATE_LIMIT_TRIES and told == []
    [fresh] = await db_bills(3021)
    assert fresh.status == Bill.Status.WAITING
    assert (await db_user(3021)).balance == 0
    [result], told = await one_round(provider)
    assert result.credited and len(told) == 1
    await assert_credited_once([bill])


async def test_a_round_never_asks_about_more_bills_at_once_than_its_concurrency(provider, qiwi):
    bills = await waiting_bills(provider, 3031, 10)
    qiwi.hold()
    round_ = asyncio.create_task(one_round(provider, concurrency=3))

    async def three_waiting():
        return qiwi.in_flight == 3

    await eventually(three_waiting)
    qiwi.release()
    results, told = await round_
    assert qiwi.max_in_flight == 3
    assert all(isinstance(r, BillTransition) and not r.changed for r in results)
    assert [len(gets(qiwi, b.pk)) for b in bills] == [1] * 10 and told == []


@sync_to_async
def record_statements(into: list[str]):
    """Record the SQL of the ORM thread (where the poller's database work runs)."""

    def wrapper(execute, sql, params, many, context):
        into.append(sql)
        return execute(sql, params, many, context)

    connection.execute_wrappers.append(wrapper)
    return wrapper


@sync_to_async
def stop_recording(wrapper) -> None:
    connection.execute_wrappers.remove(wrapper)


async def test_a_round_over_bills_whose_status_did_not_change_is_one_query(provider, qiwi):
    bills = await waiting_bills(provider, 3041, 5)
    statements: list[str] = []
    wrapper = await record_statements(statements)
    try:
        results, told = await one_round(provider)
        assert [r.changed for r in results] == [False] * 5 and told == []
        [find] = statements  # the one query that picks the bills, and nothing per bill
        assert find.startswith("SELECT") and "payments_bill" in find
        qiwi.set_status(bills[0].pk, "PAID")  # a change is still written, in its transaction
        results, told = await one_round(provider)
    finally:
        await stop_recording(wrapper)
    assert [r.credited for r in results] == [True, False, False, False, False]
    assert any(s.startswith("UPDATE") for s in statements)
    await assert_credited_once(bills[:1])


async def test_the_throttle_halves_once_per_burst_of_429s_and_recovers_step_by_step():
    throttle = Throttle(8)
    epoch = await throttle.ready()
    throttle.rate_limited(epoch=epoch, retry_after=None)
    throttle.rate_limited(epoch=epoch, retry_after=None)  # sent before the first was answered
    assert throttle.limit == 4
    throttle.rate_limited(epoch=await throttle.ready(), retry_after=None)
    throttle.rate_limited(epoch=await throttle.ready(), retry_after=None)
    assert throttle.limit == 2  # a quarter of 8 at least
    parked = asyncio.create_task(throttle.turn(2))  # the third worker waits
    await asyncio.sleep(0)
    assert not parked.done()
    throttle.answered()
    throttle.answered()
    await asyncio.wait_for(parked, 1)
    assert throttle.limit == 3
    for _ in range(3 + 4 + 5 + 6 + 7):
        throttle.answered()
    assert throttle.limit == 8


async def test_a_retry_after_holds_every_request_of_the_round_up_to_a_minute():
    from backend.payments.poller import RATE_LIMIT_MAX_PAUSE

    throttle = Throttle(4)
    throttle.rate_limited(epoch=await throttle.ready(), retry_after=0.2)
    held = [asyncio.create_task(throttle.ready()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in held)
    await asyncio.wait_for(asyncio.gather(*held), 5)
    loop = asyncio.get_running_loop()
    throttle.rate_limited(epoch=throttle.epoch, retry_after=3600)
    assert throttle.resume_at - loop.time() <= RATE_LIMIT_MAX_PAUSE


async def test_a_round_while_qiwi_is_unreachable_leaves_every_bill_for_the_next_round(
    provider, qiwi
):
    import socket

    from backend.payments.providers.qiwi import QiwiProvider
    from tests.constants import QIWI_KEY

    bills = await waiting_bills(provider, 3051, 3)
    for bill in bills:
        qiwi.set_status(bill.pk, "PAID")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{probe.getsockname()[1]}"
    down = QiwiProvider(secret_key=QIWI_KEY, api_url=nobody)
    try:
        results, told = await one_round(down)
    finally:
        await down.close()
    assert [type(r) for r in results] == [ProviderError] * 3 and told == []
    assert all("unreachable" in str(r) for r in results)
    results, told = await one_round(provider)  # QIWI is back
    assert all(r.credited for r in results) and len(told) == 3
    await assert_credited_once(bills)
