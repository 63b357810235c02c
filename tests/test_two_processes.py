"""Two bot processes on one database: one polls, the other waits and takes over."""

from backend.log_setup import LOG_FILE_NAME
from tests.helpers import eventually


async def test_a_second_bot_waits_and_takes_over_when_the_first_stops(make_bot, tg, log_dir):
    first = await make_bot()
    polls_before = len(tg.sent("getUpdates"))
    second = await make_bot(polling=False)
    log_file = log_dir / LOG_FILE_NAME

    async def second_is_waiting():
        return "another bot process is running for this bot" in log_file.read_text("utf-8")

    await eventually(second_is_waiting)
    assert len(tg.sent("getMe")) == 1  # the second one has not even started on Telegram

    tg.send_text(tg.user(9101), "/start")
    assert (await tg.wait_call("sendMessage")).params["chat_id"] == 9101
    assert len(tg.sent("getUpdates")) >= polls_before

    await first.stop()

    async def took_over():
        return "the other bot process has stopped: taking over" in log_file.read_text("utf-8")

    await eventually(took_over)
    tg.send_text(tg.user(9102), "/start")
    assert (await tg.wait_call("sendMessage", timeout=10)).params["chat_id"] == 9102
    await second.stop()
