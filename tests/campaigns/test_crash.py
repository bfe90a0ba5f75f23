"""The crash test: PostgreSQL, Redis Streams, two `aisoule worker` processes; one of them, drawn
at random, is killed (SIGKILL) at random moments of the campaign's progress at least ten times
while it runs, and started again at once each time. The emulator must have received no message
twice, every recipient must end in one stats bucket (none pending, none lost), and the campaign
must complete.

Correctness rests on the database, not the queue: recipients and messages are claimed atomically,
a dispatcher's lease runs out when it dies and the reconciler starts another, and a send a dead
worker left ``sending`` becomes ``unknown`` (never resent). Every wait polls for a condition
against a deadline."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from aisoule.campaigns import status as cst
from tests.campaigns.kit import (
    add_contacts,
    adds_up,
    campaign_of,
    local_runtime,
    new_campaign,
    open_shop,
    phones,
    recipients_of,
    stats_of,
)
from tests.servers import AISOULE, Server, make_server, pg_url, sibling_postgres

T = TypeVar("T")
REDIS = "redis://127.0.0.1:6379/5"
SIZE = 1000
PACE = 200  # messages a second: about 5 s of sending, stretched by each kill
KILLS = 10
# A kill comes once this many more recipients were answered (left pending) since the previous
# one, drawn at random each time: a random moment of the campaign's progress rather than of the
# clock, so a slow machine delays the kills instead of letting the campaign finish first.
STEP = (25, 60)
POLL = 0.05
READY = b"aisoule worker: running tasks"


class Workers:
    def __init__(self, server: Server, tmp: Path) -> None:
        self.env = {**server.env, "AISOULE_PORT": str(server.port)}
        self.server, self.tmp = server, tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.started = 0

    def spawn(self) -> tuple[subprocess.Popen[bytes], Path]:
        self.started += 1
        path = self.tmp / f"worker-{self.started}.log"
        with path.open("wb") as log:
            proc = subprocess.Popen(
                [*AISOULE, "worker"],
                env=self.env,
                cwd=self.server.data_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return proc, path

    def start(self, n: int) -> None:
        for _ in range(n):
            proc, path = self.spawn()
            self.procs.append(proc)
            self.logs.append(path)

    def kill_and_restart(self, i: int) -> None:
        self.procs[i].kill()  # SIGKILL: no shutdown, no acknowledgement
        self.procs[i].wait(10)
        self.procs[i], self.logs[i] = self.spawn()  # at once

    def ready(self) -> bool:
        """Every worker is consuming tasks (its broker started), none has died by itself."""
        for proc, path in zip(self.procs, self.logs, strict=True):
            assert proc.poll() is None, f"{path.name} exited: {path.read_bytes()[-2000:]!r}"
            if READY not in path.read_bytes():
                return False
        return True

    def stop_all(self) -> None:
        for p in self.procs:  # nothing to shut down cleanly: the test is over
            if p.poll() is None:
                p.kill()
            p.wait(10)


@pytest.fixture
def crash_env(tmp_path: Path) -> Iterator[tuple[Server, Workers]]:
    try:
        redis.Redis.from_url(REDIS).flushdb()  # this test's own Redis database
    except redis.RedisError as exc:  # a failure, never a skip
        pytest.fail(f"Redis is not reachable at {REDIS}: {exc!r}", pytrace=False)
    url = sibling_postgres(pg_url(), "crash")
    srv = make_server(
        "postgresql",
        tmp_path,
        database_url=url,
        AISOULE_WORKER_MODE="external",
        AISOULE_REDIS_URL=REDIS,
        AISOULE_RECONCILE_SECONDS="0.5",
        # A dead dispatcher's lease runs out after 2 s; its sends left "sending" become unknown
        # after 5 s (longer than any send can take with these timeouts).
        AISOULE_CAMPAIGN_LEASE_SECONDS="2",
        AISOULE_CAMPAIGN_SENDING_STALE_SECONDS="5",
        AISOULE_WHATSAPP_CONNECT_TIMEOUT="1",
        AISOULE_WHATSAPP_READ_TIMEOUT="2",
        AISOULE_EMULATOR_THROUGHPUT_PER_SECOND="1000",
        AISOULE_EMULATOR_WEBHOOK_LATENCY_MS="10",
        # Claim 0.3 s of the pace ahead: a kill leaves at most that many sends unknown.
        AISOULE_CAMPAIGN_IN_FLIGHT_SECONDS="0.3",
        # A small pool per process: the server and two workers share PostgreSQL's connections.
        AISOULE_DATABASE_POOL_SIZE="8",
        # Meta's sent and delivered webhooks, not read: the server (which is the emulator too)
        # takes two webhooks a message instead of three, so the workers are what is measured.
        AISOULE_EMULATOR_AUTO_READ="false",
    )
    srv.cli("migrate")
    srv.start()
    workers = Workers(srv, tmp_path)
    workers.start(2)
    try:
        yield srv, workers
    finally:
        workers.stop_all()
        srv.stop()


async def poll(check: Callable[[], Awaitable[T | None]], what: str, within: float) -> T:
    """``check()`` until it answers something truthy, every POLL seconds, for ``within`` s."""
    deadline = time.monotonic() + within
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(POLL)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def test_killing_workers_loses_and_duplicates_nothing(crash_env: tuple[Server, Workers]) -> None:
    server, workers = crash_env
    shop = open_shop(server, throughput=PACE)
    numbers = phones(SIZE)
    rng = random.Random()
    kills: list[tuple[int, int]] = []  # (worker killed, recipients answered then)

    async def scenario() -> tuple[dict[str, Any], Counter[str], set[str]]:
        async with local_runtime(server, database_pool_size=2) as rt:
            ids = await add_contacts(rt, shop, numbers)

            async def ready() -> bool:
                return workers.ready()

            await poll(ready, "both workers to consume tasks", 60)
            cid = await new_campaign(rt, shop, {"contact_pks": sorted(ids.values())})

            async def answered() -> tuple[str, int]:
                campaign, stats = await campaign_of(rt, cid), await stats_of(rt, cid)
                return campaign.status, stats["total"] - stats["pending"]

            mark = 0
            while len(kills) < KILLS:
                target = mark + rng.randint(*STEP)

                async def reached(target: int = target) -> tuple[str, int] | None:
                    status, n = await answered()
                    return (status, n) if n >= target or status != cst.RUNNING else None

                status, mark = await poll(reached, f"{target} recipients answered", 60)
                assert status == cst.RUNNING, f"{status} after only {len(kills)} kills"
                # Either worker, whether busy or still starting after its own restart.
                i = rng.randrange(len(workers.procs))
                workers.kill_and_restart(i)
                kills.append((i, mark))

            async def completed() -> bool:
                return (await answered())[0] == cst.COMPLETED

            await poll(completed, "the campaign to complete", 90)

            async def settled() -> tuple[dict[str, Any], Counter[str], set[str]] | None:
                # Status webhooks may still move recipients forward: read until the counters
                # and the rows agree.
                stats = await stats_of(rt, cid)
                rows = await recipients_of(rt, cid)
                statuses = Counter(r.status for r in rows)
                if dict(statuses) != {k: stats[k] for k in statuses}:
                    return None
                sent = {r.phone for r in rows if r.status in ("sent", "delivered", "read")}
                return stats, statuses, sent

            return await poll(settled, "the counters to agree with the recipients", 30)

    stats, statuses, delivered = asyncio.run(scenario())
    assert len(kills) >= KILLS, kills
    sent = Counter("+" + m["to"] for m in shop.sent(set(numbers)))
    assert [p for p, n in sent.items() if n > 1] == []  # no duplicates at Meta
    assert stats["total"] == SIZE and adds_up(stats) and stats["pending"] == 0, stats
    assert sum(statuses.values()) == SIZE and not statuses.keys() & {"pending", "queued"}
    assert delivered <= set(sent)  # what we count as sent, Meta got
    # What Meta got and we do not count as sent is only what a kill left unknown.
    assert len(set(sent) - delivered) <= stats["unknown"], (stats, len(sent))
