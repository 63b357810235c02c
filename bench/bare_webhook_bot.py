"""A bare aiogram 3 webhook bot, the reference for bench/webhook.py: no Django, no
database, no Redis.

aiohttp with aiogram's SimpleRequestHandler (it checks the secret header, answers 200 at
once and handles the update in a task), and bench/bare_bot.py's /start handler (the
product's greeting shape: HTML, the sender's first name, one inline button). Reads the
product's variables from the environment: TELEGRAM_API_TOKEN, TELEGRAM_API_SERVER,
WEBHOOK_BASE_URL, WEBHOOK_PATH, WEBHOOK_SECRET and WEBHOOK_LISTEN; calls setWebhook once
it listens, and serves until SIGINT/SIGTERM.

    python bench/bare_webhook_bot.py      (or python -m bench.bare_webhook_bot)
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.filters import CommandStart
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

if __package__ in (None, ""):  # run as a file: the project root, for `bench.bare_bot`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bare_bot import start


async def main() -> None:
    server = os.environ.get("TELEGRAM_API_SERVER") or "https://api.telegram.org"
    session = AiohttpSession(api=TelegramAPIServer.from_base(server))
    bot = Bot(
        os.environ["TELEGRAM_API_TOKEN"],
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )
    path = os.environ.get("WEBHOOK_PATH") or "/telegram/webhook"
    secret = os.environ["WEBHOOK_SECRET"]
    host, _, port = (os.environ.get("WEBHOOK_LISTEN") or "127.0.0.1:8081").rpartition(":")
    url = os.environ["WEBHOOK_BASE_URL"].rstrip("/") + path

    dp = Dispatcher()
    dp.message.register(start, CommandStart())
    app = web.Application()
    SimpleRequestHandler(dispatcher=dp, bot=bot, secret_token=secret).register(app, path=path)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, host.strip("[]"), int(port)).start()
        # setWebhook only once the site listens (Telegram posts at once)
        await bot.set_webhook(
            url=url,
            secret_token=secret,
            allowed_updates=dp.resolve_used_update_types(),
            max_connections=40,
        )
        await stop.wait()
    finally:
        await runner.cleanup()  # the handler's shutdown hook closes the bot's session


if __name__ == "__main__":
    asyncio.run(main())
