"""The limiter's one step on both windows, in memory and on Redis (skipped when Redis is absent)."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from aisoule.ratelimit.limiter import Decision, Policy, RateLimiter, make_storage

REDIS_URL = os.environ.get("AISOULE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _run(url: str | None, policy: Policy, n: int) -> list[Decision | None]:
    async def go() -> list[Decision | None]:
        limiter = RateLimiter(make_storage(url), fail_open=False, max_wait=0)
        identity = f"test:{uuid.uuid4()}"  # fresh windows, nothing else touched
        return [await limiter.check(identity, policy) for _ in range(n)]

    return asyncio.run(go())


def _redis_up() -> bool:
    async def ping() -> bool:
        storage = make_storage(REDIS_URL)
        try:
            return bool(await storage.check())
        except Exception:
            return False

    return asyncio.run(ping())


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_both_windows_in_one_step(backend: str) -> None:
    if backend == "redis" and not _redis_up():
        pytest.skip("no Redis at " + REDIS_URL)
    url = REDIS_URL if backend == "redis" else None
    # The second window refuses the 11th request of a burst.
    burst = _run(url, Policy(100, 10), 12)
    assert all(d is not None for d in burst)
    decisions = [d for d in burst if d is not None]
    assert [d.admitted for d in decisions] == [True] * 10 + [False] * 2
    assert [d.remaining for d in decisions[:10]] == list(range(9, -1, -1))
    assert all(d.limit == 100 for d in decisions)
    assert decisions[-1].retry_after == 1 and decisions[-1].headers()["Retry-After"] == "1"
    # The minute window refuses the 6th, and a refused request fills neither window.
    minute = [d for d in _run(url, Policy(5, 10), 8) if d is not None]
    assert [d.admitted for d in minute] == [True] * 5 + [False] * 3
    assert [d.remaining for d in minute[:5]] == [4, 3, 2, 1, 0]
    assert 59 <= minute[-1].retry_after <= 60
