"""API keys: shown once, hashed at rest, scoped, expiring, revocable at once, accepted only in headers."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import ALL_SCOPES, Workspace

KEY_RE = re.compile(r"^aisk_[0-9A-Za-z]{38}$")
DEFAULT_SCOPES = [s for s in ALL_SCOPES if s not in ("keys:manage", "workspace:manage")]


def test_create_shows_the_secret_once_and_list_never(ws: Workspace) -> None:
    k = ws.new_key(name="CRM Integration")
    assert KEY_RE.match(k["key"])
    assert set(k) == {"id", "name", "key", "prefix", "last4", "scopes", "expires_at", "created_at"}
    assert k["scopes"] == DEFAULT_SCOPES  # no scopes given: all but keys:manage
    assert k["key"].startswith(k["prefix"]) and k["key"].endswith(k["last4"])
    r = ws.session.get("/api/api-keys")
    assert r.status_code == 200
    assert k["key"] not in r.text
    listed = next(x for x in r.json()["data"]["api_keys"] if x["id"] == k["id"])
    assert listed["name"] == "CRM Integration" and listed["status"] == "active"
    assert listed["prefix"] == k["prefix"] and listed["last4"] == k["last4"]
    assert {"created_at", "expires_at", "last_used_at", "revoked_at", "scopes"} <= set(listed)


def test_both_headers_work_on_both_surfaces(ws: Workspace) -> None:
    for bearer in (False, True):
        with ws.client(bearer=bearer) as c:
            assert c.get("/api/contacts").status_code == 200
            assert c.get("/v1/contacts").status_code == 200


def test_keys_are_refused_in_query_strings_and_cookies(ws: Workspace) -> None:
    url = ws.server.url
    for name in ("api_key", "apikey"):
        r = httpx.get(f"{url}/api/contacts", params={name: ws.key})
        assert r.status_code == 401 and "query string" in r.json()["message"]
    assert httpx.get(f"{url}/v1/contacts", cookies={"api_key": ws.key}).status_code == 401
    assert httpx.get(f"{url}/v1/contacts", cookies={"X-API-Key": ws.key}).status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        {"X-API-Key": "nope"},
        {"Authorization": "Bearer aisk_" + "A" * 38},
        {"Authorization": "Basic Zm9vOmJhcg=="},
        {"Authorization": "Bearer"},
        {"X-API-Key": ""},
    ],
)
def test_invalid_credentials_are_401(ws: Workspace, header: dict[str, str]) -> None:
    r = httpx.get(f"{ws.server.url}/v1/contacts", headers=header)
    assert r.status_code == 401
    assert r.json()["success"] is False


def test_tampered_checksum_is_rejected(ws: Workspace) -> None:
    k = ws.key
    flipped = k[:-1] + ("A" if k[-1] != "A" else "B")
    assert (
        httpx.get(f"{ws.server.url}/v1/contacts", headers={"X-API-Key": flipped}).status_code == 401
    )


def test_revoke_is_effective_at_once(ws: Workspace) -> None:
    k = ws.new_key()
    with ws.client(k["key"]) as c:
        assert c.get("/v1/contacts").status_code == 200
        r = ws.session.delete(f"/api/api-keys/{k['id']}")
        assert r.status_code == 200
        assert r.json()["data"]["api_key"]["status"] == "revoked"
        assert r.json()["data"]["api_key"]["revoked_at"]
        r = c.get("/v1/contacts")
        assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
        assert c.get("/api/contacts").status_code == 401
    assert ws.session.delete(f"/api/api-keys/{k['id']}").status_code == 200  # idempotent
    for bad in ("00000000-0000-0000-0000-000000000000", "nope"):
        assert ws.session.delete(f"/api/api-keys/{bad}").status_code == 404


def test_expired_key_is_401(ws: Workspace) -> None:
    expires = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    k = ws.new_key(expires_at=expires)
    with ws.client(k["key"]) as c:
        assert c.get("/v1/contacts").status_code == 200
        time.sleep(2.2)
        r = c.get("/v1/contacts")
        assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    listed = next(
        x for x in ws.session.get("/api/api-keys").json()["data"]["api_keys"] if x["id"] == k["id"]
    )
    assert listed["status"] == "expired"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": " "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "k", "scopes": []}, "scopes"),
        ({"name": "k", "scopes": ["contacts:admin"]}, "scopes"),
        ({"name": "k", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "k", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "k", "owner": "me"}, "owner"),
    ],
)
def test_bad_key_requests(ws: Workspace, body: dict[str, object], field: str) -> None:
    before = len(ws.session.get("/api/api-keys").json()["data"]["api_keys"])
    r = ws.session.post("/api/api-keys", json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["message"]
    assert len(ws.session.get("/api/api-keys").json()["data"]["api_keys"]) == before


def test_scopes_are_enforced_and_named(ws: Workspace) -> None:
    ro = ws.new_key(scopes=["contacts:read"])
    with ws.client(ro["key"]) as c:
        assert c.get("/api/contacts").status_code == 200
        assert c.get("/v1/contacts").status_code == 200
        r = c.post("/api/contacts", json={"phone_number": "+14155550140"})
        assert r.status_code == 403 and "contacts:write" in r.json()["message"]
        r = c.post("/v1/contacts", json={"phone": "14155550140"})
        assert r.status_code == 403 and "contacts:write" in r.json()["error"]["message"]
        assert c.get("/api/templates").status_code == 403
        assert c.get("/api/api-keys").status_code == 403
        assert c.post("/api/api-keys", json={"name": "escalate"}).status_code == 403
    # A default key cannot manage keys; the all-scopes key can, but never beyond its own scopes.
    default = ws.new_key()
    with ws.client(default["key"]) as c:
        r = c.get("/api/api-keys")
        assert r.status_code == 403 and "keys:manage" in r.json()["message"]
    manager = ws.new_key(scopes=["keys:manage", "contacts:read"])
    with ws.client(manager["key"]) as c:
        assert c.get("/api/api-keys").status_code == 200
        assert (
            c.post("/api/api-keys", json={"name": "ok", "scopes": ["contacts:read"]}).status_code
            == 201
        )
        r = c.post("/api/api-keys", json={"name": "too much", "scopes": ["contacts:write"]})
        assert r.status_code == 403 and "contacts:write" in r.json()["message"]


def test_last_used_at_is_recorded(ws: Workspace) -> None:
    k = ws.new_key()
    with ws.client(k["key"]) as c:
        for _ in range(5):
            c.get("/v1/contacts")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        listed = next(
            x
            for x in ws.session.get("/api/api-keys").json()["data"]["api_keys"]
            if x["id"] == k["id"]
        )
        if listed["last_used_at"]:
            break
        time.sleep(0.05)
    assert listed["last_used_at"] is not None
