"""Shared steps of the end-to-end tests."""

import asyncio

from asgiref.sync import sync_to_async

from backend.bot import texts
from backend.payments.models import Bill, LedgerEntry
from backend.users.models import TelegramUser
from tests.fakes._server import now_iso


def buttons(call) -> list[dict]:
    """The inline buttons of a sent message, row after row."""
    markup = call.params.get("reply_markup") or {}
    return [b for row in markup.get("inline_keyboard", []) for b in row]


def button(call, text: str) -> dict:
    for b in buttons(call):
        if b["text"] == text:
            return b
    raise AssertionError(f"no button {text!r} in {buttons(call)}")


@sync_to_async
def db_user(telegram_id: int) -> TelegramUser:
    return TelegramUser.objects.get(telegram_id=telegram_id)


@sync_to_async
def db_bills(telegram_id: int) -> list[Bill]:
    return list(Bill.objects.filter(user__telegram_id=telegram_id).order_by("created_at"))


@sync_to_async
def db_ledger(telegram_id: int) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(user__telegram_id=telegram_id))


async def open_bill(tg, user: dict, amount_text: str = "1 000"):
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


def qiwi_answer(qiwi, bill_id: str, status: str) -> dict:
    """The fake's bill as QIWI would send it, with another status: for one-off answers."""
    bill = dict(qiwi.bills[bill_id])
    bill["status"] = {"value": status, "changedDateTime": now_iso()}
    return bill


async def eventually(check, timeout: float = 5.0):
    """Awaits the async `check` until it returns something true; fails after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := await check()):
        if loop.time() > deadline:
            raise AssertionError(f"{check.__name__} still false after {timeout}s")
        await asyncio.sleep(0.05)
    return result
