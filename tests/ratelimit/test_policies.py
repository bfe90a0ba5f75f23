"""Rate-limit headers, per-key and per-workspace overrides, session limits, and Redis outages."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import signup
from tests.servers import Server, make_server

REAL = {
    "AISOULE_RATELIMIT_PER_MINUTE": "100",
    "AISOULE_RATELIMIT_PER_SECOND": "10",
    "AISOULE_RATELIMIT_SESSION_PER_MINUTE": "600",
    "AISOULE_RATELIMIT_SESSION_PER_SECOND": "20",
}


def _serve(tmp: Path, **env: str) -> Server:
    srv = make_server("sqlite", tmp, **REAL, **env)
    srv.cli("migrate")
    srv.start()
    return srv


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _serve(tmp_path_factory.mktemp("limited"))
    yield srv
    srv.stop()


def _key(server: Server) -> tuple[httpx.Client, dict[str, str]]:
    session, _, _, _ = signup(server)
    key = session.post("/api/api-keys", json={"name": "k"}).json()["data"]["api_key"]
    return session, key


def test_headers_on_every_key_response_of_both_surfaces(limited: Server) -> None:
    session, key = _key(limited)
    with httpx.Client(base_url=limited.url, headers={"X-API-Key": key["key"]}) as c:
        remaining = []
        for path in (
            "/api/contacts",
            "/v1/contacts",
            "/api/contacts/nope",
            "/v1/contacts?limit=999",
        ):
            r = c.get(path)
            assert r.headers["X-RateLimit-Limit"] == "100", path
            remaining.append(int(r.headers["X-RateLimit-Remaining"]))
            reset = int(r.headers["X-RateLimit-Reset"])
            assert time.time() - 1 <= reset <= time.time() + 61
        assert remaining == sorted(remaining, reverse=True) and remaining[0] <= 9
    session.close()


def test_burst_of_eleven_in_a_second(limited: Server) -> None:
    session, key = _key(limited)
    with httpx.Client(base_url=limited.url, headers={"Authorization": f"Bearer {key['key']}"}) as c:
        codes = [c.get("/v1/contacts").status_code for _ in range(11)]
        assert codes.count(200) == 10 and codes[-1] == 429
        r = c.get("/v1/contacts")
        assert r.status_code == 429 and r.headers["X-RateLimit-Remaining"] == "0"
        assert 1 <= int(r.headers["Retry-After"]) <= 1
        time.sleep(1.05)
        assert c.get("/v1/contacts").status_code == 200
    with httpx.Client(base_url=limited.url, headers={"X-API-Key": key["key"]}) as c:
        for _ in range(12):
            r = c.get("/api/contacts")
        assert r.status_code == 429
        assert r.json()["status"] == "error" and r.json()["code"] == "rate_limited"
    session.close()


def test_key_override_raises_the_limit(limited: Server) -> None:
    session, key = _key(limited)
    limited.cli("limits", "set", "--key", key["id"], "--per-minute", "1000", "--per-second", "50")
    with httpx.Client(base_url=limited.url, headers={"X-API-Key": key["key"]}) as c:
        codes = [c.get("/v1/contacts").status_code for _ in range(30)]
        assert codes == [200] * 30
        assert c.get("/v1/contacts").headers["X-RateLimit-Limit"] == "1000"
    listed = session.get("/api/api-keys").json()["data"]["api_keys"]
    assert next(k for k in listed if k["id"] == key["id"])["rate_limit"] == {
        "per_minute": 1000,
        "per_second": 50,
    }
    session.close()


def test_workspace_override_applies_to_its_keys(limited: Server) -> None:
    session, key = _key(limited)
    workspace_id = session.get("/api/auth/me").json()["data"]["workspace"]["id"]
    limited.cli("limits", "set", "--workspace", workspace_id, "--per-minute", "5")
    with httpx.Client(base_url=limited.url, headers={"X-API-Key": key["key"]}) as c:
        codes = [c.get("/v1/contacts").status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]
        assert c.get("/v1/contacts").headers["X-RateLimit-Limit"] == "5"
    bad = limited.cli("limits", "set", "--workspace", "nope", check=False)
    assert bad.returncode != 0
    session.close()


def test_sessions_have_their_own_higher_limits(limited: Server) -> None:
    session, key = _key(limited)
    codes = [session.get("/api/contacts").status_code for _ in range(15)]
    assert codes == [200] * 15  # a key would have been refused after 10
    r = session.get("/api/contacts")
    assert r.headers["X-RateLimit-Limit"] == "600"
    # The session's budget is the user's, not shared with the workspace's keys.
    with httpx.Client(base_url=limited.url, headers={"X-API-Key": key["key"]}) as c:
        assert c.get("/api/contacts").status_code == 200
    session.close()


def test_redis_down_admits_by_default_and_refuses_when_configured(tmp_path: Path) -> None:
    dead = "redis://127.0.0.1:1/0"
    open_srv = _serve(tmp_path / "open", AISOULE_REDIS_URL=dead)
    try:
        session, key = _key(open_srv)
        with httpx.Client(base_url=open_srv.url, headers={"X-API-Key": key["key"]}) as c:
            r = c.get("/v1/contacts")
            assert r.status_code == 200 and "X-RateLimit-Limit" not in r.headers
        session.close()
        assert "ratelimit_storage_unavailable" in open_srv.logs()
    finally:
        open_srv.stop()
    closed = _serve(
        tmp_path / "closed", AISOULE_REDIS_URL=dead, AISOULE_RATELIMIT_FAIL_OPEN="false"
    )
    try:
        body = {
            "email": "c@example.com",
            "password": "long enough pw",
            "name": "C",
            "workspace_name": "W",
        }
        r = httpx.post(f"{closed.url}/api/auth/signup", json=body)
        assert r.status_code == 503 and r.json()["code"] == "unavailable"
        closed.cli(
            "user",
            "create",
            "--email",
            "c@example.com",
            "--password",
            "long enough pw",
            "--name",
            "C",
            "--workspace",
            "W",
        )
        key = closed.cli(
            "apikey", "create", "--email", "c@example.com", "--name", "k"
        ).stdout.strip()
        with httpx.Client(base_url=closed.url, headers={"X-API-Key": key}) as c:
            r = c.get("/v1/contacts")
            assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    finally:
        closed.stop()
