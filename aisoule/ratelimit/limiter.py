"""Per-key rate limits, two rolling windows enforced together, on the `limits` library's storage.

Both windows are moving windows (a request counts for exactly 60 s and 1 s), kept as `limits` keeps
them (on Redis: a list of timestamps per window and identity, newest first, under the same keys).
One request is one atomic step on both windows: the minute window is only *tested* first, so
requests it would refuse never fill the second window; then the second window and the minute window
are each *hit*, and the state of both windows is read for the headers. On Redis that step is one Lua
script (one round trip, atomic across processes: no two processes can admit the 101st request of a
minute); in memory it is plain Python with no await in between (atomic within the process).

A request refused by either window less than ``max_wait`` before that window's oldest entry expires
is held until then and tried again (as nginx's limit_req delay does): a client sending steadily gets
its whole quota in every rolling minute and second instead of losing slots to the timing of its
retries.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import structlog
from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Policy:
    per_minute: int
    per_second: int


@dataclass(frozen=True, slots=True)
class Decision:
    admitted: bool
    limit: int  # the per-minute limit (X-RateLimit-Limit)
    remaining: int  # of the tighter window (X-RateLimit-Remaining)
    reset: int  # epoch seconds when that window next frees a slot (X-RateLimit-Reset)
    retry_after: int  # seconds, for a 429

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.admitted:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class LimiterUnavailable(Exception):
    """The storage could not be reached and the settings say to refuse (fail closed)."""


def make_storage(redis_url: str | None) -> Storage:
    if redis_url:
        uri = redis_url if redis_url.startswith("async+") else "async+" + redis_url
        return RedisStorage(uri, implementation="redispy", key_prefix="aisoule-rl")
    return MemoryStorage()


# Outcome of one step on both windows.
ADMITTED, BLOCKED_BY_MINUTE, BLOCKED_BY_SECOND = 0, 1, 2
# (outcome, minute window's oldest entry, its entries, second window's oldest entry, its entries)
Step = tuple[int, float, int, float, int]

# KEYS: the minute and the second window. ARGV: now, minute limit and expiry, second limit and
# expiry. The lists are `limits`' moving windows (newest timestamp first, trimmed to the limit).
_STEP_LUA = """
local now = tonumber(ARGV[1])
local function full(key, limit, expiry)
    local entry = redis.call('lindex', key, limit - 1)
    return entry and tonumber(entry) >= now - expiry
end
local function hit(key, limit, expiry)
    redis.call('lpush', key, ARGV[1])
    redis.call('ltrim', key, 0, limit - 1)
    redis.call('expire', key, expiry)
end
local function window(key, limit, expiry)
    local low, high, found = 0, math.min(limit, redis.call('llen', key)) - 1, nil
    while low <= high do
        local mid = math.floor((low + high) / 2)
        local value = tonumber(redis.call('lindex', key, mid))
        if value and value >= now - expiry then
            found = mid
            low = mid + 1
        else
            high = mid - 1
        end
    end
    if found then
        return {redis.call('lindex', key, found), found + 1}
    end
    return {ARGV[1], 0}
end
local ml, me, sl, se = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local outcome = 0
if full(KEYS[1], ml, me) then
    outcome = 1
elseif full(KEYS[2], sl, se) then
    outcome = 2
else
    hit(KEYS[2], sl, se)
    hit(KEYS[1], ml, me)
