"""Per sender number throughput pacing: Meta allows each phone number N messages a second (80 by
default, up to 1,000) and answers 130429 beyond. Workers reserve the number's next send slot and
wait for it instead of provoking that error.

Slots are spaced evenly (GCRA-style: each send reserves ``max(now, next_free)`` and moves
``next_free`` on by one interval), at 95% of the number's throughput so network jitter never puts
two sends closer than Meta counts. In memory for one process; on Redis (one atomic script, Redis's
own clock) when ``AISOULE_REDIS_URL`` is set, so every worker on every machine shares one budget.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

log = structlog.get_logger(__name__)

HEADROOM = 0.95
MAX_WAIT = 30.0

_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local free = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(free, now)
local interval = tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.6f', start + interval), 'PX',
  math.ceil((start + interval - now) * 1000) + 1000)
return string.format('%.6f', start - now)
"""


class Pacer:
    def __init__(self, redis_url: str | None = None) -> None:
        self._next: dict[str, float] = {}
        self._redis: Any = None
        self._script: Any = None
        if redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(redis_url)
            self._script = self._redis.register_script(_RESERVE)

    async def _reserve(self, number: str, interval: float) -> float:
        """Seconds to wait for the slot just reserved."""
        if self._script is not None:
            try:
                return float(await self._script(keys=[f"aisoule:pace:{number}"], args=[interval]))
            except Exception as exc:  # Redis down: pace this process alone
                log.warning("send_pacing_redis_unavailable", error=repr(exc))
        now = time.monotonic()
        start = max(self._next.get(number, 0.0), now)
        self._next[number] = start + interval
        return start - now

    async def acquire(self, number: str, per_second: int) -> None:
        interval = 1.0 / (max(1, per_second) * HEADROOM)
        wait = await self._reserve(number, interval)
        if wait > 0:
            await asyncio.sleep(min(wait, MAX_WAIT))

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
