"""Per sender number throughput pacing: Meta allows each phone number N messages a second (80 by
default, up to 1,000) and answers 130429 beyond. Workers reserve the number's next send slot and
wait for it instead of provoking that error.

Meta's pair rate (about one message every 6 s from a number to the same person, 131056 beyond) is
kept here too, but not by waiting: a send either takes the pair's slot or is told how long until
the next one, and the caller defers the message that long (a worker never sleeps seconds for one
recipient while the rest of its chunk waits).

``slots`` reserves a whole chunk of sends (pair slots and throughput slots together) in one call:
one Redis round trip per chunk, not two per message.

Slots are spaced evenly (GCRA-style: each send reserves ``max(now, next_free)`` and moves
``next_free`` on by one interval), at 95% of the number's throughput so network jitter never puts
two sends closer than Meta counts. In memory for one process; on Redis (one atomic script, Redis's
own clock) when ``AISOULE_REDIS_URL`` is set, so every worker on every machine shares one budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import structlog

log = structlog.get_logger(__name__)

HEADROOM = 0.95
MAX_WAIT = 30.0

# One chunk of sends from one number, in one atomic script on Redis's own clock. KEYS[1]: the
# number's next free send slot; KEYS[2..]: one (number, recipient) pair each, in the chunk's order.
# Each pair is GCRA: the key holds its theoretical arrival time (TAT); a send at ``now`` conforms
# when TAT - now <= (burst - 1) * period and then moves TAT on by one period. A conforming send
# reserves the number's next slot (``max(now, next_free)``, which moves on by one interval); one
# that does not conform reserves nothing and answers how long until it would ('d' + seconds).
# The keys share a hash tag (the number), so the script also runs on a Redis Cluster.
_CHUNK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tolerance = period * (tonumber(ARGV[3]) - 1)
local free = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local out = {}
for i = 2, #KEYS do
  local defer = 0
  if period > 0 then
    local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or '0'), now)
    if tat - now > tolerance then
      defer = tat - tolerance - now
    else
      redis.call('SET', KEYS[i], string.format('%.6f', tat + period), 'PX',
        math.ceil((tat + period - now) * 1000) + 1000)
    end
  end
  if defer > 0 then
    out[#out + 1] = string.format('d%.6f', defer)
  elseif interval > 0 then
    out[#out + 1] = string.format('%.6f', free - now)
    free = free + interval
  else
    out[#out + 1] = '0'
  end
end
if interval > 0 then
  redis.call('SET', KEYS[1], string.format('%.6f', free), 'PX',
    math.ceil((free - now) * 1000) + 1000)
end
return out
"""
_PAIR_MEMORY_MAX = 100_000  # pairs remembered in memory before the expired ones are dropped
_REDIS_CONNECTIONS = 32  # callers wait for a free connection rather than fail (and fall back)


class Slot(NamedTuple):
    """One send's place in its number's schedule: ``wait`` seconds until its reserved slot, or,
    when ``defer`` > 0, nothing reserved: the pair (number, recipient) may be sent to again in
    ``defer`` seconds."""

    wait: float
    defer: float = 0.0


class Pacer:
    def __init__(self, redis_url: str | None = None) -> None:
        self._next: dict[str, float] = {}
        self._redis: Any = None
        self._script: Any = None
        if redis_url:
            import redis.asyncio as aioredis

            # A blocking pool: with many chunks in flight a caller waits for a connection
            # instead of failing with "Too many connections" and pacing this process alone.
            pool = aioredis.BlockingConnectionPool.from_url(
                redis_url, max_connections=_REDIS_CONNECTIONS, timeout=5
            )
            self._redis = aioredis.Redis(connection_pool=pool)
            self._script = self._redis.register_script(_CHUNK)
        self._pairs: dict[tuple[str, str], float] = {}

    async def slots(
        self,
        number: str,
        per_second: int | None,
        recipients: Sequence[str],
        *,
        period: float,
        burst: int = 1,
    ) -> list[Slot]:
        """Reserve a chunk's sends from ``number`` at once, in order: each recipient's pair slot
        (Meta's pair rate: ``period`` seconds, 6 by default; ``burst`` sends in a row allowed,
        Meta lets more borrow from later) and, for those that conform, the number's next
        throughput slots (``per_second``; None: not paced). One round trip to Redis per chunk,
        whatever its size."""
        if not recipients:
            return []
        interval = 1.0 / (max(1, per_second) * HEADROOM) if per_second is not None else 0.0
        burst = max(1, burst)
        period = period / HEADROOM if period > 0 else 0.0  # jitter never brings two sends closer
        people = [r.lstrip("+") for r in recipients]
        if self._script is not None:
            tag = "{" + number + "}"
            keys = [f"aisoule:pace:{tag}"] + [f"aisoule:pair:{tag}:{p}" for p in people]
            try:
                raw = await self._script(keys=keys, args=[interval, period, burst])
                return [_slot(v) for v in raw]
            except Exception as exc:  # Redis down: pace this process alone
                log.warning("send_pacing_redis_unavailable", error=repr(exc))
        return self._slots_in_memory(number, interval, people, period, burst)

    def _slots_in_memory(
        self, number: str, interval: float, people: Sequence[str], period: float, burst: int
    ) -> list[Slot]:
        now = time.monotonic()
        free = max(self._next.get(number, 0.0), now)
        tolerance = period * (burst - 1)
        if len(self._pairs) >= _PAIR_MEMORY_MAX:
            self._pairs = {k: v for k, v in self._pairs.items() if v > now}
        out: list[Slot] = []
        for person in people:
            if period > 0:
                key = (number, person)
                tat = max(self._pairs.get(key, 0.0), now)
                if tat - now > tolerance:
                    out.append(Slot(0.0, tat - tolerance - now))
                    continue
                self._pairs[key] = tat + period
            if interval > 0:
                out.append(Slot(free - now))
                free += interval
            else:
                out.append(Slot(0.0))
        if interval > 0:
            self._next[number] = free
        return out

    async def acquire(self, number: str, per_second: int) -> None:
        """Wait for the number's next send slot (one send, no pair rate)."""
        (slot,) = await self.slots(number, per_second, [""], period=0.0)
        await wait_for_slot(slot)

    async def pair(self, number: str, recipient: str, *, period: float, burst: int = 1) -> float:
        """Take the (number, recipient) pair's send slot and answer 0, or answer the seconds until
        the pair may be sent to again (nothing taken)."""
        if period <= 0:
            return 0.0
        (slot,) = await self.slots(number, None, [recipient], period=period, burst=burst)
        return slot.defer

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def _slot(raw: Any) -> Slot:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    if text.startswith("d"):
        return Slot(0.0, float(text[1:]))
    return Slot(float(text))


async def wait_for_slot(slot: Slot) -> None:
    """Sleep until a reserved slot (at most ``MAX_WAIT``: a backlog that long is a bug's)."""
    if slot.wait > 0:
        await asyncio.sleep(min(slot.wait, MAX_WAIT))
