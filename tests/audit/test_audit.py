"""The audit log: security events of the workspace, for its owners."""

from __future__ import annotations

import httpx

from tests.conftest import Workspace


def test_events_are_recorded_and_shown_to_owners(ws: Workspace) -> None:
    server = ws.server
    assert (
        httpx.post(
            f"{server.url}/api/auth/login", json={"email": ws.email, "password": "nope nope"}
        ).status_code
        == 401
    )
    with httpx.Client(base_url=server.url) as browser:
        data = browser.post(
            "/api/auth/login", json={"email": ws.email, "password": ws.password}
        ).json()["data"]
        browser.headers["X-CSRF-Token"] = data["csrf_token"]
        key = browser.post("/api/api-keys", json={"name": "temp"}).json()["data"]["api_key"]
        assert browser.delete(f"/api/api-keys/{key['id']}").status_code == 200
        assert browser.post("/api/auth/logout").status_code == 200
    events = ws.session.get("/api/audit-log", params={"per_page": 100}).json()["data"]
    kinds = [e["event"] for e in events["events"]]
    for expected in (
        "signup",
        "api_key_created",
        "login_failed",
        "login",
        "api_key_revoked",
        "logout",
    ):
        assert expected in kinds, (expected, kinds)
    assert events["total"] == len(kinds)
    created = next(
        e
        for e in events["events"]
        if e["event"] == "api_key_created" and e["details"]["name"] == "temp"
    )
    assert created["details"]["prefix"] == key["prefix"] and key["key"] not in str(events)
    assert created["ip"] == "127.0.0.1"
    failed = ws.session.get("/api/audit-log", params={"event": "login_failed"}).json()["data"]
    assert failed["total"] == 1 and failed["events"][0]["event"] == "login_failed"
    assert ws.session.get("/api/audit-log", params={"event": "bogus"}).status_code == 422


def test_keys_and_other_workspaces_cannot_read_it(make_workspace: object) -> None:
    a: Workspace = make_workspace()  # type: ignore[operator]
    b: Workspace = make_workspace()  # type: ignore[operator]
    with a.client() as c:
        assert c.get("/api/audit-log").status_code == 403  # even a keys:manage key
    b_events = b.session.get("/api/audit-log").json()["data"]["events"]
    assert all(
        e["actor_user_id"] != a.session.get("/api/auth/me").json()["data"]["user"]["id"]
        for e in b_events
    )
