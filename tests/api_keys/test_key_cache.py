"""Keys remembered per process (aisoule/api_keys/cache.py), forgotten by every process the
moment one changes: on PostgreSQL while a LISTEN connection is up; never on SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path

import httpx

from tests.conftest import Workspace, signup
from tests.servers import Server, make_server, pg_url, sibling_postgres

LISTENER = "aisoule key listener"


def _sql(server: Server, statement: str, *args: object) -> None:
    """Run one statement straight on the server's database, behind the application's back."""
    if server.backend == "sqlite":
        path = server.database_url.split("///", 1)[1]
        with sqlite3.connect(path) as db:
            db.execute(statement.replace("$1", "?").replace("now()", "CURRENT_TIMESTAMP"), args)
        return
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(server.database_url.replace("+asyncpg", ""), timeout=10)
        try:
            await conn.execute(statement, *args)
        finally:
            await conn.close()

    asyncio.run(run())


def _fresh_get(server: Server, key: str, n: int) -> list[httpx.Response]:
    """n requests, each on a new connection (with several workers, each may get any of them)."""
    return [
        httpx.get(f"{server.url}/v1/contacts", headers={"X-API-Key": key}, timeout=30)
        for _ in range(n)
    ]


def _key_id(ws: Workspace, key: dict[str, str]) -> object:
    return uuid.UUID(key["id"]) if ws.server.backend == "postgresql" else key["id"].replace("-", "")


def test_a_change_behind_the_apps_back_is_seen_as_announced(ws: Workspace) -> None:
    """SQLite: no cache, a revocation written straight into the database counts at once.
    PostgreSQL: the key is remembered, so that revocation is not seen until it is announced on
    the channel (the application always announces its own changes); then it is, at once."""
    k = ws.new_key()
    with ws.client(k["key"]) as c:
        assert c.get("/v1/contacts").status_code == 200
        _sql(ws.server, "UPDATE api_keys SET revoked_at = now() WHERE id = $1", _key_id(ws, k))
        if ws.server.backend == "postgresql":
            assert c.get("/v1/contacts").status_code == 200  # remembered: the cache is in use
            _sql(ws.server, "SELECT pg_notify('aisoule_api_keys', '')")
            deadline = time.monotonic() + 5
            while c.get("/v1/contacts").status_code == 200 and time.monotonic() < deadline:
                time.sleep(0.01)
        r = c.get("/v1/contacts")
        assert r.status_code == 401 and r.json()["error"]["code"] == "api_key_revoked"


def test_revocation_is_at_once_on_every_worker_and_without_a_listener(tmp_path: Path) -> None:
    """Two worker processes on PostgreSQL, each remembering the key: revoked through the API,
    no worker admits it again. Then, with the listening connections killed, a change the
    application could not announce is still seen at once: without a listener, no cache."""
    url = sibling_postgres(pg_url(), "keycache")
    server = make_server("postgresql", tmp_path, database_url=url, AISOULE_EMULATOR="off")
    server.args = ["--workers", "2"]
    server.cli("migrate")
    server.start()
    try:
        session, _, _, _ = signup(server)
        ws = Workspace(server, "", "", session, "", "", "")
        for revoke in ("api", "sql"):
            k = ws.new_key()
            assert all(r.status_code == 200 for r in _fresh_get(server, k["key"], 30))
            if revoke == "api":
                assert session.delete(f"/api/api-keys/{k['id']}").status_code == 200
            else:
                _sql(
                    server,
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = $1 AND datname = current_database()",
                    LISTENER,
                )
                time.sleep(0.5)
                _sql(
                    server,
                    "UPDATE api_keys SET revoked_at = now() WHERE id = $1",
                    uuid.UUID(k["id"]),
                )
            statuses = [r.status_code for r in _fresh_get(server, k["key"], 30)]
            assert statuses == [401] * 30, (revoke, statuses)
        # The listeners come back (and the cache with them): a new key works, and is revoked at once.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            listeners = _count_listeners(server)
            if listeners == 2:
                break
            time.sleep(0.2)
        assert listeners == 2
        k = ws.new_key()
        assert all(r.status_code == 200 for r in _fresh_get(server, k["key"], 30))
        assert session.delete(f"/api/api-keys/{k['id']}").status_code == 200
        assert [r.status_code for r in _fresh_get(server, k["key"], 30)] == [401] * 30
        session.close()
    finally:
        server.stop()


def _count_listeners(server: Server) -> int:
    import asyncpg

    async def run() -> int:
        conn = await asyncpg.connect(server.database_url.replace("+asyncpg", ""), timeout=10)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                    "AND datname = current_database()",
                    LISTENER,
                )
            )
        finally:
            await conn.close()

    return asyncio.run(run())


def _limit_after(c: httpx.Client, expected: str) -> str:
    """X-RateLimit-Limit of the first request that shows ``expected``, or of the last after 5 s
    (a NOTIFY arrives within milliseconds; the loop only spares a fixed sleep)."""
    deadline = time.monotonic() + 5
    while True:
        got = c.get("/v1/contacts").headers.get("X-RateLimit-Limit", "")
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.01)


def test_operator_limit_changes_reach_remembered_keys(ws: Workspace) -> None:
    """`aisoule limits set` in another process changes a key's, then its workspace's limits
    while the server remembers the key: the next requests carry the new limit."""
    k = ws.new_key()
    with ws.client(k["key"]) as c:
        first = c.get("/v1/contacts")  # remembered from here on
        assert first.status_code == 200
        default = first.headers["X-RateLimit-Limit"]
        ws.server.cli("limits", "set", "--key", k["id"], "--per-minute", "1000")
        assert _limit_after(c, "1000") == "1000"
        ws.server.cli("limits", "set", "--key", k["id"])  # back to the workspace's limits
        assert _limit_after(c, default) == default  # remembered again, with the default
        ws.server.cli("limits", "set", "--workspace", ws.workspace_id, "--per-minute", "777")
        assert _limit_after(c, "777") == "777"
        ws.server.cli("limits", "set", "--workspace", ws.workspace_id)
