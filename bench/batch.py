"""``python -m bench.batch``: what sending costs per message, one at a time through
``POST /api/messages/send`` and 500 at a time through ``messages.enqueue_batch``, on PostgreSQL.

The app runs in this process (its lifespan, in-process worker and middleware, requests through
httpx's ASGI transport, so no socket between client and server), talking to a separate
``aisoule emulator`` that posts no status webhooks: the figures are the sending alone (request or
enqueue, claim, the call to Meta, the answer recorded), until every message is ``accepted``.
Statements are every one the app's pool sends, BEGIN and COMMIT included (see Counter). CPU is this process's
(app and client) and PostgreSQL's (its backends for the bench database and its shared processes).
Rounds alternate between the two paths; the table shows each path's median round. Prints a table
(the lead puts it in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import socket
import statistics
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event

from bench import cpu
from bench.env import BenchConfig, aisoule_bin, code_state
from bench.prepare import create_api_key, create_user, migrate, recreate_database

EMULATOR_PORT = 8192
DATABASE = "aisoule_bench_batch"


@dataclass
class Round:
    path: str
    messages: int
    statements: int
    app_cpu: float  # seconds
    pg_cpu: float
    wall: float


def _config(database: str = DATABASE) -> BenchConfig:
    base = os.environ.get("AISOULE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/")
    return BenchConfig(
        database_url=base.rsplit("/", 1)[0] + "/" + database,
        contacts=0,
        duration=0,
        warmup=0,
        connections=16,
        threads=1,
        workers=1,
    )


def _free(port: int) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"port {port} is taken")


class Counter:
    """Statements the app's pool sends. asyncpg's query logger sees what goes through its
    connection's own methods (BEGIN, COMMIT, executemany, the raw-driver hot paths) but not
    prepared statements run directly, which is how SQLAlchemy runs every other statement: those
    are counted at SQLAlchemy's cursor (its executemany is left to the logger, not counted twice).
    """

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, _query: Any) -> None:
        self.n += 1

    def attach(self, engine: Any) -> None:
        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.driver_connection.add_query_logger(self)

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _on_execute(*args: Any) -> None:
            if not args[-1]:  # executemany
                self.n += 1


async def _accepted(conn: asyncpg.Connection, ids: list[uuid.UUID], deadline: float) -> None:
    """Wait until every one of these messages left queued/sending (bounded)."""
    while True:
        left = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE id = ANY($1::uuid[])"
            " AND status IN ('queued', 'sending')",
            ids,
        )
        if left == 0:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{left} messages still unsent; see bench/results/batch-*.log")
        await asyncio.sleep(0.02)


async def _measure(
    path: str,
    counter: Counter,
    poll: asyncpg.Connection,
    database: str,
    run: Callable[[], Awaitable[list[uuid.UUID]]],
) -> Round:
    before_procs, n0 = cpu.snapshot(), counter.n
    t0, c0 = time.perf_counter(), time.process_time()
    ids = await run()
    await _accepted(poll, ids, time.monotonic() + 60)
    wall, app_cpu = time.perf_counter() - t0, time.process_time() - c0
    statements = counter.n - n0
    pg = cpu.usage(before_procs, cpu.snapshot(), {"bench": os.getpid()}, database)["postgres"]
    return Round(path, len(ids), statements, app_cpu, pg, wall)


async def _bench(cfg: BenchConfig, key: str, size: int, rounds: int) -> list[Round]:
    from aisoule import queue
    from aisoule.app import create_app
    from aisoule.config import Settings
    from aisoule.messages import service as messages
    from aisoule.models import WhatsAppAccount

    os.environ.update(cfg.app_env())
    app = create_app(Settings())
    counter = Counter()
    poll = await asyncpg.connect(cfg.asyncpg_dsn)
    async with app.router.lifespan_context(app):
        engine = app.state.engine
        counter.attach(engine)
        await engine.dispose()  # the pool's connections from now on carry the logger
        transport = httpx.ASGITransport(app=app)
        headers = {"X-API-Key": key}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers, timeout=60
        ) as http:
            phones = [f"+9198{n:08d}" for n in random.sample(range(10**7, 10**8), size)]
            for phone in phones:
                r = await http.post("/v1/contacts", json={"phone": phone})
                assert r.status_code in (200, 201), r.text
            account_row = await poll.fetchrow("SELECT id, workspace_id FROM whatsapp_accounts")
            await poll.execute("UPDATE whatsapp_accounts SET throughput = 1000")
            await poll.execute(
                "INSERT INTO conversations (workspace_id, account_id, contact_id,"
                " last_inbound_at, last_message_at) SELECT workspace_id, $1, id, now(), now()"
                " FROM contacts ON CONFLICT DO NOTHING",
                account_row["id"],
            )
            contacts = await poll.fetch("SELECT id, phone FROM contacts")
            sem = asyncio.Semaphore(16)

            async def single(n: int) -> list[uuid.UUID]:
                async def one(phone: str) -> uuid.UUID:
                    async with sem:
                        r = await http.post(
                            "/api/messages/send", json={"to": phone, "text": {"body": "Offer"}}
                        )
                    assert r.status_code == 202, r.text
                    return uuid.UUID(r.json()["data"]["message"]["id"])

                return list(await asyncio.gather(*(one(p) for p in phones[:n])))

            async def batch(n: int) -> list[uuid.UUID]:
                async with app.state.sessionmaker() as session:
                    account = await session.get(WhatsAppAccount, account_row["id"])
                    assert account is not None
                    items = [
                        messages.BatchItem(
                            contact_id=c["id"],
                            phone=c["phone"],
                            payload={
                                "messaging_product": "whatsapp",
                                "recipient_type": "individual",
                                "to": c["phone"].lstrip("+"),
                                "type": "text",
                                "text": {"body": "Offer", "preview_url": False},
                            },
                            preview="Offer",
                            recipient_ref=str(c["id"]),
                        )
                        for c in contacts[:n]
                    ]
                    ids = await messages.enqueue_batch(
                        session, account.workspace_id, account, items, campaign_id=uuid.uuid4()
                    )
                    await session.commit()
                    await queue.flush_after_commit(session)
                return ids

            # Warm-up: caches, prepared statements, the emulator's registration of the number.
            await _measure("warm-up", counter, poll, cfg.database_name, lambda: single(50))
            await _measure("warm-up", counter, poll, cfg.database_name, lambda: batch(50))
            results: list[Round] = []
            paths: list[tuple[str, Callable[[int], Awaitable[list[uuid.UUID]]]]] = [
                ("single", single),
                ("batch", batch),
            ]
            for i in range(rounds):
                for name, fn in paths if i % 2 == 0 else paths[::-1]:
                    results.append(
                        await _measure(
                            name, counter, poll, cfg.database_name, functools.partial(fn, size)
                        )
                    )
                    await asyncio.sleep(0.5)
    await poll.close()
    return results


def _median(rounds: list[Round], path: str) -> Round:
    mine = sorted((r for r in rounds if r.path == path), key=lambda r: r.app_cpu + r.pg_cpu)
    return mine[len(mine) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=500, help="messages per round and path (500)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per path (3)")
    p.add_argument(
        "--database", default=DATABASE, help=f"database name, DROPPED and recreated ({DATABASE})"
    )
    args = p.parse_args()
    cfg = _config(args.database)
    os.environ.update(
        AISOULE_EMULATOR=f"http://127.0.0.1:{EMULATOR_PORT}",
        AISOULE_SANDBOX_ACCOUNTS="true",
        AISOULE_EMULATOR_THROUGHPUT_PER_SECOND="1000",
        AISOULE_RECONCILE_SECONDS="3600",  # its statements would blur the counts
    )
    print(f"setting up database {cfg.database_name}", flush=True)
    asyncio.run(recreate_database(cfg))
    migrate(cfg)
    _free(EMULATOR_PORT)
    log_dir = Path("bench/results")
    log_dir.mkdir(parents=True, exist_ok=True)
    emulator = subprocess.Popen(
        [aisoule_bin(), "emulator", "--port", str(EMULATOR_PORT)],
        env=cfg.app_env(),
        stdout=(log_dir / "batch-emulator.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{EMULATOR_PORT}/_emulator/health").is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or emulator.poll() is not None:
                raise SystemExit("the emulator did not start; see bench/results/batch-emulator.log")
            time.sleep(0.1)
        create_user(cfg)  # the sandbox account is created with the workspace
        key = create_api_key(cfg)
        rounds = asyncio.run(_bench(cfg, key, args.size, args.rounds))
    finally:
        emulator.terminate()
        emulator.wait(10)
    lines = [
        f"Produced by `python -m bench.batch --size {args.size} --rounds {args.rounds}` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit `{code_state()['commit']}`, "
        f"PostgreSQL; {args.size} text messages per round and path, each path's median of "
        f"{args.rounds} rounds, until every message is `accepted` by a separate "
        "`aisoule emulator` (no status webhooks). Statements: every one the app's pool sent, "
        "BEGIN and COMMIT included. CPU: this process (app, in-process worker, httpx client "
        "through the ASGI transport) and PostgreSQL.",
        "",
        "| Path | messages | statements / msg | app CPU ms / msg | PostgreSQL CPU ms / msg "
        "| wall s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for path, title in (
        ("single", "POST /api/messages/send, one task each"),
        ("batch", "messages.enqueue_batch, one task"),
    ):
        r = _median(rounds, path)
        lines.append(
            f"| {title} | {r.messages} | {r.statements / r.messages:.2f} | "
            f"{r.app_cpu * 1000 / r.messages:.2f} | {r.pg_cpu * 1000 / r.messages:.2f} | "
            f"{r.wall:.2f} |"
        )
    all_rounds = ", ".join(
        f"{r.path} {r.statements}/{r.app_cpu * 1000 / r.messages:.2f}" for r in rounds
    )
    print("\n".join(lines))
    print(f"\nevery round (statements / app CPU ms per msg): {all_rounds}")
    print(f"median of rounds: {statistics.median(r.wall for r in rounds):.2f} s wall")


if __name__ == "__main__":
    main()
