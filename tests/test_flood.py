"""One user flooding the bot: the others are still answered, and nobody can pile up
open bills."""

import asyncio

from asgiref.sync import sync_to_async

from backend.bot import texts
from backend.bot.config import BotConfig
from backend.payments.models import Bill
from tests.helpers import button, db_bills, open_bill


async def test_a_flooding_user_is_cut_down_and_others_are_answered(make_bot, tg):
    defaults = BotConfig.from_settings()
    await make_bot(flood_rate=defaults.flood_rate, flood_burst=defaults.flood_burst)
    flooder, other = tg.user(8001), tg.user(8002)
    for i in range(50):
        tg.send_text(flooder, f"spam {i}")
    tg.send_text(other, "/start")
    reply = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 8002, timeout=10)
    assert reply.params["text"].startswith("Привет, ")
    await asyncio.sleep(1.0)  # let whatever of the flood was let through be answered
    answered = [c for c in tg.sent("sendMessage") if c.params["chat_id"] == 8001]
    assert 1 <= len(answered) <= 15  # a burst of 10 plus what refills meanwhile


async def test_no_more_than_three_open_bills_per_user(bot, tg, qiwi):
    user = tg.user(8003)
    for _ in range(3):
        assert button(await open_bill(tg, user, "10"), texts.PAY_LINK_BUTTON)
    refused = await open_bill(tg, user, "10")
    assert refused.params["text"].startswith("У вас уже есть неоплаченные счета (3)")
    assert len(await db_bills(8003)) == 3 and len(qiwi.bills) == 3

    # Once one is closed, a new bill can be made.
    first = (await db_bills(8003))[0]
    await sync_to_async(Bill.objects.filter(pk=first.pk).update)(status=Bill.Status.REJECTED)
    assert button(await open_bill(tg, user, "10"), texts.PAY_LINK_BUTTON)
