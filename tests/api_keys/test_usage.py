"""API key activity (seed 000: "Check API key activity"): counts per day and status class."""

from __future__ import annotations

import time

from tests.conftest import Workspace


def test_usage_counts_requests_by_status_class(ws: Workspace) -> None:
    k = ws.new_key(name="usage")
    with ws.client(k["key"]) as c:
        for _ in range(7):
            assert c.get("/v1/contacts").status_code == 200
        for _ in range(3):
            assert c.get("/v1/contacts/cnt_999999").status_code == 404
        assert c.post("/v1/contacts", json={"phone": "918856879188"}).status_code == 201
    deadline = time.monotonic() + 10
    while True:
        r = ws.session.get(f"/api/api-keys/{k['id']}/usage")
        assert r.status_code == 200
        data = r.json()["data"]
        if data["totals"]["total"] >= 11 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(data["days"]) == 30
    today = data["days"][-1]
    assert today["2xx"] == 8 and today["4xx"] == 3 and today["total"] == 11
    assert data["totals"] == {"1xx": 0, "2xx": 8, "3xx": 0, "4xx": 3, "5xx": 0, "total": 11}
    assert data["last_used_at"] is not None
    with ws.client() as c:
        assert c.get(f"/api/api-keys/{k['id']}/usage").status_code == 200  # keys:manage may read it
    assert (
        ws.session.get("/api/api-keys/00000000-0000-0000-0000-000000000000/usage").status_code
        == 404
    )


def test_another_workspace_cannot_read_usage(make_workspace: object, ws: Workspace) -> None:
    other: Workspace = make_workspace()  # type: ignore[operator]
    assert other.session.get(f"/api/api-keys/{ws.key_id}/usage").status_code == 404
