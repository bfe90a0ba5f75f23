"""Per sender number throughput pacing: Meta allows each phone number N messages a second (80 by
default, up to 1,000) and answers 130429 beyond. Workers reserve the number's next send slot and
wait for it instead of provoking that error.

Meta's pair rate (about one message every 6 s from a number to the same person, 131056 beyond) is
kept here too, but not by waiting: ``pair`` either takes the pair's slot or answers how long until
the next one, and the caller defers the message that long (a worker never sleeps seconds for one
recipient while the rest of its chunk waits).

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


# GCRA over one key per (number, recipient): the key holds the theoretical arrival time (TAT). A
# send at ``now`` conforms when TAT - now <= (burst - 1) * period; it then moves TAT on by one
# period. Otherwise it answers the seconds until it would conform, and reserves nothing.
_PAIR = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local period = tonumber(ARGV[1])
local tolerance = period * (tonumber(ARGV[2]) - 1)
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
if tat - now > tolerance then
  return string.format('%.6f', tat - tolerance - now)
end
redis.call('SET', KEYS[1], string.format('%.6f', tat + period), 'PX',
  math.ceil((tat + period - now) * 1000) + 1000)
return '0'
"""
_PAIR_MEMORY_MAX = 100_000  # pairs remembered in memory before the expired ones are dropped


class Pacer:
    def __init__(self, redis_url: str | None = None) -> None:
        self._next: dict[str, float] = {}
        self._redis: Any = None
        self._script: Any = None
        self._pair_script: Any = None
        if redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(redis_url)
            self._script = self._redis.register_script(_RESERVE)
            self._pair_script = self._redis.register_script(_PAIR)
        self._pairs: dict[tuple[str, str], float] = {}

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

    async def pair(self, number: str, recipient: str, *, period: float, burst: int = 1) -> float:
        """Take the (number, recipient) pair's send slot and answer 0, or answer the seconds until
        the pair may be sent to again (nothing taken). ``period``: Meta's pair period (6 s);
        ``burst``: how many sends in a row we allow ourselves (Meta allows more, borrowed from
        later)."""
        if period <= 0:
            return 0.0
        burst = max(1, burst)
        period = period / HEADROOM  # network jitter never brings two sends closer at Meta
        if self._pair_script is not None:
            try:
                key = f"aisoule:pair:{number}:{recipient.lstrip('+')}"
                return float(await self._pair_script(keys=[key], args=[period, burst]))
            except Exception as exc:  # Redis down: keep the pair rate for this process alone
                log.warning("pair_pacing_redis_unavailable", error=repr(exc))
        now = time.monotonic()
        key_ = (number, recipient.lstrip("+"))
        tat = max(self._pairs.get(key_, 0.0), now)
        tolerance = period * (burst - 1)
        if tat - now > tolerance:
            return tat - tolerance - now
        if len(self._pairs) >= _PAIR_MEMORY_MAX:
            self._pairs = {k: v for k, v in self._pairs.items() if v > now}
        self._pairs[key_] = tat + period
        return 0.0

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