end
local m, s = window(KEYS[1], ml, me), window(KEYS[2], sl, se)
return {outcome, m[1], m[2], s[1], s[2]}
"""


class _MemoryWindows:
    """Both windows of every identity in this process: deques of timestamps, oldest first."""

    SWEEP_SECONDS = 60.0

    def __init__(self) -> None:
        self.windows: dict[str, deque[float]] = {}
        self.expiries: dict[str, int] = {}
        self.next_sweep = time.time() + self.SWEEP_SECONDS

    def _window(self, key: str, expiry: int, now: float) -> deque[float]:
        entries = self.windows.get(key)
        if entries is None:
            entries = self.windows[key] = deque()
            self.expiries[key] = expiry
        cutoff = now - expiry
        while entries and entries[0] < cutoff:
            entries.popleft()
        return entries

    def step(self, minute: RateLimitItem, second: RateLimitItem, identity: str) -> Step:
        now = time.time()
        if now >= self.next_sweep:
            self._sweep(now)
        m = self._window(minute.key_for(identity), minute.get_expiry(), now)
        s = self._window(second.key_for(identity), second.get_expiry(), now)
        if len(m) >= minute.amount:
            outcome = BLOCKED_BY_MINUTE
        elif len(s) >= second.amount:
            outcome = BLOCKED_BY_SECOND
        else:
            outcome = ADMITTED
            s.append(now)
            m.append(now)
        return (outcome, m[0] if m else now, len(m), s[0] if s else now, len(s))

    def _sweep(self, now: float) -> None:
        """Forget identities whose entries have all expired (they would otherwise stay forever)."""
        self.next_sweep = now + self.SWEEP_SECONDS
        for key in [k for k, e in self.windows.items() if not e or e[-1] < now - self.expiries[k]]:
            del self.windows[key]
            del self.expiries[key]


class RateLimiter:
    def __init__(self, storage: Storage, *, fail_open: bool, max_wait: float = 0.25) -> None:
        self.storage = storage
        self.strategy = MovingWindowRateLimiter(storage)  # for the throttles
        self.fail_open = fail_open
        self.max_wait = max_wait
        self.memory: _MemoryWindows | None = None
        self.script: Any = None
        if isinstance(storage, RedisStorage):
            # The storage's own client and key prefix (`limits` keeps them on its bridge).
            bridge: Any = storage.bridge
            self.script = bridge.get_connection().register_script(_STEP_LUA)
            self.redis_key = bridge.prefixed_key
        else:
            self.memory = _MemoryWindows()

    async def check(self, identity: str, policy: Policy) -> Decision | None:
        """Count one request for ``identity``. None when the storage failed and we fail open."""
        minute = RateLimitItemPerMinute(policy.per_minute)
        second = RateLimitItemPerSecond(policy.per_second)
        try:
            return await self._check(identity, minute, second)
        except Exception as exc:
            if self.fail_open:
                log.warning("ratelimit_storage_unavailable", error=repr(exc), admitted=True)
                return None
            raise LimiterUnavailable(str(exc)) from exc

    async def _step(self, identity: str, minute: RateLimitItem, second: RateLimitItem) -> Step:
        if self.memory is not None:
            return self.memory.step(minute, second, identity)
        keys = [self.redis_key(minute.key_for(identity)), self.redis_key(second.key_for(identity))]
        args = [time.time(), minute.amount, minute.get_expiry(), second.amount, second.get_expiry()]
        outcome, m_oldest, m_count, s_oldest, s_count = await self.script(keys=keys, args=args)
        return (int(outcome), float(m_oldest), int(m_count), float(s_oldest), int(s_count))

    async def _check(self, identity: str, minute: RateLimitItem, second: RateLimitItem) -> Decision:
        deadline = time.time() + self.max_wait
        while True:
            outcome, m_oldest, m_count, s_oldest, s_count = await self._step(
                identity, minute, second
            )
            m_reset = m_oldest + minute.get_expiry()
            m_remaining = minute.amount - m_count
            s_reset = s_oldest + second.get_expiry()
            s_remaining = second.amount - s_count
            if outcome == ADMITTED:
                tighter = (
                    (m_reset, m_remaining) if m_remaining <= s_remaining else (s_reset, s_remaining)
                )
                return Decision(
                    admitted=True,
                    limit=minute.amount,
                    remaining=max(0, tighter[1]),
                    reset=math.ceil(tighter[0]),
                    retry_after=0,
                )
            frees_at = m_reset if outcome == BLOCKED_BY_MINUTE else s_reset
            now = time.time()
            if frees_at > deadline:
                reset = max(frees_at, now)
                return Decision(
                    admitted=False,
                    limit=minute.amount,
                    remaining=0,
                    reset=math.ceil(reset),
                    retry_after=max(1, math.ceil(reset - now)),
                )
            await asyncio.sleep(max(0.0, frees_at - now) + 0.001)


class Throttle:
    """Counting failures (logins) or attempts (sign-ups) in one rolling window."""

    def __init__(self, limiter: RateLimiter, amount: int, window_seconds: int) -> None:
        self.limiter = limiter
        self.item = RateLimitItemPerSecond(amount, window_seconds)

    async def blocked(self, identity: str) -> int | None:
        """Seconds until ``identity`` may try again, or None when it may try now."""
        try:
            if await self.limiter.strategy.test(self.item, identity):
                return None
            stats = await self.limiter.strategy.get_window_stats(self.item, identity)
        except Exception as exc:
            if self.limiter.fail_open:
                log.warning("throttle_storage_unavailable", error=repr(exc))
                return None
            raise LimiterUnavailable(str(exc)) from exc
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def count(self, identity: str) -> None:
        try:
            await self.limiter.strategy.hit(self.item, identity)
        except Exception as exc:
            log.warning("throttle_storage_unavailable", error=repr(exc))

    async def clear(self, identity: str) -> None:
        try:
            await self.limiter.strategy.clear(self.item, identity)
        except Exception as exc:
            log.warning("throttle_storage_unavailable", error=repr(exc))
