"""messages.enqueue_batch and its batch task, at the service level: N queued messages written in
one statement, one task that sends each exactly once (checked at the emulator), two runs of the
same batch at once sending nothing twice, and a crash's leftovers reconciled.

No HTTP endpoint takes a batch yet (campaigns will call enqueue_batch), so the test process opens
its own engine and Runtime on the database of a real `aisoule serve` and runs the task function
itself; the messages go to that server's embedded emulator over HTTP, as a worker's would.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select

from aisoule import queue, runtime
from aisoule.accounts import service as accounts
from aisoule.config import Settings
from aisoule.db.engine import create_engine, create_sessionmaker
from aisoule.kit.time import utcnow
from aisoule.messages import service, tasks
from aisoule.models import Message
from tests.conftest import signup
from tests.servers import TEST_SECRET, Server, make_server, pg_url, reset_postgres, sibling_postgres

BATCH = 500


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def batch_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server whose own reconciler stays out of the way (the tests run theirs), whose emulator
    takes 1,000 messages a second and posts no status webhooks (nothing moves a message past
    ``accepted`` behind the test's back)."""
    url: str | None = None
    if request.param == "postgresql":
        try:
            url = sibling_postgres(pg_url(), "batch")
            reset_postgres(url)
        except Exception as exc:  # a failure, never a skip: CI must have PostgreSQL
            pytest.fail(f"PostgreSQL is not reachable at {pg_url()}: {exc!r}", pytrace=False)
    srv = make_server(
        request.param,
        tmp_path_factory.mktemp("batch"),
        database_url=url,
        AISOULE_RECONCILE_SECONDS="3600",
        AISOULE_EMULATOR_THROUGHPUT_PER_SECOND="1000",
        AISOULE_EMULATOR_WEBHOOK_URL="http://127.0.0.1:9/",
        AISOULE_EMULATOR_WEBHOOK_RETRIES="0",
    )
    srv.cli("migrate")
    srv.start()
    yield srv
    srv.stop()


@dataclass
class Sandbox:
    server: Server
    workspace_id: str
    account_id: str

    def sent_to(self, phones: set[str]) -> list[str]:
        """The recipients (digits) of every message the emulator got for these phones."""
        r = httpx.get(f"{self.server.url}/emulator/_emulator/messages", timeout=30)
        assert r.status_code == 200, r.text
        return [m["to"] for m in r.json()["data"] if "+" + m["to"] in phones]


@pytest.fixture
def sandbox(batch_server: Server) -> Sandbox:
    """A fresh workspace and its sandbox account, paced at 1,000 messages a second."""
    client, data, _, _ = signup(batch_server)
    try:
        account = next(
            a
            for a in client.get("/api/accounts").json()["data"]["accounts"]
            if a["provider"] == "emulator"
        )
        r = client.put(f"/api/accounts/{account['id']}", json={"throughput": 1000})
        assert r.status_code == 200, r.text
    finally:
        client.close()
    return Sandbox(batch_server, data["workspace"]["id"], account["id"])


@dataclass
class Harness:
    rt: runtime.Runtime
    statements: list[str]
    enqueued: list[tuple[str, tuple[Any, ...]]]


@asynccontextmanager
async def harness(server: Server) -> AsyncIterator[Harness]:
    """An engine and a Runtime on the server's database, built as the server builds its own;
    statements counted; tasks recorded instead of sent to a broker."""
    settings = Settings(
        env="test",
        database_url=server.database_url,
        data_dir=server.data_dir / "var",
        secret_key=TEST_SECRET,
        emulator=f"{server.url}/emulator",
    )
    engine = create_engine(settings)
    h = Harness(runtime.build(settings, create_sessionmaker(engine)), [], [])

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        h.statements.append(statement)

    async def record(task: str, args: tuple[Any, ...]) -> None:
        h.enqueued.append((task, args))

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    runtime.install(h.rt)
    queue.install(record)
    try:
        yield h
    finally:
        queue.install(None)
        runtime.install(None)
        await h.rt.providers.close()
        await engine.dispose()


def _phones(n: int) -> list[str]:
    base = random.randrange(10**7, 9 * 10**7)
    return [f"+9199{base + i:08d}" for i in range(n)]


