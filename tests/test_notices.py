"""Telling users what happened to their money: a Stars refund and an admin's correction
(when the admin asks) are queued with the change and sent by the bot process, at most
once. Real aiogram against the fake Bot API, the admin through Django's client, a real
database; the crash case with `runbot.py` killed by SIGKILL."""

import asyncio
import signal
import sqlite3
from decimal import Decimal

from asgiref.sync import sync_to_async

from backend.payments.models import LedgerEntry, UserNotice
from backend.users.models import TelegramUser
from tests.helpers import block, db_user, eventually, manage, process_env, start_runbot
from tests.test_telegram_payments import ADMIN_URL, BOTH, paid_in_stars

USERS_URL = "/admin/users/telegramuser/"


@sync_to_async
def make_user(telegram_id: int, balance: str = "100.00") -> TelegramUser:
    return TelegramUser.objects.create(
        telegram_id=telegram_id, first_name="Ира", balance=Decimal(balance)
    )


@sync_to_async
def notices(telegram_id: int) -> list[UserNotice]:
    rows = UserNotice.objects.filter(entry__user__telegram_id=telegram_id)
    return list(rows.select_related("entry").order_by("id"))


async def adjust(client, user: TelegramUser, **data):
    """The balance form as a browser sends it (a fresh form's key)."""
    url = f"{USERS_URL}{user.pk}/adjust/"
    page = await client.get(url)
    data |= {"key": page.context["form"]["key"].value(), "seen_balance": str(user.balance)}
    data.setdefault("reason", "компенсация <за сбой>")
    return await client.post(url, data, follow=True)


async def notice_settled(telegram_id: int) -> UserNotice | None:
    found = await notices(telegram_id)
    unsettled = (UserNotice.Status.PENDING, UserNotice.Status.SENDING)
    return found[-1] if found and found[-1].status not in unsettled else None


async def test_an_adjustment_tells_the_user_only_when_the_admin_asks(make_bot, tg, boss_client):
    await make_bot(notice_interval=0.1)
    user = await make_user(7301)

    page = await adjust(boss_client, user, amount="50")
    assert "Бот сообщит" not in page.content.decode()
    await tg.assert_no_call("sendMessage", within=0.5)
    assert await notices(7301) == []

    page = await adjust(boss_client, user, amount="-30,5", notify="on")
    assert "Бот сообщит об этом пользователю." in page.content.decode()
    told = await tg.wait_call("sendMessage")
    assert told.params["chat_id"] == 7301
    assert told.params["text"] == "Баланс изменён администратором: −30,50 ₽.\nВаш баланс: 119,50 ₽"
    [notice] = await notices(7301)
    assert notice.status == UserNotice.Status.SENT and notice.sent_at is not None

    await adjust(boss_client, user, amount="10", notify="on", show_reason="on")
    told = await tg.wait_call("sendMessage")
    assert told.params["text"] == (
        "Баланс изменён администратором: +10 ₽.\n"
        "Причина: компенсация &lt;за сбой&gt;\n"  # the admin's text, escaped for HTML
        "Ваш баланс: 129,50 ₽"
    )
    await tg.assert_no_call("sendMessage", within=0.5)  # each notice once

    # The ledger row's page says what became of its notice.
    entry = (await notices(7301))[-1].entry
    html = (await boss_client.get(f"/admin/payments/ledgerentry/{entry.pk}/change/")).content
    assert "отправлено" in html.decode()


async def test_a_reason_without_a_notice_is_refused_and_changes_nothing(make_bot, tg, boss_client):
    await make_bot(notice_interval=0.1)
    user = await make_user(7302)
    page = await adjust(boss_client, user, amount="5", show_reason="on")
    assert "Причину можно показать только в уведомлении пользователю." in page.content.decode()
    assert (await db_user(7302)).balance == Decimal("100.00")
    assert await notices(7302) == []
    await tg.assert_no_call("sendMessage", within=0.3)


