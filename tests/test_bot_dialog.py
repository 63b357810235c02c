"""The customer's dialog end to end: real aiogram over HTTP against the fake Bot API,
real pyqiwip2p against the fake QIWI, a real database."""

from decimal import Decimal

from asgiref.sync import sync_to_async

from backend.bot import texts
from backend.payments.models import Bill, LedgerEntry
from backend.users.models import TelegramUser
from tests.constants import ADMIN_ID
from tests.helpers import block, button, db_bills, db_ledger, db_user, open_bill

GREETING = (
    "Привет, Иван\nЯ - бот для пополнения баланса.\nНажмите на кнопку, чтобы пополнить баланс"
)


async def test_start_greets_by_name_with_top_up_button(bot, tg):
    user = tg.user(1001, first_name="Иван")
    tg.send_text(user, "/start")
    call = await tg.wait_call("sendMessage")
    assert call.params["chat_id"] == 1001
    assert call.params["text"] == GREETING
    assert button(call, "Пополнить баланс")
    stored = await db_user(1001)
    assert stored.first_name == "Иван" and stored.balance == Decimal("0.00")


async def test_a_known_user_is_written_again_only_when_something_changed(bot, tg):
    user = tg.user(1019, first_name="Иван")
    tg.send_text(user, "/start")
    await tg.wait_call("sendMessage")
    first = await db_user(1019)

    tg.send_text(user, "/start")
    await tg.wait_call("sendMessage")
    assert (await db_user(1019)).last_seen_at == first.last_seen_at  # no write

    renamed = tg.user(1019, first_name="Пётр")
    tg.send_text(renamed, "/start")
    greeting = await tg.wait_call("sendMessage")
    assert greeting.params["text"].startswith("Привет, Пётр\n")
    stored = await db_user(1019)
    assert stored.first_name == "Пётр" and stored.last_seen_at > first.last_seen_at


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


BAD_AMOUNTS = ["abc", "10.5", "-5", "0", "1e9", "100001", "１２３", "1_000", ""]


async def test_bad_amounts_are_explained_and_the_bot_keeps_waiting(bot, tg):
    user = tg.user(1010)
    tg.send_text(user, "/start")
    hello = await tg.wait_call("sendMessage")
    tg.press(user, tg.message_of(hello), button(hello, texts.TOP_UP_BUTTON)["callback_data"])
    await tg.wait_call("sendMessage")
    for text in BAD_AMOUNTS:
        tg.send_text(user, text or " ")
        reply = await tg.wait_call("sendMessage")
        assert reply.params["text"].startswith("Сумма должна быть целым числом рублей"), text
        assert "от 1 ₽ до 100 000 ₽" in reply.params["text"]
        assert button(reply, texts.CANCEL_BUTTON)
    tg.send_sticker(user)
    reply = await tg.wait_call("sendMessage")
    assert reply.params["text"].startswith("Сумма должна быть целым числом рублей")
    tg.send_text(user, "500")
    confirm = await tg.wait_call("sendMessage")
    assert confirm.params["text"] == "Пополнить баланс на 500 ₽?"
    assert await db_bills(1010) == []


async def test_cancel_at_each_step_returns_to_the_greeting(bot, tg, qiwi):
    user = tg.user(1011, first_name="Иван")
    tg.send_text(user, "/start")
    hello = await tg.wait_call("sendMessage")
    tg.press(user, tg.message_of(hello), button(hello, texts.TOP_UP_BUTTON)["callback_data"])
    ask = await tg.wait_call("sendMessage")
    tg.press(user, tg.message_of(ask), button(ask, texts.CANCEL_BUTTON)["callback_data"])
    again = await tg.wait_call("sendMessage")
    assert again.params["text"] == GREETING
    # After a cancel the amount prompt is gone: a number is not taken as an amount.
    tg.send_text(user, "500")
    assert (await tg.wait_call("sendMessage")).params["text"] == GREETING

    tg.press(user, tg.message_of(again), button(again, texts.TOP_UP_BUTTON)["callback_data"])
    await tg.wait_call("sendMessage")
    tg.send_text(user, "500")
    confirm = await tg.wait_call("sendMessage")
    tg.press(user, tg.message_of(confirm), button(confirm, texts.CANCEL_BUTTON)["callback_data"])
    assert (await tg.wait_call("sendMessage")).params["text"] == GREETING
    assert await db_bills(1011) == []
    assert qiwi.bills == {}


