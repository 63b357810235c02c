"""The background check of open bills, and bills that outlive a restart of the bot."""

from datetime import timedelta
from decimal import Decimal

from asgiref.sync import sync_to_async

from backend.bot import texts
from backend.payments.models import Bill
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
    from tests.conftest import QIWI_KEY

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

    async def refused():
        return "reported PAID with 5.00 RUB" in (log_dir / "bot.log").read_text("utf-8")

    await eventually(refused)
    [bill] = await db_bills(2013)
    assert bill.status == Bill.Status.WAITING and "PAID with 5.00 RUB" in bill.error
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
