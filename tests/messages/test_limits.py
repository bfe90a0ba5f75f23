"""Meta's limits on single sends, over real HTTP against a server and its embedded emulator, whose
faults the test plans (``/_emulator/faults``): 130429 and 5xx retried with backoff and then sent;
131056 retried after the pair period; 131049 retried no sooner than 24 h, within its budget, then
failed with Meta's code (time travels in this process: its own Runtime on the server's database,
the clock frozen); a timeout leaves the message ``unknown`` until the status webhooks settle it by
biz_opaque_callback_data; five quick messages to one person never exceed the pair rate at the
emulator. Nothing is ever accepted twice (counted at the emulator)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import redis

from aisoule import queue, runtime
from aisoule.config import Settings
from aisoule.db.engine import create_engine, create_sessionmaker
from aisoule.kit.time import clock
from aisoule.messages import tasks
from aisoule.whatsapp.pacing import Pacer
from tests.conftest import ALL_SCOPES, signup
from tests.servers import TEST_SECRET, Server, make_server, pg_url, sibling_postgres
from tests.waiting import wait_for

CUSTOMER = "919811122233"
PAIR_PERIOD = 1.2  # ours (AISOULE_PAIR_PERIOD_SECONDS); the emulator's is 1.0 with no burst
READ_TIMEOUT = 2.0


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def limits_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    url: str | None = None
    if request.param == "postgresql":
        try:
            url = sibling_postgres(pg_url(), "limits")
        except Exception as exc:  # a failure, never a skip: CI must have PostgreSQL
            pytest.fail(f"PostgreSQL is not reachable at {pg_url()}: {exc!r}", pytrace=False)
    srv = make_server(
        request.param,
        tmp_path_factory.mktemp("limits"),
        database_url=url,
        AISOULE_RECONCILE_SECONDS="0.3",
        AISOULE_SEND_BACKOFF_BASE_SECONDS="0.2",
        AISOULE_SEND_BACKOFF_MAX_SECONDS="1",
        AISOULE_PAIR_PERIOD_SECONDS=str(PAIR_PERIOD),
        AISOULE_PAIR_BURST="1",
        AISOULE_WHATSAPP_READ_TIMEOUT=str(READ_TIMEOUT),
        AISOULE_EMULATOR_PAIR_BURST="1",
        AISOULE_EMULATOR_PAIR_PERIOD_SECONDS="1.0",
        AISOULE_EMULATOR_WEBHOOK_LATENCY_MS="20",
    )
    srv.cli("migrate")
    srv.start()
    yield srv
    srv.stop()


@dataclass
class Sandbox:
    server: Server
    api: httpx.Client
    phone_number_id: str

    def emulator(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(method, f"{self.server.url}/emulator/_emulator/{path}", timeout=30, **kw)
        assert r.status_code == 200, r.text
        return r.json()

    def plan(self, *rules: dict[str, Any]) -> None:
        self.emulator(
            "POST", "faults", json={"phone_number_id": self.phone_number_id, "rules": list(rules)}
        )

    def attempts(self) -> list[dict[str, Any]]:
        params = {"phone_number_id": self.phone_number_id}
        return list(self.emulator("GET", "attempts", params=params)["data"])

    def accepted(self) -> dict[str, Any]:
        return dict(
            self.emulator("GET", "accepted", params={"phone_number_id": self.phone_number_id})
        )

    def send(self, body: str = "Your order shipped") -> str:
        r = self.api.post(
            "/api/messages/send",
            json={"to": "+" + CUSTOMER, "type": "text", "text": {"body": body}},
        )
        assert r.status_code == 202, r.text
        return str(r.json()["data"]["message"]["id"])

    def message(self, message_id: str) -> dict[str, Any]:
        r = self.api.get(f"/api/messages/{message_id}")
        assert r.status_code == 200, r.text
        return dict(r.json()["data"]["message"])

    def until(self, message_id: str, *statuses: str, timeout: float = 20.0) -> dict[str, Any]:
        return dict(
            wait_for(
                lambda: (m := self.message(message_id))["status"] in statuses and m,
                f"message {message_id} to be {statuses}",
                timeout,
            )
        )

    def no_duplicates(self) -> None:
        accepted = self.accepted()
        assert accepted["duplicates"] == [], accepted["duplicates"]


@pytest.fixture
def sandbox(limits_server: Server) -> Iterator[Sandbox]:
    """A fresh workspace, its own sandbox number, and a customer who just wrote to it (so texts
    are inside the 24-hour window and only the planned faults get in their way)."""
    session, _, _, _ = signup(limits_server)
    r = session.post("/api/api-keys", json={"name": "limits", "scopes": ALL_SCOPES})
    assert r.status_code == 201, r.text
    api = httpx.Client(
        base_url=limits_server.url, headers={"X-API-Key": r.json()["data"]["api_key"]["key"]}
    )
    account = next(
        a
        for a in api.get("/api/accounts").json()["data"]["accounts"]
        if a["provider"] == "emulator"
    )
    sb = Sandbox(limits_server, api, account["phone_number_id"])
    sb.emulator(
        "POST",
        "inbound",
        json={"phone_number_id": sb.phone_number_id, "from": CUSTOMER, "text": "hello?"},
    )
    wait_for(
        lambda: api.get("/api/messages", params={"direction": "inbound"}).json()["data"]["total"],
        "the customer's message",
    )
    try:
        yield sb
    finally:
        api.close()
        session.close()


@pytest.mark.parametrize(
    ("code", "meta_code", "times"), [(130429, 130429, 2), (500, 131000, 1), (503, 2, 1)]
)
def test_throughput_and_server_errors_are_retried_then_sent(
    sandbox: Sandbox, code: int, meta_code: int, times: int
) -> None:
    sandbox.plan({"code": code, "times": times})
    mid = sandbox.send()
    msg = sandbox.until(mid, "sent", "delivered", "read")
    assert msg["attempts"] == times + 1 and msg["error"] is None
    attempts = sandbox.attempts()
    assert [a["answer"] for a in attempts] == [meta_code] * times + ["accepted"]
    # Backoff: each retry came after a pause, not in a tight loop.
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
    assert all(g >= 0.09 for g in gaps), gaps
    sandbox.no_duplicates()


def test_a_permanent_error_is_stored_with_metas_code_and_details(sandbox: Sandbox) -> None:
    sandbox.plan({"code": 131026, "mode": "sync"})
    msg = sandbox.until(sandbox.send(), "failed")
    assert msg["error"]["code"] == 131026
    assert msg["error"]["details"] == "Message Undeliverable."
    assert msg["error"]["retryable"] is False
    assert len(sandbox.attempts()) == 1


def test_pair_rate_refusal_is_retried_after_the_pair_period(sandbox: Sandbox) -> None:
    sandbox.plan({"code": 131056, "times": 1})
    mid = sandbox.send()
    sandbox.until(mid, "sent", "delivered", "read")
    first, second = sandbox.attempts()
    assert (first["answer"], second["answer"]) == (131056, "accepted")
    assert second["at"] - first["at"] >= PAIR_PERIOD
    sandbox.no_duplicates()


def test_five_quick_messages_to_one_person_never_exceed_the_pair_rate(sandbox: Sandbox) -> None:
    ids = [sandbox.send(f"part {n}") for n in range(5)]
    for mid in ids:
        sandbox.until(mid, "sent", "delivered", "read", timeout=40)
    pairs = sandbox.emulator("GET", "pairs", params={"phone_number_id": sandbox.phone_number_id})
    assert pairs["pair_rate_refusals"] == 0  # our pacer deferred, Meta never had to refuse
    (pair,) = pairs["data"]
    assert pair["count"] == 5 and pair["min_gap_seconds"] >= 1.0, pair
    # Deferrals never reached Meta: they cost no attempt.
    assert {sandbox.message(m)["attempts"] for m in ids} == {1}
    assert [a["answer"] for a in sandbox.attempts()] == ["accepted"] * 5
    sandbox.no_duplicates()


@pytest.mark.parametrize("latency_ms", [20, 3000])
def test_a_timed_out_send_is_unknown_until_its_status_webhook_settles_it(
    sandbox: Sandbox, latency_ms: int
) -> None:
    """The emulator takes the message but answers after our client gave up. Its webhooks arrive
    before the worker records ``unknown`` (20 ms) or after (3 s): either way the message takes
    their wamid by its biz_opaque_callback_data, ends ``read``, and is never sent again."""
    sandbox.emulator("POST", "config", json={"webhook_latency_ms": latency_ms})
    try:
        sandbox.plan({"code": "timeout", "delay_ms": int(READ_TIMEOUT * 1000) + 3000, "times": 1})
        mid = sandbox.send()
        if latency_ms > READ_TIMEOUT * 1000:
            assert sandbox.until(mid, "unknown")["wamid"] is None
        msg = sandbox.until(mid, "read", timeout=30)
        (row,) = sandbox.accepted()["data"]
        assert row["timed_out"] and row["biz_opaque_callback_data"] == mid
        assert msg["wamid"] == row["id"]
        assert [a["answer"] for a in sandbox.attempts()] == ["timeout"]
    finally:
        sandbox.emulator("POST", "config", json={"webhook_latency_ms": 20})


# -- 131049: a day later, in this process ---------------------------------------------------------


def _in_process(server: Server) -> runtime.Runtime:
    settings = Settings(
        env="test",
        database_url=server.database_url,
        data_dir=server.data_dir / "var",
        secret_key=TEST_SECRET,
        emulator=f"{server.url}/emulator",
        pair_period_seconds=PAIR_PERIOD,
    )
    return runtime.build(settings, create_sessionmaker(create_engine(settings)))


async def _a_day_later(server: Server, sent_at: datetime, message_id: str) -> None:
    """Run the reconciler and the sends it finds, as a worker would, just before and just after
    24 h from ``sent_at``: the message is not due before, and is sent once after."""
    rt = _in_process(server)
    enqueued: list[tuple[str, tuple[Any, ...]]] = []

    async def record(task: str, args: tuple[Any, ...]) -> None:
        enqueued.append((task, args))

    runtime.install(rt)
    queue.install(record)
    try:
        clock.freeze(sent_at + timedelta(hours=24) - timedelta(minutes=1))
        assert message_id not in await tasks.due_for_sending(rt, now=clock.frozen)
        clock.freeze(sent_at + timedelta(hours=24, minutes=6))
        due = await tasks.due_for_sending(rt, now=clock.frozen)
        assert message_id in due
        await tasks.send_batch([message_id])
    finally:
        clock.thaw()
        queue.install(None)
        runtime.install(None)
        await rt.providers.close()
        if rt.pacer is not None:
            await rt.pacer.close()


def _sent_at(sandbox: Sandbox) -> datetime:
    from datetime import UTC

    return datetime.fromtimestamp(sandbox.attempts()[0]["at"], UTC)


@pytest.mark.parametrize("mode", ["sync", "webhook"])
def test_marketing_limit_is_retried_no_sooner_than_a_day_then_failed(
    sandbox: Sandbox, mode: str
) -> None:
    """131049 as an error answer (sync) or, as Meta usually reports it, a ``failed`` status after
    accepting (webhook): queued again for 24 h, once (AISOULE_MARKETING_LIMIT_RETRIES=1), then
    failed with Meta's code."""
    sandbox.plan({"code": 131049, "mode": mode})
    mid = sandbox.send()
    held = wait_for(
        lambda: (
            (m := sandbox.message(mid))["status"] == "queued"
            and (m.get("error") or {}).get("code") == 131049
            and m
        ),
        "the 131049 to queue the message again",
    )
    assert held["error"]["retryable"] is True
    # The server's own reconciler runs every 0.3 s: nothing is sent again in the meantime.
    time.sleep(1.0)
    assert len(sandbox.attempts()) == 1
    asyncio.run(_a_day_later(sandbox.server, _sent_at(sandbox), mid))
    failed = sandbox.until(mid, "failed")
    assert failed["error"]["code"] == 131049
    assert failed["error"]["retryable"] is False
    assert failed["error"]["details"]
    answers = [a["answer"] for a in sandbox.attempts()]
    assert answers == ([131049, 131049] if mode == "sync" else ["accepted", "accepted"])
    if mode == "webhook":  # two sends of one message: a new wamid each, one ref
        rows = sandbox.accepted()["data"]
        assert len({r["id"] for r in rows}) == 2 and {
            r["biz_opaque_callback_data"] for r in rows
        } == {mid}


