"""The SQL of each API scenario, straight against PostgreSQL: asyncpg, N connections, one process.

The statements are the ones the app sends, in the same order and with the same transaction
boundaries, so that the difference to the API figures is what the HTTP server, FastAPI, SQLAlchemy
and the app's Python code add. The texts are imported from the app itself (its hot paths send them
to the request's asyncpg connection), so this replay cannot drift from what the app does:

- every request: the API key lookup (``api_keys.repository``), in autocommit;
- lists: the page with its counter total, one statement, in autocommit;
- upserts: the contact with its row version, then the insert (contact, tags and counters in one
  statement) or the version-checked update (likewise), each in autocommit; when another writer got
  in between, the locking path: BEGIN, SELECT ... FOR UPDATE, the unversioned update, COMMIT.

JSON travels as text, as through SQLAlchemy's asyncpg codecs; the Python work per transaction is the
app's own (contacts.repository.counts_of), without HTTP, FastAPI or SQLAlchemy.
"""

from __future__ import annotations

import asyncio
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
import orjson

from aisoule.api_keys.repository import _PG_KEY_LOOKUP
from aisoule.contacts.repository import (
    _JSON_COLUMNS,
    _PG_BY_PHONE_VERSIONED,
    _PG_INSERT,
    _PG_ONE,
    _PG_PAGES,
    _UPDATABLE,
    COUNTER_SHARDS,
    _pg_update,
    counts_of,
)
from aisoule.workspaces.service import DEFAULT_STAGES
from bench import cpu

SQL_KEY = _PG_KEY_LOOKUP
SQL_PAGE = _PG_PAGES["all"]
SQL_TAG_PAGE = _PG_PAGES["tag"]
SQL_BY_PHONE_VERSIONED = _PG_BY_PHONE_VERSIONED
SQL_BY_PHONE_FOR_UPDATE = _PG_ONE["phone"] + " FOR UPDATE"
SQL_INSERT = _PG_INSERT


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


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
    await conn.fetchrow(SQL_KEY, ctx.key_hash)
    await conn.fetch(SQL_PAGE, ctx.workspace, 20, 0)


async def tx_tag(conn: asyncpg.Connection, ctx: Ctx) -> None:
    await conn.fetchrow(SQL_KEY, ctx.key_hash)
    await conn.fetch(SQL_TAG_PAGE, ctx.workspace, 20, 0, "vip")


async def _insert(conn: asyncpg.Connection, ctx: Ctx, phone: str, fields: dict[str, Any]) -> Any:
    now = datetime.now(UTC)
    return await conn.fetchrow(
        SQL_INSERT,
        uuid.uuid4(),
        ctx.workspace,
        phone,
        fields["first_name"],
        None,
        None,
        None,  # the workspace's first stage, read by the insert
        _json(fields["tags"]),
        _json(fields["custom_fields"]),
        now,
        fields["tags"],
        DEFAULT_STAGES[0],
        ctx.rng.randrange(COUNTER_SHARDS),
    )


def _changes(existing: Any, fields: dict[str, Any]) -> dict[str, Any]:
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
    return changes


async def _update(
    conn: asyncpg.Connection,
    ctx: Ctx,
    existing: Any,
    changes: dict[str, Any],
    version: int | None,
) -> Any:
    """ContactRepository.update_counted's statement."""
    old_tags = existing["tags"]
    new_tags = changes.get("tags", old_tags)
    deltas = counts_of({"stage": existing["stage"], "tags": new_tags}, +1)
    deltas.update(counts_of(existing, -1))
    items = sorted((k, d) for k, d in deltas.items() if d)
    columns = [c for c in _UPDATABLE if c in changes]
    args = [_json(changes[c]) if c in _JSON_COLUMNS else changes[c] for c in columns]
    if version is not None:
        args.insert(0, version)
    return await conn.fetchrow(
        _pg_update(columns, versioned=version is not None),
        existing["id"],
        ctx.workspace,
        [t for t in old_tags if t not in new_tags],
        [t for t in new_tags if t not in old_tags],
        ctx.rng.randrange(COUNTER_SHARDS),
        [kind for (kind, _), _ in items],
        [key for (_, key), _ in items],
        [d for _, d in items],
        *args,
    )


async def tx_upsert(conn: asyncpg.Connection, ctx: Ctx) -> None:
    """What upsert_v1 does for {"phone", "first_name": "Bench", "tags": ["bench"], "custom_fields"}."""
    rng = ctx.rng
    if rng.randint(1, 100) <= ctx.existing_percent:
        phone = f"+9198{rng.randint(*ctx.existing):08d}"
    else:
        phone = f"+9199{rng.randint(*ctx.new):08d}"
    fields: dict[str, Any] = {"first_name": "Bench", "tags": ["bench"], "custom_fields": {"k": "v"}}
    await conn.fetchrow(SQL_KEY, ctx.key_hash)
    existing = await conn.fetchrow(SQL_BY_PHONE_VERSIONED, ctx.workspace, phone)
    if existing is None:
        if await _insert(conn, ctx, phone, fields) is not None:
            ctx.outcome["created"] += 1
            return
    else:
        changes = _changes(existing, fields)
        if not changes or await _update(conn, ctx, existing, changes, existing["version"]):
            ctx.outcome["updated"] += 1
            return
    # Another writer got in between: the locking path.
    ctx.outcome["locked"] += 1
    await conn.execute("BEGIN;")
    existing = await conn.fetchrow(SQL_BY_PHONE_FOR_UPDATE, ctx.workspace, phone)
    if existing is None:
        await _insert(conn, ctx, phone, fields)
        await conn.execute("COMMIT;")
        ctx.outcome["created"] += 1
        return
    changes = _changes(existing, fields)
    if changes:
        await _update(conn, ctx, existing, changes, None)
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
    # As SQLAlchemy's asyncpg dialect sets them up for the app: JSON text in, parsed JSON out.
    await conn.set_type_codec(
        "json", encoder=str.encode, decoder=orjson.loads, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda text: b"\x01" + text.encode(),
        decoder=lambda data: orjson.loads(data[1:]),
        schema="pg_catalog",
        format="binary",
    )


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
