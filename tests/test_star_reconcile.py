"""Stars payments whose successful_payment update never came are found in
getStarTransactions and credited once: real aiogram against the fake Bot API, which
lists the Star charges and refunds it has made; faults are injected in the fake."""

import asyncio
import time
from datetime import timedelta
from decimal import Decimal

from asgiref.sync import sync_to_async

from backend.bot import texts
from backend.bot.client import BillNotifier
from backend.payments.models import Bill
from backend.payments.providers.telegram import TelegramPaymentsProvider
from backend.payments.reconcile import reconcile_star_payments, run_star_reconciler
from tests.constants import PROVIDER_TOKEN
from tests.helpers import (
    ask_to_pay,
    block,
    button,
    db_bills,
    db_ledger,
    db_user,
    press_confirm,
)

STARS_ONLY = ("telegram",)
DAY = 24 * 3600


def stars_provider(process) -> TelegramPaymentsProvider:
    """The running bot's Telegram provider (its Bot, its session)."""
    return process.dp["providers"]["telegram"]


async def reconcile(process):
    """One reconciliation round, as the runner's loop does it; the credits made."""
    provider = stars_provider(process)
    return await reconcile_star_payments(provider=provider, notify=BillNotifier(provider.bot))


async def stars_invoice(tg, user: dict, amount_text: str = "150"):
    """The dialog up to the invoice (Stars is the only way to pay); the sendInvoice call."""
    press_confirm(tg, user, await ask_to_pay(tg, user, amount_text))
    return await tg.wait_call("sendInvoice")


async def lost_payment(tg, user: dict, amount_text: str = "150") -> str:
    """The user pays an invoice in Stars, and the successful_payment update is lost: the
    money is taken, the bot never hears of it. Returns the charge id."""
    invoice = await stars_invoice(tg, user, amount_text)
    before = set(tg.payments.charges)
    tg.lose_next_payments()
    tg.checkout(user, tg.message_of(invoice))
    await tg.wait_call("answerPreCheckoutQuery")
    [charge_id] = set(tg.payments.charges) - before
    assert tg.payments.charges[charge_id].payload == invoice.params["payload"]
    return charge_id


def star_calls(tg) -> list:
    return [c for c in tg.calls if c.method == "getStarTransactions"]


def star_pages(tg) -> list[tuple[int, int]]:
    """(offset, limit) of each getStarTransactions call."""
    return [(int(c.params["offset"]), int(c.params["limit"])) for c in star_calls(tg)]


async def test_a_lost_payment_is_credited_once_with_the_usual_message(make_bot, tg):
    process = await make_bot(payments=STARS_ONLY, telegram_payments={"rubles_per_star": 2})
    user = tg.user(8401)
    charge_id = await lost_payment(tg, user, "150")
    await tg.assert_no_call("sendMessage", within=0.3)  # the bot knows nothing yet
    [bill] = await db_bills(8401)
    assert (bill.status, bill.charge_id) == (Bill.Status.WAITING, "")
    assert (await db_user(8401)).balance == 0

    [credit] = await reconcile(process)
    assert credit.credited and credit.bill.pk == bill.pk
    paid = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 8401)
    assert paid.params["text"] == texts.bill_paid(Decimal(150), Decimal(150))
    [bill] = await db_bills(8401)
    assert (bill.status, bill.charge_id) == (Bill.Status.PAID, charge_id)
    assert (await db_user(8401)).balance == Decimal("150.00")
    assert [(e.kind, e.amount) for e in await db_ledger(8401)] == [("topup", Decimal(150))]
    assert star_pages(tg) == [(0, 100)]

    # Again: the charge id is recorded now, nothing more is credited or said.
    assert await reconcile(process) == []
    # And the update arrives after all (Telegram delivered it late): credited once still.
    tg.send_successful_payment(user, charge_id)
    tg.send_text(user, "/start")  # handled after it: the late update has been processed
    greeting = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 8401)
    assert greeting.params["text"].startswith("Привет, ")
    await tg.assert_no_call("sendMessage", within=0.3, predicate=lambda p: p["chat_id"] == 8401)
    assert (await db_user(8401)).balance == Decimal("150.00")
    assert [e.kind for e in await db_ledger(8401)] == ["topup"]


async def test_the_update_and_the_reconciler_at_once_credit_once(make_bot, tg):
    process = await make_bot(payments=STARS_ONLY)
    user = tg.user(8402)
    charge_id = await lost_payment(tg, user, "90")
    tg.send_successful_payment(user, charge_id)  # the update comes as the round runs
    await reconcile(process)
    paid = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 8402)
    assert paid.params["text"] == texts.bill_paid(Decimal(90), Decimal(90))
    await tg.assert_no_call("sendMessage", within=0.5, predicate=lambda p: p["chat_id"] == 8402)
    assert (await db_user(8402)).balance == Decimal("90.00")
    assert [e.kind for e in await db_ledger(8402)] == ["topup"]


