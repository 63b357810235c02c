"""The customer's dialog end to end: real aiogram over HTTP against the fake Bot API,
real pyqiwip2p against the fake QIWI, a real database."""

from decimal import Decimal

from asgiref.sync import sync_to_async

from backend.bot import texts
from backend.payments.models import Bill, LedgerEntry
from backend.users.models import TelegramUser
from tests.conftest import button

GREETING = (
    "Привет, Иван\nЯ - бот для пополнения баланса.\nНажмите на кнопку, чтобы пополнить баланс"
)


@sync_to_async
def db_user(telegram_id: int) -> TelegramUser:
    return TelegramUser.objects.get(telegram_id=telegram_id)


@sync_to_async
def db_bills(telegram_id: int) -> list[Bill]:
    return list(Bill.objects.filter(user__telegram_id=telegram_id).order_by("created_at"))


@sync_to_async
def db_ledger(telegram_id: int) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(user__telegram_id=telegram_id))


async def open_bill(tg, user, amount_text="1 000"):
    """/start → «Пополнить баланс» → amount → «Подтвердить»; returns the bill message call."""
    tg.send_text(user, "/start")
    hello = await tg.wait_call("sendMessage")
    tg.press(user, tg.message_of(hello), button(hello, texts.TOP_UP_BUTTON)["callback_data"])
    ask = await tg.wait_call("sendMessage")
    assert ask.params["text"] == texts.ASK_AMOUNT
    tg.send_text(user, amount_text)
    confirm = await tg.wait_call("sendMessage")
    tg.press(user, tg.message_of(confirm), button(confirm, texts.CONFIRM_BUTTON)["callback_data"])
    return await tg.wait_call("sendMessage")


async def test_start_greets_by_name_with_top_up_button(bot, tg):
    user = tg.user(1001, first_name="Иван")
    tg.send_text(user, "/start")
    call = await tg.wait_call("sendMessage")
    assert call.params["chat_id"] == 1001
    assert call.params["text"] == GREETING
    assert button(call, "Пополнить баланс")
    stored = await db_user(1001)
    assert stored.first_name == "Иван" and stored.balance == Decimal("0.00")


async def test_user_controlled_name_is_escaped(bot, tg):
    tg.send_text(tg.user(1002, first_name="<b>&Tom</b>"), "/start")
    call = await tg.wait_call("sendMessage")
    assert call.params["text"].startswith("Привет, &lt;b&gt;&amp;Tom&lt;/b&gt;\n")
    assert call.params["parse_mode"] == "HTML"


async def test_whole_top_up_credits_balance_once(bot, tg, qiwi):
    user = tg.user(1003)
    tg.send_text(user, "/start")
    hello = await tg.wait_call("sendMessage")
    tg.press(user, tg.message_of(hello), button(hello, "Пополнить баланс")["callback_data"])
    await tg.wait_call("answerCallbackQuery")
    ask = await tg.wait_call("sendMessage")
    assert ask.params["text"] == "Введите сумму, на которую вы хотите пополнить баланс"
    assert button(ask, "Отмена")

    tg.send_text(user, "1 000")
    confirm = await tg.wait_call("sendMessage")
    assert "1 000 ₽" in confirm.params["text"]
    assert button(confirm, "Отмена")
    tg.press(user, tg.message_of(confirm), button(confirm, "Подтвердить")["callback_data"])

    bill_message = await tg.wait_call("sendMessage")
    [bill] = await db_bills(1003)
    assert bill.status == Bill.Status.WAITING and bill.amount == Decimal("1000.00")
    remote = qiwi.bills[bill.pk]
    assert remote["amount"] == {"currency": "RUB", "value": "1000.00"}
    assert button(bill_message, "Ссылка на оплату счёта")["url"] == remote["payUrl"]
    check = button(bill_message, "Прошёл ли платёж?")["callback_data"]
    # The confirmation lost its buttons: it cannot be confirmed twice.
    edit = await tg.wait_call("editMessageReplyMarkup")
    assert edit.params["message_id"] == confirm.result["message_id"]

    tg.press(user, tg.message_of(bill_message), check)
    waiting = await tg.wait_call("sendMessage")
    assert "ожидает оплаты" in waiting.params["text"]

    qiwi.set_status(bill.pk, "PAID")
    tg.press(user, tg.message_of(bill_message), check)
    paid = await tg.wait_call("sendMessage")
    assert "Платёж прошёл успешно" in paid.params["text"]
    assert "Ваш баланс: 1 000 ₽" in paid.params["text"]

    # Pressing again (and the poller running meanwhile) credits nothing more.
    tg.press(user, tg.message_of(bill_message), check)
    again = await tg.wait_call(
        "answerCallbackQuery", lambda p: p.get("text") == texts.BILL_ALREADY_PAID
    )
    assert again
    await tg.assert_no_call("sendMessage", within=0.6)
    assert (await db_user(1003)).balance == Decimal("1000.00")
    [entry] = await db_ledger(1003)
    assert entry.amount == Decimal("1000.00") and entry.bill_id == bill.pk


async def test_poller_credits_and_notifies(bot, tg, qiwi):
    user = tg.user(1004)
    bill_message = await open_bill(tg, user, "250")
    [bill] = await db_bills(1004)
    assert bill_message.params["chat_id"] == 1004
    qiwi.set_status(bill.pk, "PAID")
    note = await tg.wait_call("sendMessage", timeout=5)
    assert "Платёж прошёл успешно" in note.params["text"]
    assert "250 ₽" in note.params["text"]
    assert (await db_user(1004)).balance == Decimal("250.00")
