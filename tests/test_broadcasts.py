"""Broadcasts: queued from the command line, sent by the bot process at most once to each
user, at BROADCAST_RATE at most, paused, resumed, cancelled, and resumed after a
SIGKILL without a second copy to anyone. Real aiogram against the fake Bot API, a real
database; the crash case with `runbot.py` killed by SIGKILL."""

import asyncio
import io
import signal
import sqlite3
import time

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.core.management.base import CommandError

from backend.bot.broadcasts import Pacer
from backend.broadcasts import services
from backend.broadcasts.models import Broadcast, Delivery
from backend.broadcasts.telegram_html import TelegramHtmlError, telegram_html_text
from backend.users.models import TelegramUser
from tests.helpers import (
    ask_to_pay,
    block,
    db_user,
    eventually,
    manage,
    press_confirm,
    process_env,
    start_runbot,
)


@pytest.mark.parametrize(
    "markup, text",
    [
        ("<b>Скидка</b> 10% &lt;только сегодня&gt;", "Скидка 10% <только сегодня>"),
        ('<a href="https://shop.example/x?a=1&amp;b=2">магазин</a>', "магазин"),
        ('<span class="tg-spoiler">тайна</span> <tg-spoiler>ещё</tg-spoiler>', "тайна ещё"),
        ('<pre><code class="language-python">x = 1</code></pre>', "x = 1"),
        ("<blockquote expandable>цитата</blockquote> &#128512;", "цитата 😀"),
    ],
)
def test_what_telegram_takes(markup, text):
    assert telegram_html_text(markup) == text


@pytest.mark.parametrize(
    "markup, why",
    [
        ("<div>x</div>", "<div>"),
        ("<b>x</i>", "</i>"),
        ("<b>x", "never closed"),
        ("a < b", "&lt;"),
        ("1 & 2", "&amp;"),
        ("&nbsp;x", "&nbsp;"),
        ('<a href="javascript:alert(1)">x</a>', "http"),
        ("<span>x</span>", "tg-spoiler"),
        ("x<br/>y", "self-closing"),
        ("   ", "empty"),
        ("я" * 4097, "4096"),
    ],
)
def test_what_telegram_refuses(markup, why):
    with pytest.raises(TelegramHtmlError, match=why):
        telegram_html_text(markup)


def test_four_thousand_ninety_six_characters_of_text_pass_whatever_the_tags():
    assert len(telegram_html_text("<b>" + "я" * 4096 + "</b>")) == 4096


@sync_to_async
def make_users(*telegram_ids: int, balance: str = "0") -> None:
    for telegram_id in telegram_ids:
        TelegramUser.objects.create(telegram_id=telegram_id, first_name="Ира", balance=balance)


def command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@sync_to_async
def deliveries(broadcast_id: int) -> dict[int, str]:
    rows = Delivery.objects.filter(broadcast_id=broadcast_id)
    return dict(rows.values_list("user__telegram_id", "status"))


@sync_to_async
def broadcast_status(broadcast_id: int) -> str:
    return Broadcast.objects.get(pk=broadcast_id).status


def sends(tg, chat_ids=None) -> list:
    """Every sendMessage of a broadcast the fake saw, failed ones too."""
    return [
        c
        for c in tg.calls
        if c.method == "sendMessage" and (chat_ids is None or c.params["chat_id"] in chat_ids)
    ]


async def test_the_command_counts_and_queues_the_audience(transactional_db):
    await make_users(6101, 6102, 6103)
    await make_users(6104, balance="10")
    await block(6102)
    gone = await db_user(6103)
    gone.bot_blocked_at = gone.created_at
    await sync_to_async(gone.save)()

    dry = await sync_to_async(command)("broadcast", "--text", "<b>Привет</b>", "--dry-run")
    assert dry.strip() == "dry run: 2 recipients; nothing queued"
    assert not await sync_to_async(Delivery.objects.exists)()
    only = await sync_to_async(command)(
        "broadcast", "--text", "x", "--only-positive-balance", "--dry-run"
    )
    assert only.strip() == "dry run: 1 recipients; nothing queued"

    out = await sync_to_async(command)("broadcast", "--text", "<b>Привет</b>")
    broadcast = await sync_to_async(Broadcast.objects.get)(status=Broadcast.Status.QUEUED)
    assert out.strip() == f"broadcast {broadcast.pk} queued: 2 recipients"
    assert await deliveries(broadcast.pk) == {6101: "pending", 6104: "pending"}
    status = await sync_to_async(command)("broadcast_status", str(broadcast.pk))
    assert status.splitlines()[0] == f"broadcast {broadcast.pk}: queued, 0 of 2 handled"
    assert "  pending: 2" in status.splitlines()


