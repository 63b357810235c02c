"""Shared steps of the end-to-end tests."""

import asyncio
import os
import sys
from pathlib import Path

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
def block(telegram_id: int) -> None:
    """Block a user as the admin does."""
    from backend.users.services import user_block

    user_block(telegram_id=telegram_id)


@sync_to_async
def db_user(telegram_id: int) -> TelegramUser:
    return TelegramUser.objects.get(telegram_id=telegram_id)


@sync_to_async
def db_bills(telegram_id: int) -> list[Bill]:
    return list(Bill.objects.filter(user__telegram_id=telegram_id).order_by("created_at"))


@sync_to_async
def db_ledger(telegram_id: int) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(user__telegram_id=telegram_id))


async def ask_to_pay(tg, user: dict, amount_text: str):
    """/start → «Пополнить баланс» → amount; returns the confirmation's sendMessage call."""
    tg.send_text(user, "/start")
    hello = await tg.wait_call("sendMessage")
    tg.press(user, tg.message_of(hello), button(hello, texts.TOP_UP_BUTTON)["callback_data"])
    ask = await tg.wait_call("sendMessage")
    assert ask.params["text"] == texts.ASK_AMOUNT
    tg.send_text(user, amount_text)
    return await tg.wait_call("sendMessage")


def press_confirm(tg, user: dict, confirmation) -> None:
    """Press «Подтвердить» on the confirmation message."""
    data = button(confirmation, texts.CONFIRM_BUTTON)["callback_data"]
    tg.press(user, tg.message_of(confirmation), data)


async def open_bill(tg, user: dict, amount_text: str = "1 000"):
    """/start → «Пополнить баланс» → amount → «Подтвердить»; returns the bill message call."""
    press_confirm(tg, user, await ask_to_pay(tg, user, amount_text))
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


# --- the bot as a real process -------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
# Production-shaped: DEBUG off needs a real-looking secret key.
TEST_SECRET_KEY = "test-only-5cT9xQ2mLw8vRz4kPj7nYb3hFd6gAs1eUo0iKq9tWc2rXv5"


def process_env(tg, qiwi, folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a `runbot.py` process against the fakes, its data in `folder`."""
    from tests.conftest import QIWI_KEY, TOKEN

    return {
        **os.environ,
        "DEBUG": "false",
        "BACKEND_SECRET_KEY": TEST_SECRET_KEY,
        "DATABASE_URL": f"sqlite:///{folder}/bot.sqlite3",
        "TELEGRAM_API_TOKEN": TOKEN,
        "TELEGRAM_API_SERVER": tg.base_url,
        "QIWI_SECRET_KEY": QIWI_KEY,
        "QIWI_API_URL": qiwi.base_url,
        "BILL_POLL_INTERVAL_SECONDS": "1",
        "LOG_DIR": str(folder / "logs"),
        **extra,
    }


async def manage(*args: str, env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "manage.py", *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL
    )
    assert await proc.wait() == 0, args


async def start_runbot(env: dict[str, str], folder: Path, console) -> asyncio.subprocess.Process:
    """`python runbot.py` with its working directory in `folder` (where a library would
    drop crash files) and its stderr into the open file `console`."""
    return await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "runbot.py"), cwd=folder, env=env, stderr=console
    )
