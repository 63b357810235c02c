"""The bot killed with SIGKILL while it credits paid bills, again and again: after the
last restart every bill is credited exactly once (QIWI's bills, and YooKassa's, whose
payments succeeded before the kills and are found by polling)."""

import asyncio
import random
import signal
import sqlite3

import pytest

from tests.constants import YOOKASSA_KEY, YOOKASSA_SHOP_ID
from tests.helpers import button, eventually, manage, open_bill, process_env, start_runbot

BILLS = {9201: "110", 9202: "220", 9203: "330", 9204: "440"}
KILLS = 3


def ledger(db_path) -> list[tuple[str, int]]:
    """The top-up rows: bill and amount in kopecks (the column's integers, as stored)."""
    with sqlite3.connect(db_path) as db:
        return db.execute(
            "SELECT bill_id, amount FROM payments_ledgerentry WHERE kind = 'topup'"
        ).fetchall()


def balances_match_ledger(db_path) -> bool:
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT u.balance, (SELECT COALESCE(SUM(l.amount), 0) FROM payments_ledgerentry l "
            "WHERE l.user_id = u.id) FROM users_telegramuser u"
        ).fetchall()
    return all(isinstance(balance, int) and balance == total for balance, total in rows)


@pytest.mark.parametrize("provider", ["qiwi", "yookassa"])
async def test_sigkill_during_crediting_loses_nothing_and_credits_nothing_twice(
    tg, qiwi, yookassa, tmp_path, provider
):
    env = process_env(tg, qiwi, tmp_path)
    fake = qiwi
    if provider == "yookassa":
        fake = yookassa
        env |= {
            "PAYMENT_PROVIDERS": "yookassa",
            "YOOKASSA_SHOP_ID": YOOKASSA_SHOP_ID,
            "YOOKASSA_SECRET_KEY": YOOKASSA_KEY,
            "YOOKASSA_API_URL": yookassa.api_url,
        }
    await manage("migrate", "--noinput", env=env)
    db_path = tmp_path / "bot.sqlite3"
    random.seed(20261126)

    with (tmp_path / "console.txt").open("ab") as console:
        bot = await start_runbot(env, tmp_path, console)
        await tg.wait_call("getUpdates", timeout=60)
        bill_ids = []
        for telegram_id, amount in BILLS.items():
            message = await open_bill(tg, tg.user(telegram_id), amount)
            bill_ids.append(button(message, "Прошёл ли платёж?")["callback_data"].split(":")[1])
        for bill_id in bill_ids:
            if provider == "qiwi":
                qiwi.set_status(bill_id, "PAID")
            else:
                yookassa.set_status(yookassa.payment_of(bill_id)["id"], "succeeded")

        for _ in range(KILLS):
            # Kill somewhere in the poll round: before, between or during the credits.
            await fake.wait_request("GET", timeout=30)
            await asyncio.sleep(random.uniform(0, 0.05))
            bot.send_signal(signal.SIGKILL)
            await bot.wait()
            bot = await start_runbot(env, tmp_path, console)

        async def all_credited():
            return len(ledger(db_path)) >= len(BILLS)

        try:
            await eventually(all_credited, timeout=60)
            await asyncio.sleep(1.5)  # one more poll round: it must credit nothing more
        finally:
            bot.send_signal(signal.SIGTERM)
            await asyncio.wait_for(bot.wait(), timeout=15)

    rows = ledger(db_path)
    assert sorted(bill for bill, _ in rows) == sorted(bill_ids)  # each once
    assert sorted(amount for _, amount in rows) == [11000, 22000, 33000, 44000]
    assert balances_match_ledger(db_path)
