"""Telegram Payments end to end: real aiogram against the fake Bot API, which sends
invoices, asks the pre-checkout question, charges and reports the successful payment,
and refunds Stars; QIWI stays the other way to pay."""

from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from backend.bot import texts
from backend.payments.models import Bill, LedgerEntry
from tests.constants import PROVIDER_TOKEN
from tests.helpers import (
    ask_to_pay,
    block,
    button,
    db_bills,
    db_ledger,
    db_user,
    eventually,
    press_confirm,
)

BOTH = ("qiwi", "telegram")
STARS_1_5 = {"rubles_per_star": Decimal("1.5")}
ADMIN_URL = "/admin/payments/bill/"


async def pay_in_stars(tg, user: dict, amount_text: str = "150"):
    """The dialog up to the invoice, choosing Telegram Stars; returns the sendInvoice call."""
    confirm = await ask_to_pay(tg, user, amount_text)
    press_confirm(tg, user, confirm)
    choice = await tg.wait_call("sendMessage")
    tg.press(user, tg.message_of(choice), button(choice, "Telegram Stars")["callback_data"])
    return await tg.wait_call("sendInvoice")


async def paid_in_stars(tg, user: dict, amount_text: str) -> Bill:
    """The whole Stars payment, up to the bot's «paid» message; returns the paid bill."""
    invoice = await pay_in_stars(tg, user, amount_text)
    tg.checkout(user, tg.message_of(invoice))
    await tg.wait_call("sendMessage", lambda p: p["chat_id"] == user["id"])
    [bill] = await db_bills(user["id"])
    return bill


async def test_stars_top_up_from_the_choice_to_the_balance(make_bot, tg):
    await make_bot(payments=BOTH, telegram_payments=STARS_1_5)
    user = tg.user(8101)
    confirm = await ask_to_pay(tg, user, "150")
    press_confirm(tg, user, confirm)
    choice = await tg.wait_call("sendMessage")
    # Both ways, each with what it costs: 150 ₽, or ceil(150 / 1.5) = 100 stars.
    assert button(choice, "QIWI") and button(choice, "Telegram Stars")
    assert "150 ₽" in choice.params["text"] and "100 ⭐" in choice.params["text"]

    tg.press(user, tg.message_of(choice), button(choice, "Telegram Stars")["callback_data"])
    invoice = await tg.wait_call("sendInvoice")
    [bill] = await db_bills(8101)
    assert invoice.params["chat_id"] == 8101
    assert invoice.params["payload"] == bill.pk
    assert invoice.params["currency"] == "XTR"
    assert "provider_token" not in invoice.params
    assert [p["amount"] for p in invoice.params["prices"]] == [100]
    assert "150 ₽" in invoice.params["description"] and "100 ⭐" in invoice.params["description"]
    assert (bill.provider, bill.status, bill.amount) == ("telegram", "WAITING", Decimal(150))
    assert (bill.invoice_currency, bill.invoice_total) == ("XTR", 100)

    query_id = tg.checkout(user, tg.message_of(invoice))
    await tg.wait_call("answerPreCheckoutQuery")
    assert tg.pre_checkout_answer(query_id)["ok"] is True
    paid = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 8101)
    assert paid.params["text"] == texts.bill_paid(Decimal(150), Decimal(150))

    [bill] = await db_bills(8101)
    [charge_id] = tg.payments.charges
    assert (bill.status, bill.charge_id) == (Bill.Status.PAID, charge_id)
    assert (await db_user(8101)).balance == Decimal("150.00")
    [entry] = await db_ledger(8101)
    assert (entry.kind, entry.amount, entry.bill_id) == ("topup", Decimal(150), bill.pk)


async def test_a_provider_token_invoice_in_rubles_without_a_choice(make_bot, tg):
    await make_bot(payments=("telegram",), telegram_payments={"provider_token": PROVIDER_TOKEN})
    user = tg.user(8102)
    confirm = await ask_to_pay(tg, user, "250")
    assert "К оплате" not in confirm.params["text"]  # rubles are rubles
    press_confirm(tg, user, confirm)
    invoice = await tg.wait_call("sendInvoice")  # one way to pay: no choice
    assert invoice.params["currency"] == "RUB"
    assert invoice.params["provider_token"] == PROVIDER_TOKEN
    assert [p["amount"] for p in invoice.params["prices"]] == [25000]  # kopecks

    tg.checkout(user, tg.message_of(invoice))
    paid = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 8102)
    assert paid.params["text"] == texts.bill_paid(Decimal(250), Decimal(250))
    [bill] = await db_bills(8102)
    assert bill.provider_charge_id.startswith("prov-")
    assert (await db_user(8102)).balance == Decimal("250.00")


