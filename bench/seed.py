"""Seed N contacts into the bench workspace with COPY: contacts, contact_tags and contact_counts.

Contact ``i`` (0-based) has id and number ``i + 1`` (``cnt_<i + 1>``) and phone ``+9198`` followed by ``i`` in 8 digits, so the
upsert benchmarks can pick existing numbers without asking the database. Every tenth contact has
the tag ``vip`` (10%); every contact has one region tag, every third ``newsletter``.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

CHUNK = 50_000
EXISTING_PREFIX = "+9198"  # + 8 digits: the seeded contacts
VIP_TAG = "vip"
VIP_EVERY = 10

FIRST_NAMES = (
    "Aarav", "Priya", "Rohan", "Ananya", "Vikram", "Isha", "Arjun", "Meera", "Kabir", "Diya",
    "Rahul", "Sneha", "Aditya", "Kavya", "Nikhil", "Pooja", "Siddharth", "Neha", "Karan", "Riya",
)  # fmt: skip
LAST_NAMES = (
    "Sharma", "Patel", "Iyer", "Reddy", "Nair", "Gupta", "Singh", "Khan", "Das", "Mehta",
    "Joshi", "Rao", "Kapoor", "Bose", "Menon", "Chopra", "Pillai", "Verma", "Shah", "Jain",
)  # fmt: skip
CITIES = ("Mumbai", "Delhi", "Bengaluru", "Chennai", "Pune", "Kolkata", "Hyderabad", "Jaipur")
SOURCES = ("AdWords", "Instagram", "Referral", "Website", "Walk-in")
REGIONS = ("north", "south", "east", "west")
START = datetime(2025, 1, 1, tzinfo=UTC)

CONTACT_COLUMNS = (
    "id", "number", "uuid", "workspace_id", "phone", "first_name", "last_name", "email", "stage", "tags",
    "custom_fields", "created_at", "updated_at",
)  # fmt: skip


def phone_of(i: int) -> str:
    return f"{EXISTING_PREFIX}{i:08d}"


def tags_of(i: int) -> list[str]:
    tags = [REGIONS[i % 4]]
    if i % 3 == 1:
        tags.append("newsletter")
    if i % VIP_EVERY == 0:
        tags.append(VIP_TAG)
    return tags


def stage_of(i: int, stages: list[str]) -> str:
    """50% the first stage (Lead), 25% the second, 20% the third, 5% the fourth."""
    if len(stages) < 4:
        return stages[i % len(stages)]
    bucket = i % 20
    return stages[0 if bucket < 10 else 1 if bucket < 15 else 2 if bucket < 19 else 3]


def _records(
    start: int, stop: int, workspace: uuid.UUID, stages: list[str], counts: Counter[tuple[str, str]]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    json_cache: dict[Any, str] = {}

    def dumps(value: Any, key: Any) -> str:
        text = json_cache.get(key)
        if text is None:
            text = json_cache[key] = orjson.dumps(value).decode()
        return text

    contacts: list[tuple[Any, ...]] = []
    tag_rows: list[tuple[Any, ...]] = []
    for i in range(start, stop):
        cid = i + 1
        tags = tags_of(i)
        stage = stage_of(i, stages)
        fields: dict[str, Any] = {"city": CITIES[i % 8], "source": SOURCES[i % 5]}
        if i % 6 == 0:
            fields["plan"] = "pro"
        created = START + timedelta(seconds=i * 10)
        contacts.append(
            (
                cid,
                cid,
                uuid.uuid4(),
                workspace,
                phone_of(i),
                FIRST_NAMES[i % 20],
                LAST_NAMES[(i // 20) % 20],
                f"contact{i}@example.com" if i % 2 == 0 else None,
                stage,
                dumps(tags, tuple(tags)),
                dumps(fields, (i % 8, i % 5, i % 6 == 0)),
                created,
                created,
            )
        )
        counts[("stage", stage)] += 1
        for tag in tags:
            tag_rows.append((cid, tag, workspace))
            counts[("tag", tag)] += 1
    counts[("all", "")] += stop - start
    return contacts, tag_rows


def _chunks(n: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, CHUNK):
        yield start, min(n, start + CHUNK)


async def seed(dsn: str, workspace_id: str, n: int) -> None:
    workspace = uuid.UUID(workspace_id)
    conn = await asyncpg.connect(dsn)
    try:
        stages = [
            r["name"]
            for r in await conn.fetch(
                "SELECT name FROM stages WHERE workspace_id = $1 ORDER BY position", workspace
            )
        ]
        if not stages:
            raise SystemExit("the bench workspace has no stages")
        counts: Counter[tuple[str, str]] = Counter()
        t0 = time.monotonic()
        for start, stop in _chunks(n):
            contacts, tag_rows = _records(start, stop, workspace, stages, counts)
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "contacts", records=contacts, columns=CONTACT_COLUMNS
                )
                await conn.copy_records_to_table(
                    "contact_tags", records=tag_rows, columns=("contact_id", "tag", "workspace_id")
                )
            rate = stop / max(time.monotonic() - t0, 1e-9)
            line = f"  seeded {stop:>9,} / {n:,} contacts ({rate:,.0f}/s)"
            if sys.stdout.isatty():
                print("\r" + line, end="" if stop < n else "\n", flush=True)
            elif stop % (CHUNK * 5) == 0 or stop == n:
                print(line, flush=True)
        await conn.copy_records_to_table(
            "contact_counts",
            records=[(workspace, kind, key, 0, count) for (kind, key), count in counts.items()],
            columns=("workspace_id", "kind", "key", "shard", "n"),
        )
        await conn.execute("SELECT setval(pg_get_serial_sequence('contacts', 'id'), $1)", n)
        # The workspace's numbers continue after the seeded ones (its sequence starts there).
        await conn.execute(
            "INSERT INTO contact_numbers (workspace_id, last) VALUES ($1, $2)"
            " ON CONFLICT (workspace_id) DO UPDATE SET last = excluded.last",
            workspace,
            n,
        )
        await conn.execute(
            "SELECT setval(s, $2) FROM to_regclass('contact_number_' || replace($1::text, '-', ''))"
            " AS s WHERE s IS NOT NULL",
            str(workspace),  # $1::text: asyncpg wants a str there
            n,
        )
        print("  VACUUM ANALYZE, CHECKPOINT ...", flush=True)
        for table in ("contacts", "contact_tags", "contact_counts", "api_keys", "stages"):
            await conn.execute(f"VACUUM (ANALYZE) {table}")
        await conn.execute("CHECKPOINT")
        print(f"  seeding took {time.monotonic() - t0:.0f} s")
    finally:
        await conn.close()


async def database_totals(dsn: str, workspace_id: str) -> dict[str, int]:
    """Ground truth straight from the tables, and what the counters say."""
    workspace = uuid.UUID(workspace_id)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetchval(
            "SELECT count(*) FROM contacts WHERE workspace_id = $1", workspace
        )
        vip = await conn.fetchval(
            "SELECT count(*) FROM contact_tags WHERE workspace_id = $1 AND tag = $2",
            workspace,
            VIP_TAG,
        )
        counted = await conn.fetch(
            "SELECT kind, key, sum(n) AS n FROM contact_counts WHERE workspace_id = $1 "
            "AND (kind, key) IN (('all', ''), ('tag', $2)) GROUP BY kind, key",
            workspace,
            VIP_TAG,
        )
        by_kind = {r["kind"]: int(r["n"]) for r in counted}
        return {
            "contacts": int(rows),
            "vip": int(vip),
            "counter_all": by_kind.get("all", 0),
            "counter_vip": by_kind.get("tag", 0),
        }
    finally:
        await conn.close()
