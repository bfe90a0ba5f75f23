"""The SQL of each API scenario, straight against PostgreSQL: asyncpg, N connections, one process.

The statements are the ones the app sends (captured with ``log_statement = 'all'``), in the same
order and with the same transaction boundaries, so that the difference to the API figures is what
the HTTP server, FastAPI, SQLAlchemy and the app's Python code add. The API key lookup is included:
the app runs it on every request. The statement texts are SQLAlchemy's, so that PostgreSQL plans
them the same way (asyncpg prepares and caches each one, as the app's driver does).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench import cpu

_CONTACT_COLS = (
    "contacts.id, contacts.uuid, contacts.phone, contacts.first_name, contacts.last_name, "
    "contacts.email, contacts.stage, contacts.tags, contacts.custom_fields, contacts.created_at, "
    "contacts.updated_at"
)
SQL_KEY = (
    "SELECT api_keys.id, api_keys.workspace_id, api_keys.created_by, api_keys.name, "
    "api_keys.key_hash, api_keys.prefix, api_keys.last4, api_keys.scopes, api_keys.created_at, "
    "api_keys.expires_at, api_keys.last_used_at, api_keys.revoked_at \n"
    "FROM api_keys \nWHERE api_keys.key_hash = $1::VARCHAR"
)
SQL_PAGE = (
    f"SELECT {_CONTACT_COLS} \nFROM contacts \nWHERE contacts.workspace_id = $1::UUID "
    "ORDER BY contacts.id \n LIMIT $2::INTEGER OFFSET $3::INTEGER"
)
SQL_TAG_PAGE = (
    f"SELECT {_CONTACT_COLS} \nFROM contacts JOIN contact_tags "
    "ON contact_tags.contact_id = contacts.id \n"
    "WHERE contacts.workspace_id = $1::UUID AND contact_tags.workspace_id = $2::UUID "
    "AND contact_tags.tag = $3::VARCHAR ORDER BY contact_tags.contact_id \n"
    " LIMIT $4::INTEGER OFFSET $5::INTEGER"
)
SQL_COUNTED = (
    "SELECT coalesce(sum(contact_counts.n), $1::INTEGER) AS coalesce_1 \nFROM contact_counts \n"
    "WHERE contact_counts.workspace_id = $2::UUID AND contact_counts.kind = $3::VARCHAR "
    "AND contact_counts.key = $4::VARCHAR"
)
SQL_BY_PHONE = (
    f"SELECT {_CONTACT_COLS} \nFROM contacts \n"
    "WHERE contacts.workspace_id = $1::UUID AND contacts.phone = $2::VARCHAR FOR UPDATE"
)
SQL_STAGES = (
    "SELECT stages.name \nFROM stages \nWHERE stages.workspace_id = $1::UUID "
    "ORDER BY stages.position"
)
SQL_INSERT = (
    "INSERT INTO contacts (uuid, workspace_id, phone, first_name, last_name, email, stage, tags, "
    "custom_fields, created_at, updated_at) VALUES ($1::UUID, $2::UUID, $3::VARCHAR, $4::VARCHAR, "
    "$5::VARCHAR, $6::VARCHAR, $7::VARCHAR, $8::JSONB, $9::JSONB, $10::TIMESTAMP WITH TIME ZONE, "
    "$11::TIMESTAMP WITH TIME ZONE) ON CONFLICT (workspace_id, phone) DO NOTHING "
    f"RETURNING {_CONTACT_COLS}"
)
SQL_INSERT_TAG = (
    "INSERT INTO contact_tags (contact_id, tag, workspace_id) "
    "VALUES ($1::BIGINT, $2::VARCHAR, $3::UUID)"
)
_UPDATE_TYPES = {
    "phone": "VARCHAR",
    "first_name": "VARCHAR",
    "last_name": "VARCHAR",
    "email": "VARCHAR",
    "stage": "VARCHAR",
    "tags": "JSONB",
    "custom_fields": "JSONB",
    "updated_at": "TIMESTAMP WITH TIME ZONE",
}


def sql_update(columns: list[str]) -> str:
    sets = ", ".join(f"{c}=${i}::{_UPDATE_TYPES[c]}" for i, c in enumerate(columns, 1))
    return (
        f"UPDATE contacts SET {sets} WHERE contacts.id = ${len(columns) + 1}::BIGINT "
        f"RETURNING {_CONTACT_COLS}"
    )


def sql_delete_tags(n: int) -> str:
    params = ", ".join(f"${i}::VARCHAR" for i in range(2, n + 2))
    return (
        "DELETE FROM contact_tags WHERE contact_tags.contact_id = $1::BIGINT "
        f"AND contact_tags.tag IN ({params})"
    )


def sql_counts(n: int) -> str:
    rows = ", ".join(
        f"(${5 * i + 1}::UUID, ${5 * i + 2}::VARCHAR, ${5 * i + 3}::VARCHAR, "
        f"${5 * i + 4}::SMALLINT, ${5 * i + 5}::BIGINT)"
        for i in range(n)
    )
    return (
        f"INSERT INTO contact_counts (workspace_id, kind, key, shard, n) VALUES {rows} "
        "ON CONFLICT (workspace_id, kind, key, shard) DO UPDATE SET n = (contact_counts.n + "
        "excluded.n)"
    )


@dataclass(slots=True)
class Ctx:
    workspace: uuid.UUID
    key_hash: str
    rng: random.Random
    # upsert phone ranges: existing "9198" + i in [lo, hi], new "9199" + i in [lo, hi]
    existing: tuple[int, int] = (0, 0)
    new: tuple[int, int] = (0, 0)
    existing_percent: int = 50
    outcome: Counter[str] = field(default_factory=Counter)


Transaction = Callable[[asyncpg.Connection, Ctx], Awaitable[None]]


async def tx_list(conn: asyncpg.Connection, ctx: Ctx) -> None:
    await conn.execute("BEGIN;")
    await conn.fetchrow(SQL_KEY, ctx.key_hash)
    await conn.fetch(SQL_PAGE, ctx.workspace, 20, 0)
    await conn.fetchval(SQL_COUNTED, 0, ctx.workspace, "all", "")
    await conn.execute("COMMIT;")


async def tx_tag(conn: asyncpg.Connection, ctx: Ctx) -> None:
    await conn.execute("BEGIN;")
    await conn.fetchrow(SQL_KEY, ctx.key_hash)
    await conn.fetch(SQL_TAG_PAGE, ctx.workspace, ctx.workspace, "vip", 20, 0)
    await conn.fetchval(SQL_COUNTED, 0, ctx.workspace, "tag", "vip")
    await conn.execute("COMMIT;")


def _counts_of(row: Any, sign: int) -> Counter[tuple[str, str]]:
    deltas: Counter[tuple[str, str]] = Counter({("all", ""): sign, ("stage", row["stage"]): sign})
    for tag in row["tags"]:
        deltas[("tag", tag)] += sign
    return deltas


async def _adjust_counts(
    conn: asyncpg.Connection, ctx: Ctx, deltas: Counter[tuple[str, str]]
) -> None:
    items = sorted((k, d) for k, d in deltas.items() if d)
    if not items:
        return
    shard = ctx.rng.randrange(8)
    args: list[Any] = []
    for (kind, key), d in items:
        args += [ctx.workspace, kind, key, shard, d]
    await conn.execute(sql_counts(len(items)), *args)


async def tx_upsert(conn: asyncpg.Connection, ctx: Ctx) -> None:
    """What upsert_v1 does for {"phone", "first_name": "Bench", "tags": ["bench"], "custom_fields"}."""
    rng = ctx.rng
    if rng.randint(1, 100) <= ctx.existing_percent:
        phone = f"+9198{rng.randint(*ctx.existing):08d}"
    else:
        phone = f"+9199{rng.randint(*ctx.new):08d}"
    fields: dict[str, Any] = {"first_name": "Bench", "tags": ["bench"], "custom_fields": {"k": "v"}}
    await conn.execute("BEGIN;")
    await conn.fetchrow(SQL_KEY, ctx.key_hash)
    existing = await conn.fetchrow(SQL_BY_PHONE, ctx.workspace, phone)
    if existing is None:
        stages = await conn.fetch(SQL_STAGES, ctx.workspace)
        now = datetime.now(UTC)
        row = await conn.fetchrow(
            SQL_INSERT,
            uuid.uuid4(),
            ctx.workspace,
            phone,
            fields["first_name"],
            None,
            None,
            stages[0]["name"],
            fields["tags"],
            fields["custom_fields"],
            now,
            now,
        )
        if row is not None:
            for tag in row["tags"]:
                await conn.execute(SQL_INSERT_TAG, row["id"], tag, ctx.workspace)
            await _adjust_counts(conn, ctx, _counts_of(row, +1))
            await conn.execute("COMMIT;")
            ctx.outcome["created"] += 1
            return
        existing = await conn.fetchrow(SQL_BY_PHONE, ctx.workspace, phone)
        assert existing is not None
    changes: dict[str, Any] = {}
    if fields["first_name"] != existing["first_name"]:
        changes["first_name"] = fields["first_name"]
    if fields["tags"] != existing["tags"]:
        changes["tags"] = fields["tags"]
    merged = {**existing["custom_fields"], **fields["custom_fields"]}
    if merged != existing["custom_fields"]:
        changes["custom_fields"] = merged
    if changes:
        changes["updated_at"] = datetime.now(UTC)
        columns = list(changes)
        row = await conn.fetchrow(
            sql_update(columns), *(changes[c] for c in columns), existing["id"]
        )
        if "tags" in changes:
            old = set(existing["tags"])
            removed = list(old - set(row["tags"]))
            if removed:
                await conn.execute(sql_delete_tags(len(removed)), row["id"], *removed)
            for tag in [t for t in row["tags"] if t not in old]:
                await conn.execute(SQL_INSERT_TAG, row["id"], tag, ctx.workspace)
        deltas = _counts_of(row, +1)
        deltas.update(_counts_of(existing, -1))
        await _adjust_counts(conn, ctx, deltas)
    await conn.execute("COMMIT;")
    ctx.outcome["updated"] += 1


SCENARIOS: dict[str, Transaction] = {"list": tx_list, "tag": tx_tag, "upsert": tx_upsert}


@dataclass(slots=True)
class DbResult:
    transactions: int
    errors: int
    duration_s: float
    tps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    counters: dict[str, int]
    cpu: dict[str, float]


def _percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


async def _init(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _drive(
    conns: list[asyncpg.Connection], tx: Transaction, ctxs: list[Ctx], seconds: float
) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(conn: asyncpg.Connection, ctx: Ctx) -> None:
        nonlocal errors
        while True:
            t0 = time.perf_counter()
            if t0 >= deadline:
                return
            try:
                await tx(conn, ctx)
            except asyncpg.PostgresError:
                errors += 1
                await conn.execute("ROLLBACK;")
                continue
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker(c, x) for c, x in zip(conns, ctxs, strict=True)))
    return latencies, errors, time.perf_counter() - start


async def run(
    dsn: str,
    scenario: str,
    *,
    workspace_id: str,
    key_hash: str,
    connections: int,
    duration: float,
    warmup: float,
    existing: tuple[int, int] = (0, 0),
    new: tuple[int, int] = (0, 0),
    existing_percent: int = 50,
) -> DbResult:
    tx = SCENARIOS[scenario]
    conns = [await asyncpg.connect(dsn) for _ in range(connections)]
    try:
        for conn in conns:
            await _init(conn)
        seed = int(time.time())
        ctxs = [
            Ctx(
                uuid.UUID(workspace_id),
                key_hash,
                random.Random(seed * 1000 + i),
                existing=existing,
                new=new,
                existing_percent=existing_percent,
            )
            for i in range(connections)
        ]
        if warmup > 0:
            await _drive(conns, tx, ctxs, warmup)
        for ctx in ctxs:
            ctx.outcome.clear()
        database = dsn.rsplit("/", 1)[1].split("?", 1)[0]
        sampler = cpu.Sampler({"bench": os.getpid()}, database)
        cpu_before = time.process_time()
        with sampler:
            latencies, errors, elapsed = await _drive(conns, tx, ctxs, duration)
        usage = sampler.usage()
        usage["client"] = time.process_time() - cpu_before - sampler.own_cpu
        usage["total"] += usage["client"]
    finally:
        for conn in conns:
            await conn.close()
    latencies.sort()
    outcome: Counter[str] = Counter()
    for ctx in ctxs:
        outcome.update(ctx.outcome)
    return DbResult(
        transactions=len(latencies),
        errors=errors,
        duration_s=elapsed,
        tps=len(latencies) / elapsed,
        p50_ms=_percentile(latencies, 50) * 1000,
        p90_ms=_percentile(latencies, 90) * 1000,
        p99_ms=_percentile(latencies, 99) * 1000,
        max_ms=(latencies[-1] if latencies else float("nan")) * 1000,
        counters=dict(outcome),
        cpu=usage,
    )
