"""``python -m bench.webhooks``: Meta's status webhooks end to end on PostgreSQL.

A fresh database (``aisoule_bench_hooks``), one ``aisoule serve`` with its in-process worker, N
outbound messages with wamids inserted directly, then signed deliveries of ``sent``, ``delivered``
and ``read`` statuses (``--batch`` statuses per delivery, as Meta batches them under load) posted
by an aiohttp load generator as fast as they are accepted. Measured: how fast deliveries are
accepted, and events per second from the first POST until every event is processed (polling the
database). Prints a table; writes nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import orjson

from aisoule.kit.crypto import seal
from aisoule.kit.signing import sign_sha256
from aisoule.runtime import sealing_key
from bench import prepare
from bench.env import BENCH_SECRET, RESULTS_DIR, BenchConfig, machine_info
from bench.server import Server

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/aisoule_bench_hooks"
APP_SECRET = "bench-app-secret"
PHONE_NUMBER_ID = "109000000000001"
WABA_ID = "209000000000001"
STATUSES = ("sent", "delivered", "read")


@dataclass(frozen=True, slots=True)
class Result:
    messages: int
    events: int
    deliveries: int
    connections: int
    workers: int
    ingest_seconds: float
    total_seconds: float
    read: int

    @property
    def ingest_rate(self) -> float:
        return self.events / self.ingest_seconds

    @property
    def end_to_end_rate(self) -> float:
        return self.events / self.total_seconds


def wamid(i: int) -> str:
    return f"wamid.BENCH{i:012d}"


def wa_id(i: int) -> str:
    return f"9198{i % 10**8:08d}"


async def seed(cfg: BenchConfig, messages: int) -> None:
    """The bench workspace's WhatsApp account and N accepted outbound messages with wamids."""
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        workspace_id = uuid.UUID(
            str(await conn.fetchval("SELECT id FROM workspaces ORDER BY created_at LIMIT 1"))
        )
        account_id = uuid.uuid4()
        now = datetime.now(UTC)
        key = sealing_key(BENCH_SECRET)
        await conn.execute(
            "INSERT INTO whatsapp_accounts (id, workspace_id, name, phone_number, display_name, "
            "status, provider, phone_number_id, waba_id, access_token_sealed, app_secret_sealed, "
            "throughput, is_default, created_at, updated_at) VALUES ($1, $2, 'bench', "
            "'+15550000001', 'bench', 'connected', 'cloud_api', $3, $4, $5, $6, 80, true, $7, $7)",
            account_id,
            workspace_id,
            PHONE_NUMBER_ID,
            WABA_ID,
            seal(key, b"bench-token"),
            seal(key, APP_SECRET.encode()),
            now,
        )
        payload = orjson.dumps({"type": "text", "text": {"body": "bench"}}).decode()
        rows = [
            (
                uuid.uuid4(),
                workspace_id,
                account_id,
                "outbound",
                "text",
                "+" + wa_id(i),
                payload,
                "bench",
                "accepted",
                3,
                wamid(i),
                0,
                now,
                now,
            )
            for i in range(messages)
        ]
        await conn.copy_records_to_table(
            "messages",
            records=rows,
            columns=[
                "id",
                "workspace_id",
                "account_id",
                "direction",
                "type",
                "phone",
                "payload",
                "preview",
                "status",
                "status_rank",
                "wamid",
                "attempts",
                "created_at",
                "updated_at",
            ],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def deliveries(messages: int, batch: int) -> list[tuple[bytes, str]]:
    """Signed bodies: every message's ``sent``, then ``delivered``, then ``read``, by batches."""
    out: list[tuple[bytes, str]] = []
    base = int(time.time())
    for step, name in enumerate(STATUSES):
        for start in range(0, messages, batch):
            items = [
                {
                    "id": wamid(i),
                    "status": name,
                    "timestamp": str(base + step),
                    "recipient_id": wa_id(i),
                    **(
                        {
                            "pricing": {
                                "billable": True,
                                "pricing_model": "PMP",
                                "category": "utility",
                            }
                        }
                        if name != "read"
                        else {}
                    ),
                }
                for i in range(start, min(start + batch, messages))
            ]
            body = {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": WABA_ID,
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "messaging_product": "whatsapp",
                                    "metadata": {
                                        "display_phone_number": "15550000001",
                                        "phone_number_id": PHONE_NUMBER_ID,
                                    },
                                    "statuses": items,
                                },
                            }
                        ],
                    }
                ],
            }
            raw = orjson.dumps(body)
            out.append((raw, sign_sha256(raw, APP_SECRET)))
    return out