# -- the pair rate is one budget for every worker ----------------------------------------------


@pytest.fixture
def redis_url() -> str:
    url = "redis://127.0.0.1:6379/6"
    try:
        redis.Redis.from_url(url).ping()
    except redis.RedisError as exc:  # a failure, never a skip
        pytest.fail(f"Redis is not reachable at {url}: {exc!r}", pytrace=False)
    return url


def test_pair_slots_are_shared_through_redis(redis_url: str) -> None:
    async def run() -> None:
        a, b = Pacer(redis_url), Pacer(redis_url)
        number, person = f"pn{uuid.uuid4().hex}", "+919800000001"
        try:
            assert await a.pair(number, person, period=6.0) == 0.0
            wait = await b.pair(number, person, period=6.0)  # another worker, same pair
            assert 5.0 < wait <= 6.0 / 0.95
            assert await b.pair(number, "+919800000002", period=6.0) == 0.0  # another person
            # A burst of 3 allowed, the fourth deferred.
            other = f"pn{uuid.uuid4().hex}"
            got = [
                await (a if n % 2 else b).pair(other, person, period=6.0, burst=3) for n in range(4)
            ]
            assert got[:3] == [0.0, 0.0, 0.0] and got[3] > 0
        finally:
            await a.close()
            await b.close()

    asyncio.run(run())


