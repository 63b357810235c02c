"""What users see of their own money (/balance, «Мой баланс») and the bot's menu
(setMyCommands): real aiogram against the fake Bot API, a real database."""

from decimal import Decimal

from asgiref.sync import sync_to_async
from django.utils import timezone

from backend.bot import texts
from backend.payments import services
from backend.payments.models import Bill
from tests.constants import ADMIN_ID
from tests.helpers import block, button, db_bills, db_user, open_bill


@sync_to_async
def adjust(telegram_id: int, amount: str, reason: str = "тест") -> None:
    user = services.TelegramUser.objects.get(telegram_id=telegram_id)
    services.balance_adjust(user=user, amount=Decimal(amount), reason=reason)


async def pay(tg, user: dict, qiwi, amount: str) -> None:
    """A top-up through the dialog, paid at QIWI and credited by the check button."""
    message = await open_bill(tg, user, amount)
    [bill] = [b for b in await db_bills(user["id"]) if b.status == Bill.Status.WAITING]
    qiwi.set_status(bill.pk, "PAID")
    tg.press(user, tg.message_of(message), button(message, texts.CHECK_BUTTON)["callback_data"])


async def greet(tg, user: dict):
    tg.send_text(user, "/start")
    return await tg.wait_call("sendMessage", lambda p: p["chat_id"] == user["id"])


async def test_balance_shows_the_balance_and_the_last_five_changes_newest_first(bot, tg, qiwi):
    user = tg.user(5101, first_name="Анна")
    await pay(tg, user, qiwi, "150")
    await tg.wait_call("sendMessage", lambda p: "Платёж прошёл успешно" in p["text"])
    for amount in ("1000.50", "-50", "7", "-0.50", "3", "2"):
        await adjust(5101, amount, reason="секретная причина")

    tg.send_text(user, "/balance")
    reply = await tg.wait_call("sendMessage")
    text = reply.params["text"]
    lines = text.split("\n")
    assert lines[0] == "Ваш баланс: 1 112 ₽"  # 150 + 1000,50 − 50 + 7 − 0,50 + 3 + 2
    assert lines[1:3] == ["", "Последние операции:"]
    rows = lines[3:]
    assert [r.split(" · ")[1] for r in rows] == [
        "Корректировка +2 ₽",
        "Корректировка +3 ₽",
        "Корректировка −0,50 ₽",
        "Корректировка +7 ₽",
        "Корректировка −50 ₽",
    ]  # the top-up of 150 is the sixth change: not shown
    today = timezone.localtime().strftime("%d.%m.%Y")
    assert all(r.startswith(today + " ") for r in rows)
    assert "секретная причина" not in text  # an admin's reason is not the user's business
    assert button(reply, texts.TOP_UP_BUTTON)
    assert (await db_user(5101)).balance == Decimal("1112.00")


async def test_the_greetings_button_shows_the_same_and_a_top_up_is_listed(bot, tg, qiwi):
    user = tg.user(5102)
    hello = await greet(tg, user)
    tg.press(user, tg.message_of(hello), button(hello, texts.BALANCE_BUTTON)["callback_data"])
    await tg.wait_call("answerCallbackQuery")
    empty = await tg.wait_call("sendMessage")
    assert empty.params["text"] == "Ваш баланс: 0 ₽\n\nОпераций пока не было."

    await pay(tg, user, qiwi, "250")
    await tg.wait_call("sendMessage", lambda p: "Платёж прошёл успешно" in p["text"])
    tg.press(user, tg.message_of(hello), button(hello, texts.BALANCE_BUTTON)["callback_data"])
    await tg.wait_call("answerCallbackQuery")
    shown = await tg.wait_call("sendMessage")
    first, *_, last = shown.params["text"].split("\n")
    assert first == "Ваш баланс: 250 ₽"
    assert last.endswith(" · Пополнение +250 ₽")


async def test_balance_works_in_the_middle_of_the_dialog_and_keeps_it(bot, tg, qiwi):
    user = tg.user(5103)
    hello = await greet(tg, user)
    tg.press(user, tg.message_of(hello), button(hello, texts.TOP_UP_BUTTON)["callback_data"])
    ask = await tg.wait_call("sendMessage")
    assert ask.params["text"] == texts.ASK_AMOUNT
    tg.send_text(user, "/balance")
    shown = await tg.wait_call("sendMessage")
    assert shown.params["text"].startswith("Ваш баланс: 0 ₽")
    tg.send_text(user, "300")  # the amount prompt still waits
    confirm = await tg.wait_call("sendMessage")
    assert confirm.params["text"] == texts.confirm_amount(Decimal(300))


async def test_a_blocked_user_gets_nothing(bot, tg):
    user = tg.user(5104)
    hello = await greet(tg, user)
    await block(5104)
    tg.send_text(user, "/balance")
    tg.press(user, tg.message_of(hello), button(hello, texts.BALANCE_BUTTON)["callback_data"])
    await tg.assert_no_call("sendMessage", within=0.6)


async def test_the_menu_is_set_for_everyone_and_with_admin_for_admins(bot, tg):
    everyone = await tg.wait_call("setMyCommands", lambda p: "scope" not in p)
    assert everyone.params["commands"] == [
        {"command": "start", "description": texts.COMMANDS["start"]},
        {"command": "balance", "description": texts.COMMANDS["balance"]},
    ]
    admins = await tg.wait_call("setMyCommands", lambda p: "scope" in p)
    assert admins.params["scope"] == {"type": "chat", "chat_id": ADMIN_ID}
    assert [c["command"] for c in admins.params["commands"]] == ["start", "balance", "admin"]


async def test_a_menu_telegram_fails_to_set_is_retried(make_bot, tg):
    tg.fail_next("setMyCommands", status=502)
    await make_bot()
    everyone = await tg.wait_call("setMyCommands", lambda p: "scope" not in p)
    assert everyone.params["commands"][0]["command"] == "start"
    assert await tg.wait_call("setMyCommands", lambda p: "scope" in p)
    failed = [c for c in tg.calls if c.method == "setMyCommands" and c.failed]
    assert len(failed) == 1 and "scope" not in failed[0].params


async def test_a_menu_telegram_refuses_is_not_retried_and_the_next_is_still_set(make_bot, tg):
    """Telegram's 400 (e.g. «chat not found» for an admin who never wrote to the bot) is
    an answer: retrying cannot change it."""
    tg.fail_next("setMyCommands", status=400, description="Bad Request: chat not found")
    await make_bot()
    admins = await tg.wait_call("setMyCommands", lambda p: "scope" in p)
    assert admins.params["scope"]["chat_id"] == ADMIN_ID
    await tg.assert_no_call("setMyCommands", within=1.5)
    failed = [c for c in tg.calls if c.method == "setMyCommands" and c.failed]
    assert len(failed) == 1 and "scope" not in failed[0].params
