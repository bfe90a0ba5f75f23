"""Every example of both seeds, verbatim: the curl calls, the playground payload, the response shapes."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import Workspace, signup
from tests.servers import Server

PLAYGROUND = """{
    "phone": "918856879188",
    "first_name": "Priya",
    "last_name": "Sharma",
    "email": "priya@example.com",
    "tags": ["Lead", "High-Priority"],
    "custom_fields": {
      "shopify_id": "cust_29813a",
      "acquisition_source": "AdWords"
    }
  }"""

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def test_seed_000_login_curl(server: Server) -> None:
    # curl -X POST https://app.aisoule.com/api/auth/login -H "Content-Type: application/json"
    #   -d '{"email": "you@company.com", "password": "your_password"}'
    client, _, _, _ = signup(server, email="you@company.com", password="your_password")
    client.close()
    r = httpx.post(
        f"{server.url}/api/auth/login",
        headers={"Content-Type": "application/json"},
        content='{"email": "you@company.com", "password": "your_password"}',
    )
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "success"
    assert body["data"]["user"]["email"] == "you@company.com"
    assert body["data"]["csrf_token"]
    cookie = r.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookie if c.startswith("aisoule_session="))
    assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie.replace("Lax", "lax")
    assert "Secure" not in session_cookie  # plain HTTP here; Secure is set when served over HTTPS
    assert any(c.startswith("csrf_token=") for c in cookie)


def test_seed_000_first_call_list_contacts(ws: Workspace) -> None:
    # curl -H "X-API-Key: your_key" https://app.aisoule.com/api/contacts
    with ws.client() as c:
        created = c.post(
            "/api/contacts",
            json={
                "phone_number": "+919876543210",
                "name": "John Doe",
                "tags": ["customer"],
                "stage": "Customer",
            },
        )
        assert created.status_code == 201, created.text
        r = httpx.get(f"{ws.server.url}/api/contacts", headers={"X-API-Key": ws.key})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "success"
    data = body["data"]
    assert set(data) >= {"contacts", "total", "page"}
    assert data["total"] == 1 and data["page"] == 1
    contact = data["contacts"][0]
    # The seed's example contact, field for field.
    assert contact["phone_number"] == "+919876543210"
    assert contact["name"] == "John Doe"
    assert contact["tags"] == ["customer"]
    assert contact["stage"] == "Customer"
    assert re.fullmatch(r"[0-9a-f-]{36}", contact["id"])


def test_seed_000_endpoint_table_answers(ws: Workspace) -> None:
    with ws.client() as c:
        for path in ("/api/contacts", "/api/templates", "/api/campaigns", "/api/accounts"):
            r = c.get(path)
            assert r.status_code == 200, (path, r.text)
            assert r.json()["status"] == "success"
        for name in ("templates", "campaigns"):
            data = c.get(f"/api/{name}").json()["data"]
            assert data == {name: [], "total": 0, "page": 1, "per_page": 20}
        # Every new workspace has its sandbox WhatsApp account from the first start.
        accounts = c.get("/api/accounts").json()["data"]
        assert accounts["total"] == 1 and accounts["accounts"][0]["provider"] == "emulator"
        # POST /messages/send answers; a free-form text to someone who never wrote is refused
        # before Meta sees it (tests/messages has the whole conversation).
        r = c.post("/api/messages/send", json={"to": "+919876543210", "text": "Hello"})
        assert r.status_code == 422 and r.json()["code"] == "outside_24h_window", r.text


def test_seed_000_error_envelope(anon: httpx.Client) -> None:
    r = anon.get("/api/contacts")
    assert r.status_code == 401
    body = r.json()
    assert body["status"] == "error"
    assert body["message"].startswith("Authentication required")


def test_seed_003_playground_curl(ws: Workspace) -> None:
    r = httpx.post(
        f"{ws.server.url}/v1/contacts",
        headers={"Authorization": f"Bearer {ws.key}", "Content-Type": "application/json"},
        content=PLAYGROUND,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["success"] is True and body["created"] is True
    contact = body["contact"]
    assert re.fullmatch(r"cnt_\d+", contact["id"])
    assert contact["phone"] == "918856879188"
    assert contact["first_name"] == "Priya" and contact["last_name"] == "Sharma"
    assert contact["email"] == "priya@example.com"
    assert contact["tags"] == ["Lead", "High-Priority"]
    assert contact["custom_fields"] == {
        "shopify_id": "cust_29813a",
        "acquisition_source": "AdWords",
    }
    assert ISO_Z.match(contact["created_at"])

    # The same call again updates the same contact.
    again = httpx.post(
        f"{ws.server.url}/v1/contacts",
        headers={"Authorization": f"Bearer {ws.key}", "Content-Type": "application/json"},
        content=PLAYGROUND,
    )
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["contact"]["id"] == contact["id"]


def test_seed_003_list_response_shape(v1: httpx.Client) -> None:
    v1.post(
        "/v1/contacts",
        json={
            "phone": "918856879188",
            "first_name": "Priya",
            "last_name": "Sharma",
            "email": "priya@example.com",
            "tags": ["Lead"],
        },
    )
    r = v1.get("/v1/contacts")
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    assert body["success"] is True
    assert body["pagination"] == {"total": 1, "limit": 20, "offset": 0}
    contact = body["contacts"][0]
    expected = {"id", "phone", "first_name", "last_name", "email", "tags", "created_at"}
    assert expected <= set(contact)
    assert contact["phone"] == "918856879188"
    assert contact["first_name"] == "Priya" and contact["last_name"] == "Sharma"
    assert contact["email"] == "priya@example.com"
    assert contact["tags"] == ["Lead"]
    assert ISO_Z.match(contact["created_at"])
    # Query parameters of the seed.
    assert (
        v1.get("/v1/contacts", params={"limit": 100, "offset": 0, "tag": "Lead"}).status_code == 200
    )
    assert v1.get("/v1/contacts", params={"limit": 101}).status_code == 422


def test_openapi_documents_both_surfaces_with_seed_examples(anon: httpx.Client) -> None:
    spec = anon.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/contacts",
        "/api/contacts/{contact_id}",
        "/api/auth/login",
        "/api/api-keys",
        "/api/templates",
        "/api/campaigns",
        "/api/accounts",
        "/v1/contacts",
        "/v1/contacts/{contact_id}",
    ):
        assert path in paths, path
    text = anon.get("/openapi.json").text
    assert "918856879188" in text and "cust_29813a" in text and "you@company.com" in text
    assert anon.get("/docs").status_code == 200