@pytest.mark.parametrize(
    "args, why",
    [
        (["--text", "<script>x</script>"], "<script>"),
        (["--text", "x", "--button-text", "Открыть"], "и текст, и ссылка"),
        (["--text", "x", "--button-text", "Открыть", "--button-url", "http://x.ru"], "https"),
    ],
)
def test_the_command_refuses_what_telegram_would_refuse(db, args, why):
    with pytest.raises(CommandError, match=why):
        command("broadcast", *args)
    assert not Broadcast.objects.filter(status=Broadcast.Status.QUEUED).exists()


async def test_every_user_gets_it_once_with_its_button(make_bot, tg, transactional_db):
    users = (6201, 6202, 6203, 6204, 6205)
    await make_users(*users)
    text = '<b>Акция</b>: +10% к пополнению до <a href="https://shop.example/">пятницы</a>'
    out = await sync_to_async(command)(
        "broadcast",
        "--text",
        text,
        "--button-text",
        "Подробнее",
        "--button-url",
        "https://shop.example/promo",
    )
    broadcast_id = int(out.split()[1])
    tg.fail_next("sendMessage", status=403)  # the first recipient has blocked the bot
    tg.fail_next("sendMessage", status=403, description="Forbidden: user is deactivated")
    await make_bot(notice_interval=0.1, broadcast_rate=1000.0)

    async def done():
        return await broadcast_status(broadcast_id) == "done"

    await eventually(done)
    assert sorted(c.params["chat_id"] for c in sends(tg)) == list(users)
    delivered = [c for c in sends(tg) if not c.failed]
    assert all(c.params["text"] == text and c.params["parse_mode"] == "HTML" for c in delivered)
    assert all(
        c.params["reply_markup"]
        == {"inline_keyboard": [[{"text": "Подробнее", "url": "https://shop.example/promo"}]]}
        for c in delivered
    )
    assert await deliveries(broadcast_id) == {
        6201: "bot_blocked",
        6202: "left",  # the account is gone
        6203: "sent",
        6204: "sent",
        6205: "sent",
    }
    assert (await db_user(6201)).bot_blocked_at is not None
    assert (await db_user(6202)).bot_blocked_at is not None  # nothing more reaches it
    await asyncio.sleep(0.5)
    assert len(sends(tg)) == len(users)  # nothing more, to anyone
    status = await sync_to_async(command)("broadcast_status", str(broadcast_id))
    assert status.splitlines()[0] == f"broadcast {broadcast_id}: done, 5 of 5 handled"


async def test_the_rate_is_never_exceeded_and_pause_resume_cancel_work(
    make_bot, tg, transactional_db
):
    users = tuple(range(6301, 6331))
    await make_users(*users)
    first = await sync_to_async(services.broadcast_create)(text="первая")
    await sync_to_async(services.broadcast_queue)(broadcast_id=first.pk)
    second = await sync_to_async(services.broadcast_create)(text="вторая")
    await sync_to_async(services.broadcast_queue)(broadcast_id=second.pk)
    await make_bot(notice_interval=0.1, broadcast_rate=10.0)

    def sent(text: str) -> int:
        return len([c for c in sends(tg) if c.params["text"] == text])

    async def some_of_the_first():
        return sent("первая") >= 5

    await eventually(some_of_the_first)
    await sync_to_async(services.broadcast_pause)(broadcast_id=first.pk)
    paused_at = sent("первая")

    async def the_second_meanwhile():  # one at a time, oldest first: the next in line
        return sent("вторая") >= 3

    await eventually(the_second_meanwhile)
    await sync_to_async(services.broadcast_cancel)(broadcast_id=second.pk)
    cancelled_at = sent("вторая")
    assert sent("первая") <= paused_at + 1  # the one in hand at most
    assert await broadcast_status(first.pk) == "paused"

    await sync_to_async(services.broadcast_resume)(broadcast_id=first.pk)

    async def first_done():
        return await broadcast_status(first.pk) == "done"

    await eventually(first_done, timeout=10)
    firsts = sorted(c.params["chat_id"] for c in sends(tg) if c.params["text"] == "первая")
    assert firsts == list(users)  # everyone once
    await asyncio.sleep(0.5)
    assert cancelled_at <= sent("вторая") <= cancelled_at + 1
    assert await broadcast_status(second.pk) == "cancelled"
    # Never more than 10 a second: the 11th after any message comes a second later
    # (less the fake's jitter in receiving them).
    times = [c.at for c in sends(tg)]
    assert all(t11 - t1 >= 0.95 for t1, t11 in zip(times, times[10:], strict=False))


def delivery_status(db_path) -> list[str]:
    with sqlite3.connect(db_path) as db:
        return [row[0] for row in db.execute("SELECT status FROM broadcasts_delivery ORDER BY id")]


