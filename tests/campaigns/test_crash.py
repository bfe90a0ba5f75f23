"""The crash test: PostgreSQL, Redis Streams, two `aisoule worker` processes; one of them is
killed (SIGKILL) at random moments at least ten times while a campaign runs, and started again
each time. The emulator must have received no message twice, every recipient must end in one
stats bucket (none pending, none lost), and the campaign must complete.

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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    wait_for,
)
from tests.servers import AISOULE, Server, make_server, pg_url, sibling_postgres

REDIS = "redis://127.0.0.1:6379/5"
SIZE = 3000
PACE = 150  # messages a second: about 20 s of sending, long enough for ten kills
KILLS = 10


class Workers:
    def __init__(self, server: Server, tmp: Path) -> None:
        self.env = {**server.env, "AISOULE_PORT": str(server.port)}
        self.server, self.tmp = server, tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def spawn(self) -> subprocess.Popen[bytes]:
        self.started += 1
        log = (self.tmp / f"worker-{self.started}.log").open("wb")
        return subprocess.Popen(
            [*AISOULE, "worker"],
            env=self.env,
            cwd=self.server.data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
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
        AISOULE_DATABASE_POOL_SIZE="10",
    )
    srv.cli("migrate")
    srv.start()
    workers = Workers(srv, tmp_path)
    workers.procs = [workers.spawn(), workers.spawn()]
    try:
        yield srv, workers
    finally:
        workers.stop_all()
        srv.stop()


def test_killing_workers_loses_and_duplicates_nothing(crash_env: tuple[Server, Workers]) -> None:
    server, workers = crash_env
    shop = open_shop(server, throughput=PACE)
    numbers = phones(SIZE)

    async def prepare() -> Any:
        async with local_runtime(server) as rt:
            ids = await add_contacts(rt, shop, numbers)
            return await new_campaign(rt, shop, {"contact_pks": sorted(ids.values())})

    cid = asyncio.run(prepare())

    async def status() -> str:
        async with local_runtime(server) as rt:
            return (await campaign_of(rt, cid)).status

    rng = random.Random()
    kills = 0
    deadline = time.monotonic() + 120
    # The campaign is running once the first message reached the emulator.
    wait_for(lambda: shop.sent(set(numbers)), "the first message", timeout=30)
    while kills < KILLS and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.3, 1.2))  # a random moment, not a wait for anything
        assert asyncio.run(status()) == cst.RUNNING, f"finished after only {kills} kills"
        i = rng.randrange(len(workers.procs))
        workers.procs[i].kill()  # SIGKILL: no shutdown, no acknowledgement
        workers.procs[i].wait(10)
        workers.procs[i] = workers.spawn()
        kills += 1
    assert kills >= KILLS

    wait_for(lambda: asyncio.run(status()) == cst.COMPLETED, "the campaign to complete", 120)

    async def outcome() -> tuple[dict[str, Any], Counter[str], set[str]]:
        async with local_runtime(server) as rt:
            rows = await recipients_of(rt, cid)
            return (
                await stats_of(rt, cid),
                Counter(r.status for r in rows),
                {r.phone for r in rows if r.status in ("sent", "delivered", "read")},
            )

    stats, statuses, delivered = asyncio.run(outcome())
    sent = Counter("+" + m["to"] for m in shop.sent(set(numbers)))
    assert [p for p, n in sent.items() if n > 1] == []  # no duplicates at Meta
    assert stats["total"] == SIZE and adds_up(stats) and stats["pending"] == 0, stats
    assert sum(statuses.values()) == SIZE and not statuses.keys() & {"pending", "queued"}
    assert dict(statuses) == {k: stats[k] for k in statuses}, (statuses, stats)
    assert delivered <= set(sent)  # what we count as sent, Meta got
    # What Meta got and we do not count as sent is only what a kill left unknown.
    assert len(set(sent) - delivered) <= stats["unknown"], (stats, len(sent))
