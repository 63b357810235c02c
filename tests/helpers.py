"""Shared steps of the end-to-end tests, the bot that the fixtures of tests/conftest.py
start in the test's event loop, and what the end-of-session secrets check reads."""

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from asgiref.sync import sync_to_async
from django.test import override_settings

from backend.bot import texts
from backend.bot.client import build_bot
from backend.bot.config import BotConfig, WebhookConfig
from backend.bot.dispatcher import build_dispatcher
from backend.bot.runner import run_bot
from backend.bot.shared_state import shared_state
from backend.payments.models import Bill, LedgerEntry
from backend.payments.providers import providers_from_settings
from backend.users.models import TelegramUser
from tests.constants import QIWI_KEY, TOKEN, YOOKASSA_KEY, YOOKASSA_SHOP_ID
from tests.fakes import FakeQiwi, FakeTelegram, FakeYooKassa
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def eventually(check, timeout: float = 5.0):
    """Awaits the async `check` until it returns something true; fails after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := await check()):
        if loop.time() > deadline:
            raise AssertionError(f"{check.__name__} still false after {timeout}s")
        await asyncio.sleep(0.05)
    return result


# --- the bot in the test's event loop (the `make_bot` fixture) -----------------------


class BotProcess:
    """The bot as `runbot` runs it (real aiogram, real pyqiwip2p), in this event loop."""

    def __init__(
        self,
        tg: FakeTelegram,
        qiwi: FakeQiwi,
        config: BotConfig,
        qiwi_timeout: float = 2,
        payments: tuple[str, ...] = ("qiwi",),
        telegram_payments: dict | None = None,
        redis_url: str = "",
        redis_prefix: str = "topup-test",
        yookassa: FakeYooKassa | None = None,
        provider_settings: dict | None = None,
    ) -> None:
        self.tg, self.qiwi, self.config = tg, qiwi, config
        self.yookassa = yookassa
        # More settings the registry reads, e.g. {"YOOKASSA_RECEIPTS": True}
        self.provider_settings = provider_settings or {}
        self.redis_url, self.redis_prefix = redis_url, redis_prefix
        self.qiwi_timeout = qiwi_timeout
        self.payments = payments
        # TelegramPaymentsProvider's settings: provider_token, currency, rubles_per_star
        self.telegram_payments = {
            "provider_token": "",
            "currency": "RUB",
            "rubles_per_star": Decimal(1),
            **(telegram_payments or {}),
        }
        self._task: asyncio.Task | None = None
        self._stop: asyncio.Event | None = None

    async def start(self, *, polling: bool = True, webhook: WebhookConfig | None = None) -> None:
        """Start; with `polling` wait until it polls (a second bot process waits instead),
        with `webhook` until it has set its webhook."""
        bot = build_bot(token=TOKEN, api_server=self.tg.base_url)
        with override_settings(  # the registry makes the providers, as runbot has it do
            PAYMENT_PROVIDERS=list(self.payments),
            QIWI_SECRET_KEY=QIWI_KEY,
            QIWI_API_URL=self.qiwi.base_url,
            QIWI_TIMEOUT_SECONDS=self.qiwi_timeout,
            TELEGRAM_PAYMENTS_PROVIDER_TOKEN=self.telegram_payments["provider_token"],
            TELEGRAM_PAYMENTS_CURRENCY=self.telegram_payments["currency"],
            RUBLES_PER_STAR=self.telegram_payments["rubles_per_star"],
            YOOKASSA_SHOP_ID=YOOKASSA_SHOP_ID,
            YOOKASSA_SECRET_KEY=YOOKASSA_KEY,
            YOOKASSA_API_URL=self.yookassa.api_url if self.yookassa else "http://127.0.0.1:9",
            YOOKASSA_RETURN_URL="",  # the bot's t.me link, from getMe
            YOOKASSA_TIMEOUT_SECONDS=self.qiwi_timeout,
            **self.provider_settings,
        ):
            providers = providers_from_settings(bot)
        self.shared = shared_state(
            config=self.config, redis_url=self.redis_url, prefix=self.redis_prefix
        )
        self.dp = build_dispatcher(providers=providers, config=self.config, shared=self.shared)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(
            run_bot(
                bot=bot,
                dispatcher=self.dp,
                handle_signals=False,
                stop=self._stop,
                webhook=webhook,
            )
        )
        if webhook is not None:
            await self.tg.wait_call("setWebhook")
        elif polling:
            await self.tg.wait_call("getUpdates")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stop.set()  # also while it waits for the lock or for Telegram
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self._task, timeout=10)
        self._task = None


# --- the bot as a real process -------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
# Production-shaped: DEBUG off needs a real-looking secret key.
TEST_SECRET_KEY = "test-only-5cT9xQ2mLw8vRz4kPj7nYb3hFd6gAs1eUo0iKq9tWc2rXv5"


def process_env(tg, qiwi, folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a `runbot.py` process against the fakes, its data in `folder`."""
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


# --- what the run wrote (conftest's `no_secret_written`) -----------------------------

SKIP_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".ruff_cache", ".pytest_cache"}


def written_files(folder: Path, tracked: frozenset[Path] = frozenset()):
    """Files in `folder` except our own sources (tests/constants.py names the test token)."""
    for path in folder.rglob("*"):
        skipped = SKIP_DIRS.intersection(path.relative_to(folder).parts)
        if path.is_file() and path not in tracked and not skipped:
            yield path


def tracked_files() -> frozenset[Path]:
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return frozenset(ROOT / name for name in listing.split("\0") if name)