async def test_only_stars_shows_both_figures_before_the_confirmation(make_bot, tg):
    await make_bot(payments=("telegram",), telegram_payments={"rubles_per_star": Decimal(2)})
    confirm = await ask_to_pay(tg, tg.user(8103), "101")
    assert "К оплате: 51 ⭐" in confirm.params["text"]  # ceil(101 / 2)


@pytest.mark.parametrize(
    ("forged", "reason"),
    [({"total_amount": 1}, "mismatch"), ({"currency": "USD"}, "mismatch")],
)
async def test_a_pre_checkout_that_does_not_match_the_bill_is_refused(make_bot, tg, forged, reason):
    await make_bot(payments=BOTH)
    user = tg.user(8104)
    invoice = await pay_in_stars(tg, user)
    query_id = tg.checkout(user, tg.message_of(invoice), **forged)
    await tg.wait_call("answerPreCheckoutQuery")
    answer = tg.pre_checkout_answer(query_id)
    assert answer == {"ok": False, "error_message": texts.PAYMENT_REFUSED[reason]}
    assert not tg.payments.charges  # Telegram takes no money after a «no»
    [bill] = await db_bills(8104)
    assert bill.status == Bill.Status.WAITING
    assert (await db_user(8104)).balance == 0


async def test_someone_elses_or_an_expired_invoice_is_refused(make_bot, tg):
    await make_bot(payments=BOTH)
    owner, other = tg.user(8105), tg.user(8106)
    invoice = await pay_in_stars(tg, owner)
    query_id = tg.checkout(other, tg.message_of(invoice))  # a forwarded invoice
    await tg.wait_call("answerPreCheckoutQuery")
    assert tg.pre_checkout_answer(query_id)["error_message"] == texts.PAYMENT_REFUSED["not_yours"]

    [bill] = await db_bills(8105)
    await sync_to_async(Bill.objects.filter(pk=bill.pk).update)(expires_at=bill.created_at)
    query_id = tg.checkout(owner, tg.message_of(invoice))
    await tg.wait_call("answerPreCheckoutQuery")
    assert tg.pre_checkout_answer(query_id)["error_message"] == texts.PAYMENT_REFUSED["expired"]
    assert not tg.payments.charges


async def test_a_successful_payment_that_comes_twice_credits_once(make_bot, tg):
    await make_bot(payments=BOTH)
    user = tg.user(8107)
    await paid_in_stars(tg, user, "40")
    [charge_id] = tg.payments.charges

    tg.send_successful_payment(user, charge_id)  # Telegram delivers it once more
    tg.send_text(user, "/start")  # handled after it: the duplicate has been processed
    greeting = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 8107)
    assert greeting.params["text"].startswith("Привет, ")
    await tg.assert_no_call("sendMessage", within=0.3, predicate=lambda p: p["chat_id"] == 8107)
    assert (await db_user(8107)).balance == Decimal("40.00")
    assert [e.kind for e in await db_ledger(8107)] == ["topup"]


async def test_a_payment_is_credited_to_a_user_blocked_after_the_invoice(make_bot, tg):
    await make_bot(payments=BOTH)
    user = tg.user(8108)
    invoice = await pay_in_stars(tg, user, "30")
    tg.checkout(user, tg.message_of(invoice))
    await tg.wait_call("answerPreCheckoutQuery")
    await block(8108)
    tg.send_successful_payment(user, next(iter(tg.payments.charges)))

    async def credited():
        return (await db_user(8108)).balance == Decimal("30.00")

    # The money is taken before the block is known here; the duplicate is ignored too.
    await eventually(credited)
    assert [e.kind for e in await db_ledger(8108)] == ["topup"]


async def test_a_stars_payment_is_refunded_from_the_admin(make_bot, tg, boss_client):
    await make_bot(payments=BOTH)
    user = tg.user(8109)
    bill = await paid_in_stars(tg, user, "70")

    page = await boss_client.get(f"{ADMIN_URL}{bill.pk}/change/")
    assert bill.charge_id in page.content.decode()  # the bill's page shows the charge id
    response = await boss_client.post(
        ADMIN_URL, {"action": "refund", "_selected_action": [bill.pk]}, follow=True
    )
    assert response.status_code == 200
    refund = await tg.wait_call("refundStarPayment")
    assert refund.params == {"user_id": 8109, "telegram_payment_charge_id": bill.charge_id}
    [bill] = await db_bills(8109)
    assert bill.status == Bill.Status.REFUNDED
    assert (await db_user(8109)).balance == 0
    assert [(e.kind, e.amount) for e in await db_ledger(8109)] == [
        ("refund", Decimal("-70.00")),
        ("topup", Decimal("70.00")),
    ]

    # Once is enough: a second refund is refused before Telegram hears of it.
    await boss_client.post(ADMIN_URL, {"action": "refund", "_selected_action": [bill.pk]})
    await tg.assert_no_call("refundStarPayment", within=0.3)
    assert len(await db_ledger(8109)) == 2