async def choose(tg, user: dict, amount_text: str, way: str):
    """The dialog with both ways to pay, up to the bill: the QIWI bill message or the
    Stars invoice (sendMessage / sendInvoice call)."""
    press_confirm(tg, user, await ask_to_pay(tg, user, amount_text))
    choice = await tg.wait_call("sendMessage")
    tg.press(user, tg.message_of(choice), button(choice, way)["callback_data"])
    return await tg.wait_call("sendInvoice" if way == "Telegram Stars" else "sendMessage")


async def test_transactions_that_are_not_lost_payments_of_our_bills_change_nothing(
    make_bot, tg, qiwi
):
    process = await make_bot(payments=("qiwi", "telegram"))
    payer, stranger = tg.user(8403), tg.user(8404)
    # A Stars bill paid the usual way (its transaction is listed: credited already), then
    # refunded at Telegram (an outgoing transaction with the same id).
    invoice = await choose(tg, payer, "40", "Telegram Stars")
    tg.checkout(payer, tg.message_of(invoice))
    await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 8403)  # «paid»
    [paid_bill] = await db_bills(8403)
    assert paid_bill.status == Bill.Status.PAID
    await stars_provider(process).refund(telegram_id=8403, charge_id=paid_bill.charge_id)
    # A QIWI bill, and a Stars bill still open (so that Telegram is asked at all).
    await choose(tg, payer, "30", "QIWI")
    [qiwi_bill] = [b for b in await db_bills(8403) if b.provider == "qiwi"]
    await choose(tg, stranger, "60", "Telegram Stars")
    [open_stars] = await db_bills(8404)

    # What Telegram lists besides: payloads that are no bill of ours or not a Stars bill,
    # a second charge for the paid bill, someone else paying the open bill, another sum,
    # and transactions that are no invoice payments at all.
    tg.add_star_payment(payer, "not-a-bill-of-ours", 40)
    tg.add_star_payment(payer, "x" * 128, 40)
    tg.add_star_payment(payer, qiwi_bill.pk, 30)
    tg.add_star_payment(payer, paid_bill.pk, 40)
    tg.add_star_payment(payer, open_stars.pk, 60)  # not the bill's owner
    tg.add_star_payment(stranger, open_stars.pk, 59)  # not the bill's price
    tg.add_star_transaction({"id": "wd1", "amount": 500, "receiver": {"type": "fragment"}})
    tg.add_star_transaction(
        {
            "id": "pm1",
            "amount": 5,
            "source": {
                "type": "user",
                "transaction_type": "paid_media_payment",
                "user": stranger,
                "paid_media_payload": open_stars.pk,
            },
        }
    )
    tg.add_star_transaction({"id": "ads1", "amount": 7, "source": {"type": "telegram_ads"}})
    before = {b.pk: (b.status, b.charge_id) for b in await sync_to_async(list)(Bill.objects.all())}

    assert await reconcile(process) == []
    assert await reconcile(process) == []
    assert len(star_calls(tg)) == 2  # Telegram was asked, and the answers parsed
    after = {b.pk: (b.status, b.charge_id) for b in await sync_to_async(list)(Bill.objects.all())}
    assert after == before
    assert (await db_user(8403)).balance == Decimal("40.00")  # by its update, once
    assert (await db_user(8404)).balance == 0
    await tg.assert_no_call("sendMessage", within=0.3)


async def test_a_bot_api_failure_is_survived_and_the_next_round_credits(make_bot, tg):
    process = await make_bot(payments=STARS_ONLY)
    user = tg.user(8405)
    charge_id = await lost_payment(tg, user, "75")
    tg.fail_next("getStarTransactions", status=502, times=2)
    tg.fail_next("getStarTransactions", status=200, raw_body="<html>not json</html>")
    provider = stars_provider(process)
    loop = asyncio.create_task(
        run_star_reconciler(provider=provider, notify=BillNotifier(provider.bot), interval=0.2)
    )
    try:
        paid = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 8405)
        assert paid.params["text"] == texts.bill_paid(Decimal(75), Decimal(75))
        assert [c.failed for c in star_calls(tg)] == [True, True, True, False]
        [bill] = await db_bills(8405)
        assert (bill.status, bill.charge_id) == (Bill.Status.PAID, charge_id)

        # The loop goes on: a payment lost later is credited by a later round, alone.
        second = await lost_payment(tg, user, "5")
        paid = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 8405)
        assert paid.params["text"] == texts.bill_paid(Decimal(5), Decimal(80))
        assert {b.charge_id for b in await db_bills(8405)} == {charge_id, second}
        await asyncio.sleep(0.5)  # more rounds
        assert not loop.done()
    finally:
        loop.cancel()
    await tg.assert_no_call("sendMessage", within=0.3)
    assert [e.kind for e in await db_ledger(8405)] == ["topup", "topup"]
    assert (await db_user(8405)).balance == Decimal("80.00")


