"""With REDIS_URL, dialogs and the flood limit live in a real Redis (127.0.0.1:6379):
shared by every bot process and kept across restarts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiogram.fsm.storage.base import StorageKey
from redis.asyncio import Redis

from backend.bot import texts
from tests.constants import TOKEN
from tests.helpers import button

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """Keys of this test's own: other runs may share the Redis."""
    prefix = f"topup-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    redis = Redis.from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_an_amount_prompt_survives_a_restart_and_another_process(make_bot, tg, prefix):
    first = await make_bot(redis_url=REDIS_URL, redis_prefix=prefix)
    user = tg.user(9501)
    tg.send_text(user, "/start")
    hello = await tg.wait_call("sendMessage")
    tg.press(user, tg.message_of(hello), button(hello, texts.TOP_UP_BUTTON)["callback_data"])
    assert (await tg.wait_call("sendMessage")).params["text"] == texts.ASK_AMOUNT
    await first.stop()

    # Another process (a restart, or another worker) takes the amount.
    await make_bot(redis_url=REDIS_URL, redis_prefix=prefix)
    tg.send_text(user, "250")
    confirm = await tg.wait_call("sendMessage")
    assert "250" in confirm.params["text"] and button(confirm, texts.CONFIRM_BUTTON)

    redis = Redis.from_url(REDIS_URL)
    try:
        assert [key async for key in redis.scan_iter(f"{prefix}:fsm:*")]
    finally:
        await redis.aclose()


async def test_without_redis_the_prompt_is_forgotten_by_a_restart(make_bot, tg):
    first = await make_bot()
    user = tg.user(9502)
    tg.send_text(user, "/start")
    hello = await tg.wait_call("sendMessage")
    tg.press(user, tg.message_of(hello), button(hello, texts.TOP_UP_BUTTON)["callback_data"])
    assert (await tg.wait_call("sendMessage")).params["text"] == texts.ASK_AMOUNT
    await first.stop()
    await make_bot()
    tg.send_text(user, "250")
    assert texts.CONFIRM_BUTTON not in str((await tg.wait_call("sendMessage")).params)


async def test_the_flood_limit_is_shared_by_two_processes(make_bot, tg, prefix):
    """Burst 3 across both: a user who alternates between them gets 3 answers, not 6."""
    limits = {"flood_rate": 0.01, "flood_burst": 3, "lock_retry": 0.2}
    await make_bot(redis_url=REDIS_URL, redis_prefix=prefix, **limits)
    # The second process waits for the polling lock; its flood guard is the same Redis.
    other = await make_bot(redis_url=REDIS_URL, redis_prefix=prefix, polling=False, **limits)
    user = tg.user(9503)
    for _ in range(3):
        tg.send_text(user, "/start")
    for _ in range(3):
        await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 9503)
    allowed = [await other.shared.flood.allow(9503) for _ in range(3)]
    assert allowed == [False, False, False]
    tg.send_text(user, "/start")
    await tg.assert_no_call("sendMessage", within=0.5)


async def test_a_users_update_waits_while_another_process_holds_the_users_lock(
    make_bot, tg, prefix
):
    """One user's updates one at a time across processes: while another process holds
    the user's lock (an update of theirs in hand), this one's answer waits for it."""
    await make_bot(redis_url=REDIS_URL, redis_prefix=prefix)
    other = await make_bot(redis_url=REDIS_URL, redis_prefix=prefix, polling=False)
    bot_id = int(TOKEN.split(":")[0])
    user = tg.user(9504)
    async with other.shared.isolation.lock(StorageKey(bot_id=bot_id, chat_id=9504, user_id=9504)):
        tg.send_text(user, "/start")
        await tg.assert_no_call("sendMessage", within=1.0)
        # Another user is not held up.
        tg.send_text(tg.user(9505), "/start")
        await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 9505)
    hello = await tg.wait_call("sendMessage", lambda p: p["chat_id"] == 9504)
    assert button(hello, texts.TOP_UP_BUTTON)


async def test_a_lock_taken_over_after_its_timeout_is_not_given_back_by_the_first_holder(
    make_bot, prefix
):
    """The lock is given back only by its holder: if it timed out and another update
    took it, the first one's exit leaves it alone."""
    bot = await make_bot(redis_url=REDIS_URL, redis_prefix=prefix, polling=False)
    redis = Redis.from_url(REDIS_URL)
    try:
        key = StorageKey(bot_id=1, chat_id=9506, user_id=9506)
        lock_key = f"{prefix}:fsm:9506:9506:lock"
        async with bot.shared.isolation.lock(key):
            assert await redis.exists(lock_key)
            await redis.set(lock_key, "someone else's")
        assert await redis.get(lock_key) == b"someone else's"
        await redis.delete(lock_key)
        async with bot.shared.isolation.lock(key):
            pass
        assert not await redis.exists(lock_key)
    finally:
        await redis.aclose()


async def test_the_state_read_with_the_lock_is_used_once(make_bot, prefix):
    """The state read when the lock was taken answers the update's first read only: a
    read after the state changed sees the change."""
    bot = await make_bot(redis_url=REDIS_URL, redis_prefix=prefix, polling=False)
    storage, isolation = bot.shared.storage, bot.shared.isolation
    key = StorageKey(bot_id=1, chat_id=9507, user_id=9507)
    await storage.set_state(key, "TopUp:amount")
    async with isolation.lock(key):
        assert await storage.get_state(key) == "TopUp:amount"
        await storage.set_state(key, None)
        assert await storage.get_state(key) is None
    await storage.set_state(key, "TopUp:confirm")
    async with isolation.lock(key):
        assert await storage.get_state(key) == "TopUp:confirm"