async def test_a_refund_is_refused_when_the_balance_would_go_below_zero(make_bot, tg, boss_client):
    from backend.payments.services import balance_adjust

    await make_bot(payments=BOTH)
    user = tg.user(8110)
    bill = await paid_in_stars(tg, user, "70")
    stored = await db_user(8110)
    await sync_to_async(balance_adjust)(user=stored, amount=Decimal("-50"), reason="spent")
    [bill] = await db_bills(8110)

    response = await boss_client.post(
        ADMIN_URL, {"action": "refund", "_selected_action": [bill.pk]}, follow=True
    )
    assert "not refunded" in response.content.decode() or "не возвращ" in response.content.decode()
    await tg.assert_no_call("refundStarPayment", within=0.3)
    [bill] = await db_bills(8110)
    assert bill.status == Bill.Status.PAID
    assert (await db_user(8110)).balance == Decimal("20.00")
    assert await sync_to_async(LedgerEntry.objects.filter(kind="refund").count)() == 0


async def test_invoices_expire_by_their_clock_and_qiwi_never_hears_of_them(make_bot, tg, qiwi):
    await make_bot(payments=BOTH, poll_interval=0.2)
    user = tg.user(8111)
    invoice = await pay_in_stars(tg, user)
    [bill] = await db_bills(8111)
    await sync_to_async(Bill.objects.filter(pk=bill.pk).update)(expires_at=bill.created_at)

    expired = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 8111)
    assert expired.params["text"] == texts.BILL_EXPIRED
    [bill] = await db_bills(8111)
    assert bill.status == Bill.Status.EXPIRED
    assert not [r for r in qiwi.requests if bill.pk in r.path]
    query_id = tg.checkout(user, tg.message_of(invoice))  # the invoice is still in the chat
    await tg.wait_call("answerPreCheckoutQuery")
    assert tg.pre_checkout_answer(query_id)["error_message"] == texts.PAYMENT_REFUSED["expired"]


async def test_a_blocked_user_is_refused_at_the_pre_checkout(make_bot, tg):
    await make_bot(payments=BOTH)
    user = tg.user(8112)
    invoice = await pay_in_stars(tg, user)
    await block(8112)
    query_id = tg.checkout(user, tg.message_of(invoice))
    await tg.wait_call("answerPreCheckoutQuery")
    assert tg.pre_checkout_answer(query_id) == {
        "ok": False,
        "error_message": texts.PAYMENT_REFUSED_BLOCKED,
    }
    await tg.assert_no_call("sendMessage", within=0.3)


async def test_with_both_enabled_qiwi_is_still_the_customers_route(make_bot, tg, qiwi):
    await make_bot(payments=BOTH)
    user = tg.user(8113)
    confirm = await ask_to_pay(tg, user, "90")
    press_confirm(tg, user, confirm)
    choice = await tg.wait_call("sendMessage")
    tg.press(user, tg.message_of(choice), button(choice, "QIWI")["callback_data"])
    bill_message = await tg.wait_call("sendMessage")
    assert button(bill_message, texts.PAY_LINK_BUTTON)["url"].startswith("https://oplata.qiwi")
    [bill] = await db_bills(8113)
    assert (bill.provider, bill.status) == ("qiwi", Bill.Status.WAITING)
    qiwi.set_status(bill.pk, "PAID")
    check = button(bill_message, texts.CHECK_BUTTON)["callback_data"]
    tg.press(user, tg.message_of(bill_message), check)
    paid = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 8113)
    assert paid.params["text"] == texts.bill_paid(Decimal(90), Decimal(90))
    await tg.assert_no_call("sendInvoice", within=0.1)


async def test_the_admin_says_so_when_it_has_no_bot_token_for_a_refund(
    make_bot, tg, boss_client, settings
):
    await make_bot(payments=BOTH)
    user = tg.user(8114)
    bill = await paid_in_stars(tg, user, "20")
    settings.TELEGRAM_API_TOKEN = ""

    response = await boss_client.post(
        ADMIN_URL, {"action": "refund", "_selected_action": [bill.pk]}, follow=True
    )
    assert "TELEGRAM_API_TOKEN" in response.content.decode()
    [bill] = await db_bills(8114)
    assert bill.status == Bill.Status.PAID
    assert (await db_user(8114)).balance == Decimal("20.00")