def test_pair_slots_in_memory_without_redis() -> None:
    async def run() -> None:
        pacer = Pacer(None)
        assert await pacer.pair("pn", "+1", period=6.0) == 0.0
        assert await pacer.pair("pn", "+1", period=6.0) > 5.0
        assert await pacer.pair("pn", "+2", period=6.0) == 0.0
        assert await pacer.pair("pn", "+1", period=0) == 0.0  # pair pacing off

    asyncio.run(run())


def test_chunk_slots_are_spaced_and_shared_through_redis(redis_url: str) -> None:
    """One reservation per chunk: two workers' chunks from one number get slots one interval
    apart that never overlap, and a person twice in a chunk is deferred the second time."""

    async def run() -> None:
        a, b = Pacer(redis_url), Pacer(redis_url)
        number = f"pn{uuid.uuid4().hex}"
        people = [f"+9198000{n:05d}" for n in range(20)]
        try:
            t0 = time.monotonic()
            first = await a.slots(number, 100, people[:10], period=6.0)
            second = await b.slots(number, 100, people[10:], period=6.0)  # another worker
            elapsed = time.monotonic() - t0
            assert all(s.defer == 0 for s in first + second)
            interval = 1 / (100 * 0.95)
            for chunk in (first, second):
                gaps = [y.wait - x.wait for x, y in itertools.pairwise(chunk)]
                assert all(abs(g - interval) < 1e-5 for g in gaps), gaps
            # The second chunk starts after the first one's last slot (the waits are counted
            # from each script's own moment, at most ``elapsed`` apart).
            assert second[0].wait + elapsed >= first[-1].wait + interval * 0.99
            again = await a.slots(number, 100, [people[0], "+919812345678", people[0]], period=6.0)
            assert again[0].defer > 5.0 and again[2].defer > 5.0
            assert again[1].defer == 0 and again[1].wait >= 0
        finally:
            await a.close()
            await b.close()

    asyncio.run(run())


def test_chunk_slots_in_memory_without_redis() -> None:
    async def run() -> None:
        pacer = Pacer(None)
        got = await pacer.slots("pn", 10, ["+1", "+2", "+1"], period=6.0)
        assert got[0].wait == 0.0 and got[0].defer == 0.0
        assert abs(got[1].wait - 1 / (10 * 0.95)) < 0.01
        assert got[2].defer > 5.0  # the same person again within 6 s: deferred, no slot taken
        later = await pacer.slots("pn", 10, ["+3"], period=6.0)
        assert abs(later[0].wait - 2 / (10 * 0.95)) < 0.02

    asyncio.run(run())
