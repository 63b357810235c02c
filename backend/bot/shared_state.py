"""What the bot's processes share through Redis when `REDIS_URL` is set: the dialog
state (aiogram's RedisStorage), one user's updates handled one at a time across all
processes (RedisEventIsolation), and the per-user flood limit. All of it survives a
restart and is the same for every worker and host. Without Redis the same lives in the
process's memory (the zero-config default).

With Redis, an update costs two round trips instead of four: taking the user's lock
also reads the dialog state and spends a token of the flood limit, in one script
(`_ENTER`), and giving the lock back is the other. What the script read is handed to
the storage's first `get_state` and the flood limit's `allow` for that user through a
context variable of the update's task (each is used once; a later read goes to Redis).
A payment spends a token too, though it is never dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisStorage
from redis.asyncio import Redis

from backend.bot.config import BotConfig
from backend.bot.middlewares import FloodLimit, MemoryFloodLimit

# A token bucket per user, kept and refilled in Redis by Redis' own clock: the same
# limit whichever process or host takes the update. KEYS[1] the bucket; ARGV rate, burst.
_BUCKET = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
"""

_TOKEN_BUCKET = (
    "local rate = tonumber(ARGV[1])\nlocal burst = tonumber(ARGV[2])\n"
    + _BUCKET
    + "return allowed\n"
)

# Take the user's lock (KEYS[1]) with our token for so many ms, and only then read the
# dialog state (KEYS[2]) and spend a token of the flood bucket (KEYS[3]).
# Returns {0} when the lock is someone else's, else {1, allowed, state (absent: nil)}.
_ENTER = (
    """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0}
end
local rate = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
"""
    + _BUCKET.replace("KEYS[1]", "KEYS[3]")
    + "return {1, allowed, redis.call('GET', KEYS[2])}\n"
)

# Give the lock back only if it is still ours (it may have timed out and been taken).
_LEAVE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

LOCK_MS = 60_000  # aiogram's default: a handler holding a user longer frees them anyway
LOCK_WAIT = 0.05  # seconds between tries while another update of the user holds the lock


# A lock's token names its holder: random per process (no two processes or hosts share
# it; a forked worker draws its own), counted within it; cheaper than a uuid4 (a system
# call) an update.
_token_prefix = ""


def _new_token_prefix() -> None:
    global _token_prefix
    _token_prefix = secrets.token_hex(8) + ":"


_new_token_prefix()
os.register_at_fork(after_in_child=_new_token_prefix)
_tokens = itertools.count()


@dataclass
class _Read:
    """What taking a user's lock read for the update in hand; each part answers one
    question only (then `used`)."""

    state_key: str
    state: str | None
    user_id: int
    allowed: bool
    state_used: bool = False
    flood_used: bool = False


_read: ContextVar[_Read | None] = ContextVar("topup_redis_read", default=None)


class RedisFloodLimit:
    def __init__(self, redis: Redis, *, prefix: str, rate: float, burst: int) -> None:
        self._redis, self._prefix = redis, prefix
        self._rate, self._burst = rate, burst
        self._script = redis.register_script(_TOKEN_BUCKET)

    def key(self, user_id: int) -> str:
        return f"{self._prefix}:flood:{user_id}"

    @property
    def args(self) -> list[float]:
        return [self._rate, self._burst]

    async def allow(self, user_id: int) -> bool:
        read = _read.get()
        if read is not None and read.user_id == user_id and not read.flood_used:
            read.flood_used = True
            return read.allowed
        return bool(await self._script(keys=[self.key(user_id)], args=self.args))


class PrefetchingRedisStorage(RedisStorage):
    """aiogram's RedisStorage whose first state read in an update is the one taken with
    the user's lock."""

    async def get_state(self, key: StorageKey) -> str | None:
        read = _read.get()
        if read is not None and not read.state_used:
            read.state_used = True
            if read.state_key == self.key_builder.build(key, "state"):
                return read.state
        return await super().get_state(key)


class RedisUserIsolation(BaseEventIsolation):
    """One update of a user at a time across all processes, like aiogram's
    RedisEventIsolation, taking the dialog state and the flood decision along."""

    def __init__(self, redis: Redis, *, keys: DefaultKeyBuilder, flood: RedisFloodLimit):
        self._redis, self._keys, self._flood = redis, keys, flood
        self._enter = redis.register_script(_ENTER)
        self._leave = redis.register_script(_LEAVE)

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        lock_key = self._keys.build(key, "lock")
        state_key = self._keys.build(key, "state")
        keys = [lock_key, state_key, self._flood.key(key.user_id)]
        token = f"{_token_prefix}{next(_tokens)}"
        args = [token, LOCK_MS, *self._flood.args]
        while True:
            answer = await self._enter(keys=keys, args=args)
            if answer[0]:
                break
            await asyncio.sleep(LOCK_WAIT)
        state = answer[2] if len(answer) > 2 else None
        if isinstance(state, bytes):
            state = state.decode()
        mark = _read.set(_Read(state_key, state, key.user_id, bool(answer[1])))
        try:
            yield None
        finally:
            _read.reset(mark)
            await self._leave(keys=[lock_key], args=[token])

    async def close(self) -> None:
        pass


@dataclass
class SharedState:
    storage: BaseStorage
    isolation: BaseEventIsolation
    flood: FloodLimit
    redis: Redis | None = None

    async def close(self) -> None:
        await self.storage.close()
        await self.isolation.close()
        if self.redis is not None:
            await self.redis.aclose()

    async def redis_answers(self) -> bool:
        return self.redis is not None and bool(await self.redis.ping())


def shared_state(*, config: BotConfig, redis_url: str = "", prefix: str = "topup") -> SharedState:
    """In Redis with `redis_url`, else in this process's memory. `prefix` starts every
    key (one Redis may serve several bots)."""
    if not redis_url:
        return SharedState(
            storage=MemoryStorage(),
            isolation=SimpleEventIsolation(),
            flood=MemoryFloodLimit(rate=config.flood_rate, burst=config.flood_burst),
        )
    redis = Redis.from_url(redis_url)
    keys = DefaultKeyBuilder(prefix=f"{prefix}:fsm")
    flood = RedisFloodLimit(redis, prefix=prefix, rate=config.flood_rate, burst=config.flood_burst)
    return SharedState(
        storage=PrefetchingRedisStorage(redis, key_builder=keys),
        isolation=RedisUserIsolation(redis, keys=keys, flood=flood),
        flood=flood,
        redis=redis,
    )
