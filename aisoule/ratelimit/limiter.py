"""Per-key rate limits, two rolling windows enforced together, on the `limits` library.

Both windows are moving windows (a request counts for exactly 60 s and 1 s). The order of the
steps matters: the minute window is only *tested* first, so requests it would refuse never fill the
second window; then the second window and the minute window are each *hit* atomically (a Lua script
on Redis), so no two processes can admit the 101st request of a minute between them.

A request refused by either window less than ``max_wait`` before that window's oldest entry expires
is held until then and tried again (as nginx's limit_req delay does): a client sending steadily gets
its whole quota in every rolling minute and second instead of losing slots to the timing of its
retries.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

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


class RateLimiter:
    def __init__(self, storage: Storage, *, fail_open: bool, max_wait: float = 0.25) -> None:
        self.storage = storage
        self.strategy = MovingWindowRateLimiter(storage)
        self.fail_open = fail_open
        self.max_wait = max_wait

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

    async def _check(self, identity: str, minute: RateLimitItem, second: RateLimitItem) -> Decision:
        s = self.strategy
        deadline = time.time() + self.max_wait
        while True:
            if not await s.test(minute, identity):
                blocked_by = minute
            elif not await s.hit(second, identity):
                blocked_by = second
            elif not await s.hit(minute, identity):
                # another process took the last minute slot between test and hit
                return await self._refused(identity, minute, blocked_by=minute)
            else:
                break
            frees_at = (await s.get_window_stats(blocked_by, identity)).reset_time
            if frees_at > deadline:
                return await self._refused(identity, minute, blocked_by=blocked_by)
            await asyncio.sleep(max(0.0, frees_at - time.time()) + 0.001)
        m = await s.get_window_stats(minute, identity)
        sec = await s.get_window_stats(second, identity)
        tighter = m if m.remaining <= sec.remaining else sec
        return Decision(
            admitted=True,
            limit=minute.amount,
            remaining=max(0, tighter.remaining),
            reset=math.ceil(tighter.reset_time),
            retry_after=0,
        )

    async def _refused(
        self, identity: str, minute: RateLimitItem, blocked_by: RateLimitItem
    ) -> Decision:
        stats = await self.strategy.get_window_stats(blocked_by, identity)
        now = time.time()
        reset = max(stats.reset_time, now)
        return Decision(
            admitted=False,
            limit=minute.amount,
            remaining=0,
            reset=math.ceil(reset),
            retry_after=max(1, math.ceil(reset - now)),
        )


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