async def _enqueue(h: Harness, sb: Sandbox, phones: list[str]) -> list[str]:
    """enqueue_batch in a session of its own, committed as a request would: the message ids.
    Checks it took one statement and scheduled one task naming exactly these messages."""
    import uuid

    async with h.rt.sessionmaker() as session:
        account = await accounts.get_by_id(session, uuid.UUID(sb.account_id))
        assert account is not None
        items = [
            service.BatchItem(
                contact_id=None,
                phone=p,
                payload={
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "to": p.lstrip("+"),
                    "type": "text",
                    "text": {"body": f"Offer for {p}", "preview_url": False},
                },
                preview=f"Offer for {p}",
                recipient_ref=f"r{i}",
            )
            for i, p in enumerate(phones)
        ]
        h.statements.clear()
        h.enqueued.clear()
        # No campaign_id: a campaign's messages are its dispatcher's (campaigns/engine.py), and
        # the messages reconciler exercised here leaves them alone.
        ids = await service.enqueue_batch(session, uuid.UUID(sb.workspace_id), account, items)
        written = list(h.statements)
        await session.commit()
        await queue.flush_after_commit(session)
    assert len(written) == 1 and written[0].lstrip().upper().startswith("INSERT INTO MESSAGES")
    assert h.enqueued == [(queue.SEND_BATCH, ([str(i) for i in ids],))]
    return [str(i) for i in ids]


async def _statuses(h: Harness, ids: list[str]) -> dict[str, tuple[str, str | None, int]]:
    import uuid

    async with h.rt.sessionmaker() as session:
        rows = await session.execute(
            select(Message.id, Message.status, Message.wamid, Message.attempts).where(
                Message.id.in_([uuid.UUID(i) for i in ids])
            )
        )
        return {str(r.id): (r.status, r.wamid, r.attempts) for r in rows}


def test_a_batch_of_500_is_one_insert_and_each_message_is_sent_once(sandbox: Sandbox) -> None:
    phones = _phones(BATCH)

    async def run() -> None:
        async with harness(sandbox.server) as h:
            ids = await _enqueue(h, sandbox, phones)
            assert {s for s, _, _ in (await _statuses(h, ids)).values()} == {"queued"}
            ((_, (batch,)),) = h.enqueued
            await tasks.send_batch(batch)
            states = await _statuses(h, ids)
            assert {s for s, _, _ in states.values()} == {"accepted"}, states
            assert len({w for _, w, _ in states.values()}) == BATCH
            assert {a for _, _, a in states.values()} == {1}

    asyncio.run(run())
    sent = sandbox.sent_to(set(phones))
    assert sorted(sent) == sorted(p.lstrip("+") for p in phones)  # each once, none missing


def test_two_runs_of_the_same_batch_send_nothing_twice(sandbox: Sandbox) -> None:
    phones = _phones(200)

    async def run() -> None:
        async with harness(sandbox.server) as h:
            ids = await _enqueue(h, sandbox, phones)
            # Two workers given the same task (a redelivery), one walking it backwards: every
            # chunk is contended.
            await asyncio.gather(tasks.send_batch(ids), tasks.send_batch(ids[::-1]))
            states = await _statuses(h, ids)
            assert {s for s, _, _ in states.values()} == {"accepted"}, states
            assert {a for _, _, a in states.values()} == {1}  # claimed once each

    asyncio.run(run())
    sent = sandbox.sent_to(set(phones))
    assert len(sent) == len(phones) and set(sent) == {p.lstrip("+") for p in phones}


def test_a_crash_leaves_nothing_unaccounted_for(sandbox: Sandbox) -> None:
    """A worker claimed a chunk and died before sending it; the rest of the batch was never
    claimed. The reconciler marks the claimed ones ``unknown`` (never resent blindly) and hands
    the queued ones to a batch task, which sends each once."""
    phones = _phones(120)

    async def run() -> None:
        import uuid

        async with harness(sandbox.server) as h:
            ids = await _enqueue(h, sandbox, phones)
            async with h.rt.sessionmaker() as session:
                claimed = await service.claim(session, [uuid.UUID(i) for i in ids[:50]])
                await session.commit()
            assert len(claimed) == 50
            # The reconciler, as it runs some minutes later: past the sending lease.
            due = await tasks.due_for_sending(h.rt, now=utcnow() + timedelta(minutes=5))
            assert set(ids[50:]) <= set(due) and not set(ids[:50]) & set(due)
            states = await _statuses(h, ids)
            assert {states[i][0] for i in ids[:50]} == {"unknown"}
            assert {states[i][0] for i in ids[50:]} == {"queued"}
            await tasks.send_batch(due)
            states = await _statuses(h, ids)
            assert {states[i][0] for i in ids[50:]} == {"accepted"}
            assert {states[i][0] for i in ids[:50]} == {"unknown"}

    asyncio.run(run())
    sent = sandbox.sent_to(set(phones))
    assert sorted(sent) == sorted(p.lstrip("+") for p in phones[50:])
