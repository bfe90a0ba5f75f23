"""The yardstick the issue measures against: FastAPI + raw asyncpg + orjson serving the same page.

``GET /v1/contacts?limit=20`` with aisoule's own page statement (``_PG_PAGES["all"]``) on an
asyncpg pool, rows turned into dicts and written by orjson: no authentication, rate limiting,
session, validation beyond FastAPI's query parameters, or middleware. Served by uvicorn with the
same workers as aisoule and loaded by the same wrk command in the same run, it tells how fast
this machine is at that moment, so aisoule's list can be read as a fraction of it (the issue
quotes about 2,000 requests/s per core for it on this machine kind).

Run by ``python -m bench``; alone: ``BENCH_YARDSTICK_DSN=... BENCH_YARDSTICK_WORKSPACE=<uuid>
uvicorn bench.yardstick:app --workers 2``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Query
from fastapi.responses import Response

from aisoule.contacts.repository import _PG_PAGES

DSN = os.environ.get("BENCH_YARDSTICK_DSN", "postgresql://postgres@127.0.0.1:5432/aisoule_bench")
WORKSPACE = uuid.UUID(os.environ.get("BENCH_YARDSTICK_WORKSPACE", str(uuid.UUID(int=0))))
POOL: dict[str, Any] = {}


async def _init(conn: Any) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    POOL["pool"] = await asyncpg.create_pool(DSN, min_size=20, max_size=20, init=_init)
    try:
        yield
    finally:
        await POOL["pool"].close()


app = FastAPI(lifespan=lifespan)


@app.get("/v1/contacts")
async def contacts(limit: int = Query(20, ge=1, le=100), offset: int = Query(0, ge=0)) -> Response:
    async with POOL["pool"].acquire() as conn:
        rows = await conn.fetch(_PG_PAGES["all"], WORKSPACE, limit, offset)
    total = int(rows[0]["total"]) if rows else 0
    body = {
        "success": True,
        "contacts": [
            {
                "id": f"cnt_{r['number']}",
                "phone": r["phone"].lstrip("+"),
                "first_name": r["first_name"],
                "last_name": r["last_name"],
                "email": r["email"],
                "tags": r["tags"],
                "custom_fields": r["custom_fields"],
                "stage": r["stage"],
                "created_at": r["created_at"],
                "updated_at": r["updated_at"],
            }
            for r in rows
        ],
        "pagination": {"total": total, "limit": limit, "offset": offset},
    }
    return Response(
        orjson.dumps(body, option=orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS),
        media_type="application/json",
    )
