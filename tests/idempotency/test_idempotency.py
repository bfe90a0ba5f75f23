"""Idempotency-Key on POST: one resource however often or concurrently the request is sent."""

from __future__ import annotations

import concurrent.futures
import uuid

import httpx
import pytest

from tests.conftest import Workspace


def _post(ws: Workspace, path: str, body: dict[str, object], key: str) -> httpx.Response:
    with ws.client() as c:
        return c.post(path, json=body, headers={"Idempotency-Key": key})


@pytest.mark.parametrize(
    ("path", "body", "count_path"),
    [
        ("/api/contacts", {"phone_number": "+919876543210", "name": "John Doe"}, "/api/contacts"),
        ("/v1/contacts", {"phone": "918856879188", "first_name": "Priya"}, "/v1/contacts"),
        ("/api/api-keys", {"name": "once"}, "/api/api-keys"),
    ],
)
def test_fifty_concurrent_posts_make_one_resource(
    ws: Workspace, path: str, body: dict[str, object], count_path: str
) -> None:
    key = uuid.uuid4().hex
    with ws.client() as c:
        before = c.get(count_path).json()
    with concurrent.futures.ThreadPoolExecutor(25) as pool:
        responses = list(pool.map(lambda _: _post(ws, path, body, key), range(50)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}, statuses
    firsts = [
        r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r.headers
    ]
    replays = [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
    assert len(firsts) == 1
    assert all(r.content == firsts[0].content for r in replays)
    for r in responses:
        if r.status_code == 409:
            assert "Idempotency-Key" in r.text
    # After the first finished, every retry replays the stored answer, byte for byte.
    again = _post(ws, path, body, key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.content == firsts[0].content
    with ws.client() as c:
        after = c.get(count_path).json()
    if count_path == "/api/api-keys":
        assert len(after["data"]["api_keys"]) == len(before["data"]["api_keys"]) + 1
    elif count_path == "/api/contacts":
        assert after["data"]["total"] == before["data"]["total"] + 1
    else:
        assert after["pagination"]["total"] == before["pagination"]["total"] + 1


def test_same_key_different_request_is_422(ws: Workspace) -> None:
    key = "order-1234"
    first = _post(ws, "/v1/contacts", {"phone": "918856879188", "tags": ["a"]}, key)
    assert first.status_code == 201
    # Key order and whitespace do not make a different request.
    with ws.client() as c:
        same = c.post(
            "/v1/contacts",
            content=b'{ "tags": ["a"],   "phone": "918856879188" }',
            headers={"Idempotency-Key": key, "Content-Type": "application/json"},
        )
    assert same.status_code == 201 and same.headers["Idempotent-Replayed"] == "true"
    other = _post(ws, "/v1/contacts", {"phone": "918856879188", "tags": ["b"]}, key)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert other.json()["error"]["field"] == "Idempotency-Key"
    other_path = _post(ws, "/api/contacts", {"phone_number": "+918856879188"}, key)
    assert other_path.status_code == 422
    with ws.client() as c:
        assert c.get("/v1/contacts").json()["contacts"][0]["tags"] == ["a"]


def test_keys_are_per_workspace(make_workspace: object) -> None:
    a: Workspace = make_workspace()  # type: ignore[operator]
    b: Workspace = make_workspace()  # type: ignore[operator]
    key = "shared-key"
    ra = _post(a, "/v1/contacts", {"phone": "918856879188"}, key)
    rb = _post(b, "/v1/contacts", {"phone": "918856879188", "first_name": "B"}, key)
    assert ra.status_code == rb.status_code == 201
    assert "Idempotent-Replayed" not in rb.headers
    assert rb.json()["contact"]["first_name"] == "B"


def test_failed_request_leaves_the_key_free(ws: Workspace) -> None:
    key = uuid.uuid4().hex
    bad = _post(ws, "/v1/contacts", {"phone": "12"}, key)
    assert bad.status_code == 422
    good = _post(ws, "/v1/contacts", {"phone": "918856879188"}, key)
    assert good.status_code == 201 and "Idempotent-Replayed" not in good.headers


@pytest.mark.parametrize("value", ["", "x" * 256, "tab\there", "é"])
def test_malformed_keys_are_400(ws: Workspace, value: str) -> None:
    with ws.client() as c:
        r = c.post(
            "/v1/contacts",
            json={"phone": "918856879188"},
            headers={"Idempotency-Key": value.encode()},
        )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == "Idempotency-Key"
    with ws.client() as c:
        assert c.get("/v1/contacts").json()["pagination"]["total"] == 0


def test_without_the_header_posts_are_not_deduplicated(ws: Workspace) -> None:
    with ws.client() as c:
        assert c.post("/api/api-keys", json={"name": "x"}).status_code == 201
        assert c.post("/api/api-keys", json={"name": "x"}).status_code == 201


def test_every_post_of_both_surfaces_honours_the_header(ws: Workspace) -> None:
    """Every POST operation the OpenAPI document lists under /api and /v1, but sign-up, login and
    logout, reads Idempotency-Key (a malformed one is refused before anything else happens), and
    no other method does: the guard is declared per route, so a new POST without it fails here."""
    with ws.client() as c:
        paths = c.get("/openapi.json").json()["paths"]
        posts = [
            p
            for p, ops in paths.items()
            if "post" in ops
            and p.startswith(("/api/", "/v1/"))
            and not p.startswith("/api/auth/")
            and "{" not in p
        ]
        assert {"/v1/contacts", "/api/contacts", "/api/messages/send", "/v1/messages"} <= set(posts)
        for path in posts:
            r = c.post(path, json={}, headers={"Idempotency-Key": "not valid"})
            assert r.status_code == 400, (path, r.status_code, r.text)
            assert "Idempotency-Key" in r.text, (path, r.text)
        # GET ignores the header, malformed or not.
        r = c.get("/v1/contacts", headers={"Idempotency-Key": "not valid"})
        assert r.status_code == 200, r.text
        # The auth routes do not take it (they have no workspace to keep it in).
        r = c.post("/api/auth/login", json={}, headers={"Idempotency-Key": "not valid"})
        assert r.status_code == 422, r.text
