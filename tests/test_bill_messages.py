"""What the bill's own message offers once the bill is closed, how its lifetime is
worded, and amounts typed the way people type them: real aiogram against the fake Bot
API, real pyqiwip2p against the fake QIWI."""

from datetime import timedelta
from decimal import Decimal

import pytest
from loguru import logger

from backend.bot import texts
from backend.payments.models import Bill
from tests.helpers import ask_to_pay, button, buttons, db_bills, db_user, open_bill, press_confirm


def closed_edit(tg, bill_message):
    """A predicate for the edit of `bill_message`'s keyboard."""
    message_id = bill_message.result["message_id"]
    chat_id = bill_message.params["chat_id"]
    return lambda p: p["message_id"] == message_id and p["chat_id"] == chat_id


async def test_a_bill_paid_through_the_check_button_keeps_no_pay_link(bot, tg, qiwi):
    user = tg.user(5101)
    bill_message = await open_bill(tg, user, "300")
    await tg.wait_call("editMessageReplyMarkup")  # the confirmation loses its buttons
    [bill] = await db_bills(5101)
    assert bill.message_id == bill_message.result["message_id"]
    qiwi.set_status(bill.pk, "PAID")

    check = button(bill_message, texts.CHECK_BUTTON)["callback_data"]
    tg.press(user, tg.message_of(bill_message), check)
    paid = await tg.wait_call("sendMessage")
    assert paid.params["text"] == texts.bill_paid(Decimal(300), Decimal(300))

    edit = await tg.wait_call("editMessageReplyMarkup", closed_edit(tg, bill_message))
    [only] = buttons(edit)
    assert only["text"] == "✅ Счёт оплачен" and "url" not in only
    assert only["callback_data"] == check  # pressed, it says again what became of it
    stored = tg.messages[(5101, bill_message.result["message_id"])]
    assert [b["text"] for row in stored["reply_markup"]["inline_keyboard"] for b in row] == [
        "✅ Счёт оплачен"
    ]

    tg.press(user, tg.message_of(bill_message), check)
    await tg.wait_call("answerCallbackQuery", lambda p: p.get("text") == texts.BILL_ALREADY_PAID)
    assert (await db_user(5101)).balance == Decimal("300.00")


@pytest.mark.parametrize(
    ("lifetime", "qiwi_status", "button_text"),
    [
        (timedelta(minutes=5), "PAID", "✅ Счёт оплачен"),
        (timedelta(minutes=5), "REJECTED", "Счёт отклонён"),
        (timedelta(seconds=1), None, "Срок оплаты истёк"),
    ],
)
async def test_the_poller_closes_the_bill_message(
    make_bot, tg, qiwi, lifetime, qiwi_status, button_text
):
    await make_bot(poll_interval=0.2, bill_lifetime=lifetime)
    user = tg.user(5102)
    bill_message = await open_bill(tg, user, "100")
    [bill] = await db_bills(5102)
    if qiwi_status is not None:
        qiwi.set_status(bill.pk, qiwi_status)

    edit = await tg.wait_call("editMessageReplyMarkup", closed_edit(tg, bill_message), timeout=5)
    assert [(b["text"], "url" in b) for b in buttons(edit)] == [(button_text, False)]
    [bill] = await db_bills(5102)
    assert not bill.is_open


async def test_a_lifetime_under_a_minute_is_said_in_seconds(make_bot, tg, qiwi):
    await make_bot(bill_lifetime=timedelta(seconds=45))
    bill_message = await open_bill(tg, tg.user(5103), "100")
    assert "Оплатите его в течение 45 сек. по ссылке ниже" in bill_message.params["text"]


@pytest.mark.parametrize(
    ("lifetime", "said"),
    [
        (timedelta(seconds=0.2), "1 сек."),
        (timedelta(seconds=45), "45 сек."),
        (timedelta(seconds=60), "1 мин."),
        (timedelta(minutes=5), "5 мин."),
        (timedelta(minutes=5, seconds=59), "5 мин."),
        (timedelta(hours=1), "1 ч"),
        (timedelta(hours=2, minutes=30), "2 ч 30 мин."),
    ],
)
def test_durations_are_worded_for_people(lifetime, said):
    assert texts.duration(lifetime) == said


@pytest.mark.parametrize(
    ("typed", "rubles"),
    [("100 руб", 100), ("100₽", 100), ("100 р.", 100), ("100,00", 100), ("1 000,00", 1000)],
)
async def test_amounts_typed_as_people_do_make_the_same_bill(bot, tg, qiwi, typed, rubles):
    user = tg.user(5104)
    confirm = await ask_to_pay(tg, user, typed)
    assert confirm.params["text"] == texts.confirm_amount(Decimal(rubles))
    press_confirm(tg, user, confirm)
    await tg.wait_call("sendMessage")
    [bill] = await db_bills(5104)
    assert (bill.amount, bill.status) == (Decimal(rubles), Bill.Status.WAITING)


async def test_a_paid_bill_is_logged_with_the_users_telegram_id(bot, tg, qiwi):
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="INFO")
    try:
        bill_message = await open_bill(tg, tg.user(5105), "70")
        [bill] = await db_bills(5105)
        qiwi.set_status(bill.pk, "PAID")
        check = button(bill_message, texts.CHECK_BUTTON)["callback_data"]
        tg.press(tg.user(5105), tg.message_of(bill_message), check)
        await tg.wait_call("sendMessage", lambda p: "Платёж прошёл" in p["text"])
    finally:
        logger.remove(sink)
    assert f"bill {bill.pk} paid: +70.00 to user 5105, balance 70.00" in lines
