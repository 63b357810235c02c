"""A reported payment is acknowledged to Telegram only after it is credited.

The bot process (`runbot.py`) is killed with SIGKILL at the worst moment: it has taken
the `successful_payment`, its handler is stuck on a database held by another connection,
and it has gone on: in polling mode it has asked Telegram for the next batch (Telegram
forgets an update once a later offset confirms it, so the offset must not have moved
past the payment), in webhook mode it has answered other updates while the payment's
POST waits. After a restart the payment comes again and is credited once.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
from decimal import Decimal

import pytest

from backend.bot import texts
from tests.constants import PROVIDER_TOKEN
from tests.helpers import (
    ask_to_pay,
    eventually,
    manage,
    press_confirm,
    process_env,
    start_runbot,
)

WAYS = {
    "provider token": {"TELEGRAM_PAYMENTS_PROVIDER_TOKEN": PROVIDER_TOKEN},
    "stars": {"TELEGRAM_PAYMENTS_PROVIDER_TOKEN": "", "RUBLES_PER_STAR": "1"},
}


def payment_update_id(tg) -> int:
    for update in tg.updates:
        if "successful_payment" in update.get("message", {}):
            return update["update_id"]
    raise AssertionError(f"no successful_payment among {tg.updates}")


def getupdates_after(tg, update_id: int) -> list:
    """getUpdates calls made after the one that handed out `update_id`."""
    calls = [c for c in tg.calls if c.method == "getUpdates" and not c.failed]
    for i, call in enumerate(calls):
        if any(u["update_id"] == update_id for u in call.result or []):
            return calls[i + 1 :]
    return []


def bill_statuses(db_path) -> list[str]:
    with sqlite3.connect(db_path) as db:
        return [status for (status,) in db.execute("SELECT status FROM payments_bill")]


def credits(db_path) -> list[tuple[str, int]]:
    with sqlite3.connect(db_path) as db:
        return db.execute(
            "SELECT b.charge_id, l.amount FROM payments_ledgerentry l "
            "JOIN payments_bill b ON b.id = l.bill_id WHERE l.kind = 'topup'"
        ).fetchall()


def webhook_env() -> dict[str, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return {
        "BOT_MODE": "webhook",
        "WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_SECRET": "kill-test_secret",
        "WEBHOOK_LISTEN": f"127.0.0.1:{port}",
    }


async def acknowledged_after_kill(tg, mode: str, payment_id: int) -> None:
    """Wait until the bot process, stuck on the held database, has gone as far as it can
    without the credit: then check that Telegram still has the payment."""
    if mode == "polling":

        async def asked_for_more():
            return getupdates_after(tg, payment_id)

        [next_call, *_] = await eventually(asked_for_more, timeout=10)
        # The next batch was asked for, yet the payment was not confirmed.
        assert int(next_call.params["offset"]) == payment_id
    else:

        async def posted():
            return tg.webhook_deliveries(payment_id)

        [delivery] = await eventually(posted, timeout=10)
        # An ordinary update is answered at once; this one's answer waits for the credit.
        await tg.assert_no_call("sendMessage", within=1.0)
        assert delivery.status is None and payment_id in tg.webhook.in_flight


async def bot_is_up(tg, mode: str) -> None:
    await tg.wait_call("getUpdates" if mode == "polling" else "setWebhook", timeout=60)


@pytest.mark.parametrize("mode", ["polling", "webhook"])
@pytest.mark.parametrize("way", WAYS)
async def test_a_payment_killed_mid_credit_is_credited_once_after_restart(
    tg, qiwi, tmp_path, way, mode
):
    extra = webhook_env() if mode == "webhook" else {}
    env = process_env(tg, qiwi, tmp_path, PAYMENT_PROVIDERS="telegram", **WAYS[way], **extra)
    await manage("migrate", "--noinput", env=env)
    db_path = tmp_path / "bot.sqlite3"
    user = tg.user(9301)

    with (tmp_path / "console.txt").open("ab") as console:
        bot = await start_runbot(env, tmp_path, console)
        try:
            await bot_is_up(tg, mode)
            press_confirm(tg, user, await ask_to_pay(tg, user, "250"))
            invoice = await tg.wait_call("sendInvoice", timeout=10)

            async def bill_waiting():  # the bot has written down the invoice it sent
                return bill_statuses(db_path) == ["WAITING"]

            await eventually(bill_waiting, timeout=10)

            # Another connection holds the database: the credit will wait for it.
            holder = sqlite3.connect(db_path, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            tg.checkout(user, tg.message_of(invoice))
            await tg.wait_call("answerPreCheckoutQuery", timeout=10)
            payment_id = payment_update_id(tg)
            await acknowledged_after_kill(tg, mode, payment_id)
            assert credits(db_path) == []
            bot.send_signal(signal.SIGKILL)
            await bot.wait()
        finally:
            if bot.returncode is None:
                bot.kill()
                await bot.wait()
        holder.execute("ROLLBACK")
        holder.close()

        bot = await start_runbot(env, tmp_path, console)
        try:
            paid = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 9301, timeout=60)
            assert paid.params["text"] == texts.bill_paid(Decimal(250), Decimal(250))

            async def acknowledged():
                if mode == "webhook":
                    return any(d.status == 200 for d in tg.webhook_deliveries(payment_id))
                calls = [c for c in tg.calls if c.method == "getUpdates"]
                return int(calls[-1].params.get("offset", 0)) > payment_id

            await eventually(acknowledged, timeout=15)
            assert payment_id not in [u["update_id"] for u in tg.updates]
        finally:
            bot.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(bot.wait(), timeout=20) == 0

    [charge_id] = tg.payments.charges
    assert credits(db_path) == [(charge_id, 25000)]  # kopecks
    await tg.assert_no_call("sendMessage", within=0.5, predicate=lambda p: p["chat_id"] == 9301)