async def test_a_stars_refund_tells_the_user(make_bot, tg, boss_client):
    await make_bot(payments=BOTH, notice_interval=0.1)
    user = tg.user(7303)
    bill = await paid_in_stars(tg, user, "70")
    await boss_client.post(ADMIN_URL, {"action": "refund", "_selected_action": [bill.pk]})
    told = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 7303)
    assert told.params["text"] == "Оплата возвращена: −70 ₽.\nВаш баланс: 0 ₽"
    [notice] = await notices(7303)
    assert notice.entry.kind == LedgerEntry.Kind.REFUND
    assert notice.status == UserNotice.Status.SENT


async def test_blocked_users_get_nothing_and_a_403_is_recorded(make_bot, tg, boss_client):
    await make_bot(notice_interval=0.1)
    blocked, gone = await make_user(7304), await make_user(7305)
    await block(7304)
    await adjust(boss_client, blocked, amount="1", notify="on")
    assert (await eventually(lambda: notice_settled(7304))).status == UserNotice.Status.SKIPPED

    tg.fail_next("sendMessage", status=403)
    await adjust(boss_client, gone, amount="1", notify="on")
    settled = await eventually(lambda: notice_settled(7305))
    assert settled.status == UserNotice.Status.BOT_BLOCKED
    assert (await db_user(7305)).bot_blocked_at is not None
    await adjust(boss_client, gone, amount="2", notify="on")  # known now: not even tried
    assert (await eventually(lambda: notice_settled(7305))).pk != settled.pk
    await tg.assert_no_call("sendMessage", within=0.3)
    assert [c.method for c in tg.calls if c.method == "sendMessage"] == ["sendMessage"]


async def test_a_notice_telegram_refuses_is_recorded_and_not_retried(make_bot, tg, boss_client):
    await make_bot(notice_interval=0.1)
    user = await make_user(7306)
    tg.fail_next("sendMessage", status=400, description="Bad Request: chat not found")
    await adjust(boss_client, user, amount="3", notify="on")
    settled = await eventually(lambda: notice_settled(7306))
    assert settled.status == UserNotice.Status.FAILED
    assert "chat not found" in settled.error
    await tg.assert_no_call("sendMessage", within=0.5)


def notice_status(db_path) -> list[str]:
    with sqlite3.connect(db_path) as db:
        return [row[0] for row in db.execute("SELECT status FROM payments_usernotice ORDER BY id")]


ADJUST = (
    "from decimal import Decimal; from backend.payments.services import balance_adjust; "
    "from backend.users.models import TelegramUser; "
    "u, _ = TelegramUser.objects.get_or_create(telegram_id=7307, defaults={'first_name': 'Ян'}); "
    "balance_adjust(user=u, amount=Decimal('{amount}'), reason='тест', notify=True)"
)


async def test_a_notice_being_sent_when_the_bot_is_killed_is_never_sent_again(tg, qiwi, tmp_path):
    env = process_env(tg, qiwi, tmp_path)
    await manage("migrate", "--noinput", env=env)
    await manage("shell", "-c", ADJUST.replace("{amount}", "5"), env=env)
    db_path = tmp_path / "bot.sqlite3"
    # Telegram takes the message and does not answer: the worst moment to die.
    tg.fail_next("sendMessage", status=500, delay=30)
    with (tmp_path / "console.txt").open("ab") as console:
        bot = await start_runbot(env, tmp_path, console)
        try:

            async def sending():
                sent = [c for c in tg.calls if c.method == "sendMessage"]
                return sent and notice_status(db_path) == ["sending"]

            await eventually(sending, timeout=60)
            bot.send_signal(signal.SIGKILL)
            await bot.wait()

            await manage("shell", "-c", ADJUST.replace("{amount}", "7"), env=env)
            bot = await start_runbot(env, tmp_path, console)
            told = await tg.wait_call("sendMessage", timeout=60)
            assert "+7 ₽" in told.params["text"]  # the next notice goes out as usual

            async def settled():
                return notice_status(db_path) == ["unknown", "sent"]

            await eventually(settled)
            await asyncio.sleep(1.5)  # a few rounds more: the first is never sent again
            assert [c.params["text"] for c in tg.calls if c.method == "sendMessage"] == [
                "Баланс изменён администратором: +5 ₽.\nВаш баланс: 5 ₽",
                told.params["text"],
            ]
        finally:
            if bot.returncode is None:
                bot.send_signal(signal.SIGTERM)
                await bot.wait()