async def test_start_during_the_amount_prompt_restarts(bot, tg):
    user = tg.user(1012, first_name="Иван")
    tg.send_text(user, "/start")
    hello = await tg.wait_call("sendMessage")
    tg.press(user, tg.message_of(hello), button(hello, texts.TOP_UP_BUTTON)["callback_data"])
    await tg.wait_call("sendMessage")
    tg.send_text(user, "/start")
    assert (await tg.wait_call("sendMessage")).params["text"] == GREETING
    # The prompt is gone: a number now is not an amount.
    tg.send_text(user, "500")
    assert (await tg.wait_call("sendMessage")).params["text"] == GREETING


async def test_waiting_rejected_expired_and_unknown_answers_of_the_check_button(bot, tg, qiwi):
    from tests.helpers import qiwi_answer

    user = tg.user(1013)
    first = await open_bill(tg, user, "100")
    [bill] = await db_bills(1013)
    check = button(first, texts.CHECK_BUTTON)["callback_data"]

    qiwi.fail_next("GET", status=200, json_body=qiwi_answer(qiwi, bill.pk, "HOLD"))
    tg.press(user, tg.message_of(first), check)
    unknown = await tg.wait_call("sendMessage")
    assert "Статус счёта неизвестен (HOLD)" in unknown.params["text"]
    assert (await db_bills(1013))[0].status == Bill.Status.WAITING

    qiwi.set_status(bill.pk, "REJECTED")
    tg.press(user, tg.message_of(first), check)
    rejected = await tg.wait_call("sendMessage")
    assert rejected.params["text"] == "Счёт отклонён, платёж не прошёл."
    assert button(rejected, texts.TOP_UP_BUTTON)  # the dialog starts over

    second = await open_bill(tg, user, "200")
    bill2 = (await db_bills(1013))[1]
    qiwi.set_status(bill2.pk, "EXPIRED")
    tg.press(user, tg.message_of(second), button(second, texts.CHECK_BUTTON)["callback_data"])
    expired = await tg.wait_call("sendMessage")
    assert expired.params["text"] == "Срок оплаты счёта истёк, платёж не прошёл."
    statuses = [b.status for b in await db_bills(1013)]
    assert statuses == [Bill.Status.REJECTED, Bill.Status.EXPIRED]
    assert (await db_user(1013)).balance == Decimal("0.00")


async def test_someone_elses_or_forged_bill_button_reveals_and_credits_nothing(bot, tg, qiwi):
    owner, thief = tg.user(1014), tg.user(1015)
    message = await open_bill(tg, owner, "300")
    [bill] = await db_bills(1014)
    qiwi.set_status(bill.pk, "PAID")
    for data in (f"check:{bill.pk}", "check:nonexistent", "garbage", "confirm:abc"):
        tg.press(thief, tg.message_of(message), data)
        answer = await tg.wait_call("answerCallbackQuery")
        assert answer.params.get("text") in (None, texts.BILL_NOT_FOUND)
    # An amount outside the limits cannot be confirmed through a forged button.
    tg.press(thief, tg.message_of(message), "confirm:100000000")
    await tg.wait_call("answerCallbackQuery")
    await tg.assert_no_call("sendMessage", within=0.5)
    assert await db_bills(1015) == []
    assert (await db_bills(1014))[0].status == Bill.Status.WAITING


async def test_admin_command_only_for_admins(bot, tg):
    tg.send_text(tg.user(ADMIN_ID), "/admin")
    link = await tg.wait_call("sendMessage")
    assert link.params["chat_id"] == ADMIN_ID
    assert "https://admin.example.com/admin/" in link.params["text"]
    tg.send_text(tg.user(1016), "/admin")
    await tg.assert_no_call("sendMessage", within=0.6)


async def test_blocked_user_gets_no_reaction_at_all(bot, tg):
    user = tg.user(1017)
    tg.send_text(user, "/start")
    hello = await tg.wait_call("sendMessage")
    await block(1017)
    tg.send_text(user, "/start")
    tg.press(user, tg.message_of(hello), button(hello, texts.TOP_UP_BUTTON)["callback_data"])
    tg.send_text(user, "/admin")
    await tg.assert_no_call("sendMessage", within=0.8)
    await tg.assert_no_call("answerCallbackQuery", within=0.1)
    # The updates were taken from Telegram (not left to pile up), just not answered.
    assert not tg.updates
    assert await sync_to_async(LedgerEntry.objects.count)() == 0
    assert (await db_user(1017)).is_blocked
    assert await sync_to_async(TelegramUser.objects.filter(telegram_id=1017).count)() == 1


async def test_an_unexpected_failure_in_a_handler_is_reported_not_swallowed(bot, tg):
    tg.fail_next("sendMessage", status=400, description="Bad Request: chat not found")
    tg.send_text(tg.user(1018), "/start")
    support = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 1018)
    assert support.params["text"] == texts.SUPPORT
    report = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == ADMIN_ID)
    assert "chat not found" in report.params["text"]