USERS = "from backend.users.models import TelegramUser as U; " + "; ".join(
    f"U.objects.create(telegram_id={i}, first_name='Ян')" for i in range(6401, 6413)
)


async def test_a_broadcast_resumes_after_a_kill_and_sends_nobody_a_second_copy(tg, qiwi, tmp_path):
    env = process_env(tg, qiwi, tmp_path, BROADCAST_RATE="20")
    await manage("migrate", "--noinput", env=env)
    await manage("shell", "-c", USERS, env=env)
    await manage("broadcast", "--text", "Новости", env=env)
    db_path = tmp_path / "bot.sqlite3"
    with (tmp_path / "console.txt").open("ab") as console:
        bot = await start_runbot(env, tmp_path, console)
        try:

            async def four_sent():
                return len([c for c in sends(tg) if not c.failed]) >= 4

            await eventually(four_sent, timeout=60)
            # The next message: Telegram takes it and does not answer. Kill then.
            tg.fail_next("sendMessage", status=500, delay=30)

            async def in_hand():  # Telegram has it, the database says SENDING
                hung = [c for c in sends(tg) if c.failed]
                return hung and "sending" in delivery_status(db_path)

            await eventually(in_hand)
            bot.send_signal(signal.SIGKILL)
            await bot.wait()
            hung = next(c.params["chat_id"] for c in sends(tg) if c.failed)

            bot = await start_runbot(env, tmp_path, console)

            async def finished():
                statuses = delivery_status(db_path)
                return "pending" not in statuses and "sending" not in statuses

            await eventually(finished, timeout=60)
            await asyncio.sleep(0.5)
            statuses = dict(zip(range(6401, 6413), delivery_status(db_path), strict=True))
            unknown = [chat for chat, status in statuses.items() if status == "unknown"]
            # The hung message, and at most one more window (of one at 20 a second) claimed
            # beside it; the rest sent.
            assert hung in unknown and len(unknown) <= 2
            assert sorted(statuses.values()).count("sent") == 12 - len(unknown)
            chats = [c.params["chat_id"] for c in sends(tg)]
            assert len(chats) == len(set(chats))  # one attempt each, no copy
            assert {chat for chat, status in statuses.items() if status == "sent"} <= set(chats)
        finally:
            if bot.returncode is None:
                bot.send_signal(signal.SIGTERM)
                await bot.wait()


async def test_a_broadcast_gives_way_to_the_dialog(make_bot, tg, qiwi, transactional_db):
    """While an update is in hand (here a top-up whose bill QIWI takes 2 s to refuse),
    each broadcast message waits for it, up to half a second: the rate drops from 20 a
    second to 2 and comes back after."""
    users = tuple(range(6501, 6561))
    await make_users(*users)
    await make_bot(notice_interval=0.1, broadcast_rate=20.0)
    payer = tg.user(6599)
    confirmation = await ask_to_pay(tg, payer, "100")
    broadcast = await sync_to_async(services.broadcast_create)(text="новости")
    await sync_to_async(services.broadcast_queue)(broadcast_id=broadcast.pk)

    async def going():
        return len(sends(tg, users)) >= 5

    await eventually(going)
    qiwi.fail_next("PUT", status=500, delay=2.0)
    pressed = time.monotonic()
    press_confirm(tg, payer, confirmation)
    await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 6599, timeout=10)

    def sent_between(start: float, end: float) -> int:
        return len([c for c in sends(tg, users) if start <= c.at < end])

    assert sent_between(pressed + 0.3, pressed + 1.8) <= 4  # 30 at 20 a second

    async def done():
        return await broadcast_status(broadcast.pk) == "done"

    await eventually(done, timeout=10)
    last = max(c.at for c in sends(tg, users))
    assert sent_between(last - 1.0, last + 0.01) >= 15  # full speed again


async def test_the_pacer_makes_up_a_stall_yet_never_lets_more_than_the_rate_in_a_second():
    """At 200 a second, the event loop blocked for 30 ms (a stall within CATCH_UP) every
    100 messages: the lost time is made up, the messages keep to the schedule, and no
    second, however slid, holds more than 200."""
    pacer = Pacer(200.0)
    times = []
    started = time.monotonic()
    for i in range(600):
        await pacer.wait()
        times.append(time.monotonic())
        if i % 100 == 50:
            time.sleep(0.03)  # the loop is held up: a stall the pacer must make up
    took = times[-1] - started
    assert 2.9 <= took <= 3.15  # 600 at 200 a second: 3 s, the stalls made up
    assert all(t201 - t1 >= 1.0 for t1, t201 in zip(times, times[200:], strict=False))
