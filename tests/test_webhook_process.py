"""`runbot.py` in webhook mode as a real process: its settings checked to one line,
BOT_WORKERS processes on one port (SO_REUSEPORT) sharing dialogs through Redis, and a
SIGTERM that stops every one of them and frees the port."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from backend.bot import texts
from tests.helpers import (
    ROOT,
    button,
    eventually,
    free_port,
    manage,
    process_env,
    start_runbot,
)

REDIS_URL = "redis://127.0.0.1:6379/15"


def webhook_env(port: int, **extra: str) -> dict[str, str]:
    return {
        "BOT_MODE": "webhook",
        "WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_SECRET": "workers_SECRET-1",
        "WEBHOOK_LISTEN": f"127.0.0.1:{port}",
        **extra,
    }


@pytest.mark.parametrize(
    ("settings", "line"),
    [
        ({"BOT_MODE": "hook"}, "BOT_MODE must be polling or webhook"),
        ({"WEBHOOK_BASE_URL": ""}, "WEBHOOK_BASE_URL is not set"),
        ({"WEBHOOK_BASE_URL": "http://bot.example.com"}, "WEBHOOK_BASE_URL must be an https://"),
        ({"WEBHOOK_SECRET": ""}, "WEBHOOK_SECRET is not set"),
        ({"WEBHOOK_SECRET": "has space"}, "WEBHOOK_SECRET must be 1-256 of"),
        ({"WEBHOOK_SECRET": "x" * 257}, "WEBHOOK_SECRET must be 1-256 of"),
        ({"WEBHOOK_LISTEN": "8081"}, "WEBHOOK_LISTEN must be host:port"),
        ({"WEBHOOK_MAX_CONNECTIONS": "0"}, "WEBHOOK_MAX_CONNECTIONS must be 1-100"),
        ({"BOT_WORKERS": "2", "REDIS_URL": ""}, "REDIS_URL is not set"),
    ],
)
def test_a_wrong_webhook_setting_stops_the_start_with_one_line(tmp_path, settings, line):
    env = {
        **process_env_plain(tmp_path),
        **webhook_env(free_port()),
        **settings,
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "runbot.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    [said] = result.stderr.strip().splitlines()
    assert said.startswith(f"CommandError: {line}")
    if len(env["WEBHOOK_SECRET"]) > 3:
        assert env["WEBHOOK_SECRET"] not in said  # a secret is never printed


def process_env_plain(folder: Path) -> dict[str, str]:
    """A bot's environment that never reaches Telegram: the checks come first."""
    import os

    from tests.constants import QIWI_KEY, TOKEN
    from tests.helpers import TEST_SECRET_KEY

    return {
        **os.environ,
        "DEBUG": "false",
        "BACKEND_SECRET_KEY": TEST_SECRET_KEY,
        "DATABASE_URL": f"sqlite:///{folder}/bot.sqlite3",
        "TELEGRAM_API_TOKEN": TOKEN,
        "TELEGRAM_API_SERVER": "http://127.0.0.1:1",
        "QIWI_SECRET_KEY": QIWI_KEY,
        "LOG_DIR": str(folder / "logs"),
    }


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def test_two_workers_share_the_port_and_the_dialogs_and_stop_together(tg, qiwi, tmp_path):
    port = free_port()
    env = process_env(tg, qiwi, tmp_path, **webhook_env(port, BOT_WORKERS="2", REDIS_URL=REDIS_URL))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["TMPDIR"] = str(tmp_path / "tmp")  # where runbot makes the workers' metrics folder
    (tmp_path / "tmp").mkdir()
    await manage("migrate", "--noinput", env=env)
    with (tmp_path / "console.txt").open("ab") as console:
        bot = await start_runbot(env, tmp_path, console)
        try:
            await tg.wait_call("setWebhook", timeout=60)
            await tg.wait_call("setWebhook", timeout=60)  # each worker sets it
            workers = children(bot.pid)
            assert len(workers) == 2

            user = tg.user(9611)
            tg.send_text(user, "/start")
            hello = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 9611)
            data = button(hello, texts.TOP_UP_BUTTON)["callback_data"]
            tg.press(user, tg.message_of(hello), data)
            ask = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 9611)
            assert ask.params["text"] == texts.ASK_AMOUNT
            tg.send_text(user, "300")  # whichever worker takes it knows the dialog
            confirm = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 9611)
            assert button(confirm, texts.CONFIRM_BUTTON)

            # /metrics adds up both workers' counts, whichever of them answers.
            [metrics_dir] = (tmp_path / "tmp").iterdir()
            counted = (
                'topup_updates_total{type="message"} 2.0',
                'topup_updates_total{type="callback_query"} 1.0',
            )
            async with aiohttp.ClientSession() as http:

                async def scrape() -> str:
                    async with http.get(
                        f"http://127.0.0.1:{port}/metrics", headers={"Connection": "close"}
                    ) as response:
                        assert response.status == 200
                        return await response.text()

                async def last_update_counted() -> bool:
                    # An update is counted when its handler returns, just after the
                    # reply the test saw went out.
                    text = await scrape()
                    return all(line in text for line in counted)

                await eventually(last_update_counted)
                for _ in range(6):  # new connections: the kernel spreads them
                    text = await scrape()
                    assert all(line in text for line in counted), text
        finally:
            bot.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(bot.wait(), timeout=30) == 0

    async def all_gone():
        return not any(alive(pid) for pid in workers)

    await eventually(all_gone, timeout=10)
    assert not metrics_dir.exists()  # runbot's own folder goes with the workers
    # The port is free for the next start (which, as servers do, binds past TIME_WAIT).
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()
