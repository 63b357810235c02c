"""The database going away under a running bot: its connections are cut (as a restart of
PostgreSQL or MySQL cuts them), and the next update and the next poll round work again."""

import pytest
from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection

from backend.bot.instance_lock import mysql_lock_name
from backend.log_setup import LOG_FILE_NAME
from tests.constants import TOKEN
from tests.helpers import db_bills, db_user, eventually, open_bill


def bot_id(token: str) -> int:
    return int(token.split(":")[0])


pytestmark = pytest.mark.skipif(
    connection.vendor == "sqlite", reason="SQLite has no server connection to lose"
)
MYSQL = connection.vendor == "mysql"


def _backend_pid() -> int:
    close_old_connections()  # as the bot's own calls do: a cut connection is replaced
    with connection.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()" if MYSQL else "SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _terminate(pid: int) -> bool:
    try:
        with connection.cursor() as cursor:
            if MYSQL:
                cursor.execute("KILL CONNECTION %s", [pid])
                return True
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            return cursor.fetchone()[0]
    finally:
        connection.close()


async def cut_the_bots_connection() -> None:
    """What a restart of the server does to the bot: its session is gone."""
    bot_pid = await sync_to_async(_backend_pid)()  # the thread the bot's ORM calls run in
    assert await sync_to_async(_terminate, thread_sensitive=False)(bot_pid)


async def test_updates_and_polling_work_again_after_the_connections_are_cut(make_bot, tg, qiwi):
    await make_bot(poll_interval=0.3)
    user = tg.user(9001)
    await open_bill(tg, user, "300")
    [bill] = await db_bills(9001)

    await cut_the_bots_connection()
    newcomer = tg.user(9002)  # a first contact: the bot must write it, on a dead connection
    tg.send_text(newcomer, "/start")
    reply = await tg.wait_call("sendMessage")
    assert reply.params["text"].startswith("Привет, ")  # not the support message
    assert (await db_user(9002)).first_name == newcomer["first_name"]

    await cut_the_bots_connection()
    qiwi.set_status(bill.pk, "PAID")
    note = await tg.wait_call("sendMessage", timeout=10)
    assert "Платёж прошёл успешно" in note.params["text"]
    assert (await db_user(9001)).balance == 300


def _lock_session() -> int | None:
    """The session that holds the bot's single-instance lock, if any."""
    with connection.cursor() as cursor:
        if MYSQL:
            cursor.execute(
                "SELECT IS_USED_LOCK(%s)",
                [mysql_lock_name(connection.settings_dict["NAME"], bot_id(TOKEN))],
            )
        else:
            cursor.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND ((classid::bigint << 32) | objid::bigint) = %s",
                [bot_id(TOKEN)],
            )
        row = cursor.fetchone()
    return row[0] if row else None


async def test_the_polling_lock_is_taken_again_when_its_session_is_cut(make_bot, tg, log_dir):
    await make_bot()  # lock_retry 0.2 s: it looks at the lock five times a second
    holder = await sync_to_async(_lock_session, thread_sensitive=False)()
    assert holder is not None
    assert await sync_to_async(_terminate, thread_sensitive=False)(holder)

    async def taken_again():
        session = await sync_to_async(_lock_session, thread_sensitive=False)()
        return session is not None and session != holder

    await eventually(taken_again)
    tg.send_text(tg.user(9003), "/start")  # still the one polling bot
    assert (await tg.wait_call("sendMessage")).params["chat_id"] == 9003
    assert "took over the lock" not in (log_dir / LOG_FILE_NAME).read_text("utf-8")
