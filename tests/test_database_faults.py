"""The database going away under a running bot: its connections are cut (as a restart of
PostgreSQL cuts them), and the next update and the next poll round work again."""

import pytest
from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection

from tests.helpers import db_bills, db_user, open_bill

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite has no server connection to lose"
)


def _backend_pid() -> int:
    close_old_connections()  # as the bot's own calls do: a cut connection is replaced
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _terminate(pid: int) -> bool:
    try:
        with connection.cursor() as cursor:
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
