"""What the bot's processes share through Redis when `REDIS_URL` is set: the dialog
state (aiogram's RedisStorage), one user's updates handled one at a time across all
processes (RedisEventIsolation), and the per-user flood limit. All of it survives a
restart and is the same for every worker and host. Without Redis the same lives in the
process's memory (the zero-config default).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisEventIsolation, RedisStorage
from redis.asyncio import Redis

from backend.bot.config import BotConfig
from backend.bot.middlewares import FloodLimit, MemoryFloodLimit

# A token bucket per user, kept and refilled in Redis by Redis' own clock: the same
# limit whichever process or host takes the update.
_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
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
return allowed
"""


class RedisFloodLimit:
    def __init__(self, redis: Redis, *, prefix: str, rate: float, burst: int) -> None:
        self._redis, self._prefix = redis, prefix
        self._rate, self._burst = rate, burst
        self._script = redis.register_script(_TOKEN_BUCKET)

    async def allow(self, user_id: int) -> bool:
        key = f"{self._prefix}:flood:{user_id}"
        return bool(await self._script(keys=[key], args=[self._rate, self._burst]))


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
    return SharedState(
        storage=RedisStorage(redis, key_builder=keys),
        isolation=RedisEventIsolation(redis, key_builder=keys),
        flood=RedisFloodLimit(
            redis, prefix=prefix, rate=config.flood_rate, burst=config.flood_burst
        ),
        redis=redis,
    )
