"""Starting while Telegram is unreachable, and with a token Telegram refuses."""

import pytest

from backend.bot.client import build_bot
from backend.bot.dispatcher import build_dispatcher
from backend.bot.runner import TokenRefused, run_bot
from backend.payments.providers.qiwi import QiwiProvider
from tests.constants import QIWI_KEY, TOKEN


async def test_bot_waits_for_the_bot_api_and_then_works(make_bot, tg):
    tg.fail_next("getMe", status=502)
    tg.fail_next("getMe", raw_body="not json at all", status=200)
    await make_bot()  # returns once polling has begun
    assert [c.failed for c in tg.calls if c.method == "getMe"][:3] == [True, True, False]
    tg.send_text(tg.user(6001), "/start")
    assert (await tg.wait_call("sendMessage")).params["chat_id"] == 6001


async def test_a_refused_token_stops_the_bot_with_a_clear_reason(tg, qiwi, config):
    tg.fail_next("getMe", status=401, description="Unauthorized")
    provider = QiwiProvider(secret_key=QIWI_KEY, api_url=qiwi.base_url)
    bot = build_bot(token=TOKEN, api_server=tg.base_url)
    with pytest.raises(TokenRefused, match="TELEGRAM_API_TOKEN"):
        dp = build_dispatcher(providers={provider.name: provider}, config=config)
        await run_bot(bot=bot, dispatcher=dp, handle_signals=False)
    assert not tg.sent("getUpdates")