async def post_all(url: str, bodies: list[tuple[bytes, str]], connections: int) -> int:
    """POST every body with ``connections`` concurrent clients; the number of events accepted."""
    queue: asyncio.Queue[tuple[bytes, str]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    accepted = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def client() -> None:
            nonlocal accepted
            while not queue.empty():
                raw, signature = queue.get_nowait()
                for _ in range(20):
                    async with http.post(
                        url,
                        data=raw,
                        headers={
                            "Content-Type": "application/json",
                            "X-Hub-Signature-256": signature,
                        },
                    ) as resp:
                        body = await resp.read()
                        if resp.status == 200:
                            accepted += orjson.loads(body)["received"]
                            break
                    await asyncio.sleep(0.05)  # Meta retries what it could not deliver
                else:
                    raise SystemExit(f"a delivery was refused 20 times: {resp.status} {body!r}")

        await asyncio.gather(*(client() for _ in range(connections)))
    return accepted


async def wait_processed(cfg: BenchConfig, events: int, limit_seconds: float) -> None:
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        deadline = time.monotonic() + limit_seconds
        while time.monotonic() < deadline:
            done = await conn.fetchval(
                "SELECT count(*) FROM webhook_events WHERE processed_at IS NOT NULL"
            )
            if done >= events:
                return
            await asyncio.sleep(0.05)
        raise SystemExit(f"only {done} of {events} events processed after {limit_seconds:.0f} s")
    finally:
        await conn.close()


async def measure(cfg: BenchConfig, messages: int, batch: int, connections: int) -> Result:
    bodies = deliveries(messages, batch)
    events = messages * len(STATUSES)
    url = f"{cfg.base_url}/webhooks/whatsapp"
    t0 = time.perf_counter()
    accepted = await post_all(url, bodies, connections)
    t_ingest = time.perf_counter() - t0
    if accepted != events:
        raise SystemExit(f"{accepted} events accepted, expected {events}")
    await wait_processed(cfg, events, limit_seconds=600)
    t_total = time.perf_counter() - t0
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        read = int(await conn.fetchval("SELECT count(*) FROM messages WHERE status = 'read'"))
        errors = await conn.fetchval("SELECT count(*) FROM webhook_events WHERE error IS NOT NULL")
    finally:
        await conn.close()
    if errors:
        raise SystemExit(f"{errors} events were processed with an error")
    return Result(messages, events, len(bodies), connections, cfg.workers, t_ingest, t_total, read)


def table(r: Result, machine: dict[str, str]) -> str:
    rows = [
        (
            "machine",
            f"{machine['cpus']} CPUs, {machine['cpu_model']}, PostgreSQL {machine['postgresql']}",
        ),
        ("server", f"aisoule serve --workers {r.workers} (in-process worker)"),
        ("messages / status events", f"{r.messages:,} / {r.events:,}"),
        ("deliveries (statuses each)", f"{r.deliveries:,} ({r.events // r.deliveries})"),
        ("client connections", str(r.connections)),
        ("accepted (200) in", f"{r.ingest_seconds:.2f} s = {r.ingest_rate:,.0f} events/s"),
        ("all processed in", f"{r.total_seconds:.2f} s"),
        ("end to end", f"{r.end_to_end_rate:,.0f} events/s"),
        ("messages at read", f"{r.read:,} of {r.messages:,}"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> None:
    cfg = BenchConfig(
        database_url=args.database_url,
        contacts=0,
        duration=0,
        warmup=0,
        connections=args.connections,
        threads=1,
        workers=args.workers,
        port=args.port,
    )
    print(f"resetting {cfg.database_name} ...")
    await prepare.recreate_database(cfg)
    await asyncio.to_thread(prepare.migrate, cfg)  # alembic runs its own event loop
    prepare.create_user(cfg)
    print(f"seeding {args.messages:,} outbound messages with wamids ...")
    await seed(cfg, args.messages)
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        version = str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log = Path(RESULTS_DIR) / "webhooks-server.log"
    with Server(cfg, log):
        print("posting signed status webhooks ...")
        result = await measure(cfg, args.messages, args.batch, args.connections)
    print()
    text = table(result, machine_info(version))
    print(text)
    if args.write:
        from datetime import UTC, datetime

        from bench.env import code_state
        from bench.mdsection import write_section

        write_section(
            "webhooks",
            "## Inbound status webhooks, end to end\n\n"
            f"Produced by `python -m bench.webhooks --messages {args.messages} --batch "
            f"{args.batch} --connections {args.connections}` on "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit `{code_state()['commit']}`: signed "
            "deliveries of status webhooks (sent, delivered, read) posted to "
            "`/webhooks/whatsapp`; verified, stored once, and applied by the in-process worker "
            "(timed until every event is processed). Target: at least 2,000 events/s.\n\n" + text,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=10, help="statuses per delivery")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="aisoule serve --workers")
    parser.add_argument("--port", type=int, default=8131)
    parser.add_argument("--write", action="store_true", help="write its docs/benchmarks.md section")
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