async def test_the_pages_are_read_back_to_the_oldest_payable_bill_only(make_bot, tg):
    process = await make_bot(payments=STARS_ONLY)
    user, others = tg.user(8406), tg.user(8407)
    now = int(time.time())
    for i in range(150):  # long ago: older than every bill that could still be paid
        tg.add_star_payment(others, f"old-{i}", 10, date=now - 30 * DAY)
    charge_id = await lost_payment(tg, user, "20")
    for i in range(230):  # newer than the lost payment: other bots' business, say
        tg.add_star_payment(others, f"new-{i}", 10, date=now + 60)

    [credit] = await reconcile(process)
    assert credit.bill.charge_id == charge_id
    # 230 newer, the lost one, then 150 older: the third page ends before the bill.
    assert star_pages(tg) == [(0, 100), (100, 100), (200, 100)]
    assert (await db_user(8406)).balance == Decimal("20.00")


async def test_the_documented_chronological_order_is_read_too(make_bot, tg):
    process = await make_bot(payments=STARS_ONLY)
    tg.payments.star_transactions_ascending = True
    user, others = tg.user(8408), tg.user(8409)
    for i in range(120):
        tg.add_star_payment(others, f"old-{i}", 10, date=int(time.time()) - 30 * DAY + i)
    charge_id = await lost_payment(tg, user, "25")

    [credit] = await reconcile(process)
    assert credit.bill.charge_id == charge_id
    assert star_pages(tg) == [(0, 100), (100, 100)]  # to the end
    assert (await db_user(8408)).balance == Decimal("25.00")


async def test_telegram_is_not_asked_when_no_stars_bill_could_be_paid(make_bot, tg):
    process = await make_bot(payments=STARS_ONLY)
    user = tg.user(8410)
    await stars_invoice(tg, user, "10")
    [bill] = await db_bills(8410)
    await sync_to_async(Bill.objects.filter(pk=bill.pk).update)(status=Bill.Status.FAILED)
    assert await reconcile(process) == []
    assert star_calls(tg) == []


async def test_a_blocked_users_lost_payment_is_credited_without_a_message(make_bot, tg):
    process = await make_bot(payments=STARS_ONLY)
    user = tg.user(8411)
    await lost_payment(tg, user, "35")
    await block(8411)
    [credit] = await reconcile(process)
    assert credit.credited
    await tg.assert_no_call("sendMessage", within=0.3)
    assert (await db_user(8411)).balance == Decimal("35.00")


async def test_an_expired_bills_lost_payment_is_still_credited(make_bot, tg):
    process = await make_bot(payments=STARS_ONLY)
    user = tg.user(8412)
    await lost_payment(tg, user, "45")
    [bill] = await db_bills(8412)
    await sync_to_async(Bill.objects.filter(pk=bill.pk).update)(status=Bill.Status.EXPIRED)
    [credit] = await reconcile(process)
    assert credit.bill.status == Bill.Status.PAID
    paid = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 8412)
    assert paid.params["text"] == texts.bill_paid(Decimal(45), Decimal(45))


async def test_a_provider_token_bot_does_not_reconcile(make_bot, tg):
    process = await make_bot(
        payments=STARS_ONLY, telegram_payments={"provider_token": PROVIDER_TOKEN}
    )
    provider = stars_provider(process)
    assert not provider.takes_stars
    await asyncio.wait_for(
        run_star_reconciler(provider=provider, notify=BillNotifier(provider.bot), interval=0.1),
        timeout=1,
    )  # returns at once
    assert star_calls(tg) == []


async def test_check_now_in_the_admin_credits_a_lost_payment_and_expires_an_unpaid_bill(
    make_bot, tg, boss_client
):
    """«Проверить сейчас» on Telegram Stars bills: Telegram is not asked about a bill, so
    the admin reconciles the payments it lists (the lost one is credited, its payer told)
    and expires a bill past its lifetime (its owner told), as the bill jobs would."""
    await make_bot(payments=STARS_ONLY)
    payer, idle = tg.user(8431), tg.user(8432)
    await lost_payment(tg, payer, "150")
    await stars_invoice(tg, idle, "90")
    [paid], [unpaid] = await db_bills(8431), await db_bills(8432)
    await sync_to_async(Bill.objects.filter(pk=unpaid.pk).update)(
        expires_at=unpaid.created_at - timedelta(minutes=1)
    )

    response = await boss_client.post(
        "/admin/payments/bill/",
        {"action": "check_now", "_selected_action": [paid.pk, unpaid.pk]},
        follow=True,
    )

    text = response.content.decode()
    assert "Проверено счетов: 2; изменили статус: 2, из них оплачено и зачислено: 1" in text
    [paid], [unpaid] = await db_bills(8431), await db_bills(8432)
    assert (paid.status, unpaid.status) == (Bill.Status.PAID, Bill.Status.EXPIRED)
    assert (await db_user(8431)).balance == Decimal("150.00")
    told = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 8431)
    assert told.params["text"] == texts.bill_paid(Decimal("150.00"), Decimal("150.00"))
    told = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 8432)
    assert told.params["text"] == texts.BILL_EXPIRED
