"""`python runbot.py` as a real process: settings from the environment, the whole top-up
against the fake servers, a clean stop on SIGTERM, and no secret in any file it wrote."""

import asyncio
import signal
import sys

from tests.constants import QIWI_KEY, TOKEN
from tests.helpers import (
    ROOT,
    ask_to_pay,
    button,
    manage,
    open_bill,
    press_confirm,
    process_env,
    start_runbot,
)


async def test_runbot_tops_up_and_stops_cleanly_on_sigterm(tg, qiwi, tmp_path):
    env = process_env(tg, qiwi, tmp_path, LOG_LEVEL="DEBUG")
    await manage("migrate", "--noinput", env=env)
    console = tmp_path / "console.txt"  # a file, not a pipe nobody reads while it runs
    with console.open("wb") as stderr_file:
        bot = await start_runbot(env, tmp_path, stderr_file)
    try:
        await tg.wait_call("getUpdates", timeout=60)  # importing aiogram takes seconds
        user = tg.user(5001)
        bill_message = await open_bill(tg, user, "100")
        bill_id = button(bill_message, "Прошёл ли платёж?")["callback_data"].split(":", 1)[1]
        qiwi.set_status(bill_id, "PAID")
        note = await tg.wait_call("sendMessage", timeout=10)
        assert "Ваш баланс: 100 ₽" in note.params["text"]
    finally:
        bot.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bot.wait(), timeout=15)
    assert bot.returncode == 0
    assert "bot stopped" in console.read_text()

    export = await asyncio.create_subprocess_exec(
        sys.executable, "manage.py", "export_users", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await export.communicate()
    assert ';"100,00";' in out.decode().splitlines()[1]

    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert (tmp_path / "logs" / "bot.log") in written
    assert not [p for p in written if p.name.startswith("QiwiCrash")]
    for path in [*written, *ROOT.glob("QiwiCrash*")]:
        data = path.read_bytes()
        assert TOKEN.encode() not in data and QIWI_KEY.encode() not in data, path


async def test_runbot_takes_stars_alone_without_a_qiwi_key(tg, qiwi, tmp_path):
    """The settings' route: PAYMENT_PROVIDERS=telegram needs no QIWI key; RUBLES_PER_STAR
    prices the invoice; a Stars payment is credited."""
    env = process_env(
        tg, qiwi, tmp_path, PAYMENT_PROVIDERS="telegram", QIWI_SECRET_KEY="", RUBLES_PER_STAR="2.5"
    )
    await manage("migrate", "--noinput", env=env)
    with (tmp_path / "console.txt").open("wb") as stderr_file:
        bot = await start_runbot(env, tmp_path, stderr_file)
    try:
        await tg.wait_call("getUpdates", timeout=60)
        user = tg.user(5002)
        confirmation = await ask_to_pay(tg, user, "100")
        assert "К оплате: 40 ⭐" in confirmation.params["text"]
        press_confirm(tg, user, confirmation)
        invoice = await tg.wait_call("sendInvoice")
        assert (invoice.params["currency"], invoice.params["prices"][0]["amount"]) == ("XTR", 40)
        tg.checkout(user, tg.message_of(invoice))
        note = await tg.wait_call("sendMessage", timeout=10)
        assert "Ваш баланс: 100 ₽" in note.params["text"]
    finally:
        bot.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bot.wait(), timeout=15)
    assert bot.returncode == 0
    assert not qiwi.requests
