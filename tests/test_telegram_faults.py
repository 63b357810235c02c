"""Faults of the Telegram Bot API, injected in the fake server over HTTP."""

from asgiref.sync import sync_to_async

from backend.bot import texts
from backend.log_setup import LOG_FILE_NAME
from backend.users.models import TelegramUser
from tests.helpers import button, db_user, eventually, open_bill

TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


async def test_a_429_on_a_reply_is_waited_out_and_the_reply_sent(bot, tg):
    tg.fail_next("sendMessage", status=429, retry_after=1)
    tg.send_text(tg.user(7001), "/start")
    reply = await tg.wait_call("sendMessage", timeout=6)
    assert reply.params["text"].startswith("Привет, ")
    attempts = [c.failed for c in tg.calls if c.method == "sendMessage"]
    assert attempts == [True, False]


async def test_polling_survives_failing_get_updates(bot, tg):
    tg.fail_next("getUpdates", status=502, description="Bad Gateway", times=2)
    tg.fail_next("getUpdates", status=200, raw_body="<html>not json</html>")
    tg.send_text(tg.user(7002), "/start")
    reply = await tg.wait_call("sendMessage", timeout=15)
    assert reply.params["chat_id"] == 7002
    assert sum(c.failed for c in tg.calls if c.method == "getUpdates") >= 3


async def test_a_too_old_callback_query_does_not_stop_the_check(bot, tg, qiwi):
    user = tg.user(7003)
    bill_message = await open_bill(tg, user, "100")
    tg.fail_next("answerCallbackQuery", status=400, description=TOO_OLD)
    check = button(bill_message, texts.CHECK_BUTTON)["callback_data"]
    tg.press(user, tg.message_of(bill_message), check)
    reply = await tg.wait_call("sendMessage")
    assert reply.params["text"] == texts.BILL_WAITING  # not the support message
    await tg.assert_no_call("sendMessage", within=0.3)


async def test_message_not_modified_is_quiet(bot, tg, qiwi):
    tg.fail_next(
        "editMessageReplyMarkup",
        status=400,
        description="Bad Request: message is not modified: specified new message content "
        "and reply markup are exactly the same as a current content",
    )
    reply = await open_bill(tg, tg.user(7004), "100")
    assert button(reply, texts.PAY_LINK_BUTTON)  # the bill came, no support message


async def test_a_user_who_blocked_the_bot_is_remembered_until_they_write_again(make_bot, tg, qiwi):
    await make_bot(poll_interval=0.2)
    user = tg.user(7005)
    bill_message = await open_bill(tg, user, "100")
    assert bill_message.params["chat_id"] == 7005
    tg.fail_next("sendMessage", status=403, description="Forbidden: bot was blocked by the user")
    [bill_id] = [b for b in qiwi.bills]
    qiwi.set_status(bill_id, "PAID")

    async def marked():
        return (await db_user(7005)).bot_blocked_at is not None

    await eventually(marked)
    assert (await db_user(7005)).balance == 100
    tg.send_text(user, "/start")
    await tg.wait_call("sendMessage")
    assert (await db_user(7005)).bot_blocked_at is None


async def test_a_409_conflict_is_named_in_the_log(bot, tg, log_dir):
    tg.fail_next(
        "getUpdates",
        status=409,
        description="Conflict: terminated by other getUpdates request; make sure that only "
        "one bot instance is running",
    )
    log_file = log_dir / LOG_FILE_NAME

    async def logged():
        return "409 Conflict: another program is polling this bot token" in log_file.read_text(
            encoding="utf-8"
        )

    await eventually(logged, timeout=10)
    tg.send_text(tg.user(7006), "/start")  # and polling goes on
    assert (await tg.wait_call("sendMessage", timeout=10)).params["chat_id"] == 7006
    assert await sync_to_async(TelegramUser.objects.filter(telegram_id=7006).exists)()
