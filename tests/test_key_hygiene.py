"""Key hygiene: after keys are created (session, key, CLI, with and without Idempotency-Key) and
used (X-API-Key, Bearer, wrongly in a query string or a path), neither the database nor the
server's logs hold any full key."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aisoule.kit.crypto import api_key_is_well_formed
from tests.conftest import ALL_SCOPES, signup
from tests.servers import Server, make_server, pg_url, sibling_postgres

# Anything shaped like a key; api_key_is_well_formed (its checksum) tells a real one.
KEY_SHAPE = re.compile(rb"aisk_[0-9A-Za-z]{38}")


@pytest.fixture
def info_server(server: Server, tmp_path: Path) -> Iterator[Server]:
    """A server that writes INFO logs (uvicorn's access log among them) to its log file, on a
    database of its own (an SQLite file, or a PostgreSQL database next to the test database) so
    that what is found there was written by this test."""
    url = sibling_postgres(pg_url(), "hygiene") if server.backend == "postgresql" else None
    srv = make_server(server.backend, tmp_path, database_url=url, AISOULE_LOG_LEVEL="INFO")
    srv.cli("migrate")
    srv.start()
    yield srv
    srv.stop()


def _create(client: httpx.Client, body: dict[str, object], idempotency_key: str = "") -> str:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    r = client.post("/api/api-keys", json={"name": "hygiene", **body}, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["api_key"]["key"])


def _leaks(blob: bytes, keys: list[str]) -> list[str]:
    """Keys found in ``blob``: verbatim, or hex-encoded (pg_dump writes bytea as hex)."""
    found = [k for k in keys if k.encode() in blob or k.encode().hex().encode() in blob.lower()]
    found += [m.decode() for m in KEY_SHAPE.findall(blob) if api_key_is_well_formed(m.decode())]
    return sorted(set(found))


def _database_bytes(srv: Server) -> bytes:
    if srv.backend == "sqlite":
        db = Path(srv.database_url.split("///", 1)[1])
        files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    url = srv.database_url.replace("postgresql+asyncpg://", "postgresql://")
    dump = subprocess.run(
        ["/usr/bin/pg_dump", "--no-owner", url], capture_output=True, check=True, timeout=120
    )
    assert b"CREATE TABLE public.api_keys" in dump.stdout
    return dump.stdout


def test_no_full_key_in_the_database_or_the_logs(info_server: Server) -> None:
    srv = info_server
    session, _, email, _ = signup(srv)
    keys: list[str] = []

    def create(client: httpx.Client, **body: object) -> str:
        keys.append(_create(client, body))
        return keys[-1]

    try:
        k1 = create(session, scopes=ALL_SCOPES)
        k2 = create(session)
        with httpx.Client(base_url=srv.url, headers={"X-API-Key": k1}, timeout=30) as by_key:
            k3 = create(by_key, scopes=["contacts:read", "contacts:write"])
        k4 = srv.cli("apikey", "create", "--email", email, "--name", "cli").stdout.strip()
        assert api_key_is_well_formed(k4)
        keys.append(k4)

        with httpx.Client(base_url=srv.url, timeout=30) as c:
            assert c.get("/api/contacts", headers={"X-API-Key": k1}).status_code == 200
            r = c.post(
                "/v1/contacts",
                json={"phone": "918856879188"},
                headers={"X-API-Key": k1, "Idempotency-Key": "hygiene-contact"},
            )
            assert r.status_code == 201, r.text
            assert c.get("/api/auth/me", headers={"X-API-Key": k2}).status_code == 200
            auth = {"Authorization": f"Bearer {k3}"}
            assert c.get("/v1/contacts", headers=auth).status_code == 200
            auth = {"Authorization": f"Bearer {k4}"}
            assert c.get("/api/contacts", headers=auth).status_code == 200
            # Keys in a URL: refused in the query string, and never logged in full.
            for path, name, key in (
                ("/v1/contacts", "api_key", k2),
                ("/api/contacts", "access_token", k3),
                ("/v1/contacts", "key", k2),
                ("/api/contacts", "Token", k3),
                ("/api/contacts", "q", k1),  # any name: the value looks like a key
            ):
                r = c.get(path, params={name: key})
                assert r.status_code == 401, r.text
                assert "query string" in r.text
            r = c.get(f"/v1/contacts/{k4}", headers={"X-API-Key": k1})
            assert r.status_code == 404
            # A revoked key: refused.
            k2_id = next(
                k["id"]
                for k in session.get("/api/api-keys").json()["data"]["api_keys"]
                if k["last4"] == k2[-4:]
            )
            assert session.delete(f"/api/api-keys/{k2_id}").status_code == 200
            assert c.get("/api/auth/me", headers={"X-API-Key": k2}).status_code == 401
            # Usage counters and last_used_at reach the database too.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                usage = session.get(f"/api/api-keys/{k2_id}/usage").json()["data"]
                if usage["totals"].get("2xx") and usage["last_used_at"]:
                    break
                time.sleep(0.1)
            assert usage["totals"]["2xx"] >= 1 and usage["last_used_at"], usage
    finally:
        session.close()

    assert len(set(keys)) == 4
    assert _leaks(_database_bytes(srv), keys) == []

    srv.stop()  # flushes the log; on SQLite, checkpoints the WAL into the database file
    if srv.backend == "sqlite":
        assert _leaks(_database_bytes(srv), keys) == []
    log = srv.log_path.read_bytes()
    assert b'"GET /api/contacts HTTP/1.1" 200' in log, "the access log is written"
    assert _leaks(log, keys) == []
    text = log.decode()
    assert f"api_key={k2[:9]}…[redacted]" in text
    assert f"access_token={k3[:9]}…[redacted]" in text
    assert f"?key={k2[:9]}…[redacted]" in text
    assert f"?Token={k3[:9]}…[redacted]" in text
    assert f"?q={k1[:9]}…[redacted]" in text
    assert f"/v1/contacts/{k4[:9]}…[redacted]" in text


def test_a_key_created_with_an_idempotency_key_is_not_stored(info_server: Server) -> None:
    """Idempotency-Key stores a POST's response to replay it; the one that creates a key carries
    the secret, which must not reach the database in the clear."""
    srv = info_server
    session, _, _, _ = signup(srv)
    try:
        k1 = _create(session, {"scopes": ALL_SCOPES}, "hygiene-session")
        with httpx.Client(base_url=srv.url, headers={"X-API-Key": k1}, timeout=30) as by_key:
            k2 = _create(by_key, {"scopes": ["contacts:read"]}, "hygiene-key")
    finally:
        session.close()
    leaked = _leaks(_database_bytes(srv), [k1, k2])
    assert leaked == [], "the stored Idempotency-Key response holds the new key in the clear"
