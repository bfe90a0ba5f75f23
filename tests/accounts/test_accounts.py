"""/api/accounts: the sandbox from the first start, connecting a number validated against Meta
(the embedded emulator stands in for it), sealed secrets, default account, isolation."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import Workspace, signup
from tests.servers import Server, make_server

APP_SECRET = "my-meta-app-secret"
SECRETS = ("emulator-token", APP_SECRET, "my-verify-token")


def _digits(n: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(n))


def new_number(server: Server) -> dict[str, Any]:
    """A number of its own on the embedded emulator (which stands in for Meta's Graph API), as
    connecting asks for: a number belongs to one workspace, so no two tests share one."""
    display = "1555" + _digits(7)
    body = {
        "phone_number_id": "3" + _digits(14),
        "waba_id": "4" + _digits(14),
        "display_phone_number": display,
        "verified_name": "Asha's Shop",
    }
    r = httpx.post(f"{server.url}/emulator/_emulator/numbers", json=body, timeout=10)
    assert r.status_code == 201, r.text
    return {
        "phone_number_id": body["phone_number_id"],
        "waba_id": body["waba_id"],
        "access_token": "emulator-token",
        "app_secret": APP_SECRET,
        "verify_token": "my-verify-token",
        "display": "+" + display,
    }


@pytest.fixture
def number(server: Server) -> dict[str, Any]:
    return new_number(server)


def _body(number: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**{k: v for k, v in number.items() if k != "display"}, **extra}


def _no_secrets(body: str) -> None:
    for secret in SECRETS:
        assert secret not in body


def test_new_workspace_has_a_sandbox_account(api: httpx.Client) -> None:
    r = api.get("/api/accounts")
    assert r.status_code == 200, r.text
    accounts = r.json()["data"]["accounts"]
    assert len(accounts) == 1
    sandbox = accounts[0]
    assert sandbox["provider"] == "emulator"
    assert sandbox["is_default"] is True
    assert sandbox["status"] == "connected"
    assert sandbox["phone_number"].startswith("+1555")
    assert sandbox["webhook_url"].endswith("/webhooks/whatsapp")
    assert "access_token" not in sandbox and "app_secret" not in sandbox
    _no_secrets(r.text)


def test_connect_validates_with_meta_and_never_returns_secrets(
    api: httpx.Client, number: dict[str, Any]
) -> None:
    r = api.post("/api/accounts", json=_body(number, name="Main line", is_default=True))
    assert r.status_code == 201, r.text
    acc = r.json()["data"]["account"]
    # Read from the Graph API (the emulator's phone number node), not from the request.
    assert acc["display_name"] == "Asha's Shop"
    assert acc["phone_number"] == number["display"]
    assert acc["quality_rating"] == "GREEN"
    assert acc["messaging_limit"] == "TIER_1K"
    assert acc["provider"] == "cloud_api"
    assert acc["has_app_secret"] is True and acc["has_verify_token"] is True
    assert acc["is_default"] is True
    _no_secrets(r.text)
    listed = api.get("/api/accounts").json()["data"]["accounts"]
    assert [a["is_default"] for a in listed].count(True) == 1
    got = api.get(f"/api/accounts/{acc['id']}")
    assert got.status_code == 200 and got.json()["data"]["account"]["id"] == acc["id"]
    _no_secrets(got.text)
    again = api.post("/api/accounts", json=_body(number))
    assert again.status_code == 409, again.text
    assert again.json()["errors"][0]["field"] == "phone_number_id"


def test_meta_refusals_are_422_naming_the_field_and_write_nothing(
    api: httpx.Client, number: dict[str, Any]
) -> None:
    good = _body(number)
    before = api.get("/api/accounts").json()["data"]["total"]
    bad_token = api.post("/api/accounts", json={**good, "access_token": "expired"})
    assert bad_token.status_code == 422, bad_token.text
    assert bad_token.json()["errors"][0]["field"] == "access_token"
    assert "190" in bad_token.json()["message"]
    unknown = api.post("/api/accounts", json={**good, "phone_number_id": "999999"})
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["errors"][0]["field"] == "phone_number_id"
    for body, field in (
        ({**good, "phone_number_id": "abc"}, "phone_number_id"),
        ({k: v for k, v in good.items() if k != "access_token"}, "access_token"),
        ({**good, "throughput": 0}, "throughput"),
        ({**good, "surprise": 1}, "surprise"),
    ):
        r = api.post("/api/accounts", json=body)
        assert r.status_code == 422, r.text
        assert field in r.text
    assert api.get("/api/accounts").json()["data"]["total"] == before


def test_update_default_and_delete(api: httpx.Client, number: dict[str, Any]) -> None:
    acc = api.post("/api/accounts", json=_body(number)).json()["data"]["account"]
    sandbox = next(
        a
        for a in api.get("/api/accounts").json()["data"]["accounts"]
        if a["provider"] == "emulator"
    )
    assert sandbox["is_default"] is True and acc["is_default"] is False
    r = api.put(f"/api/accounts/{acc['id']}", json={"name": "Renamed", "is_default": True})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["account"]["name"] == "Renamed"
    by_id = {a["id"]: a for a in api.get("/api/accounts").json()["data"]["accounts"]}
    assert by_id[acc["id"]]["is_default"] and not by_id[sandbox["id"]]["is_default"]
    bad = api.put(f"/api/accounts/{acc['id']}", json={"access_token": "expired"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "access_token"
    assert api.get(f"/api/accounts/{acc['id']}").json()["data"]["account"]["status"] == "connected"
    gone = api.delete(f"/api/accounts/{acc['id']}")
    assert gone.status_code == 200, gone.text
    assert gone.json()["data"] == {"id": acc["id"], "deleted": True}
    assert api.get(f"/api/accounts/{acc['id']}").status_code == 404
    # The remaining account became the default again.
    remaining = api.get("/api/accounts").json()["data"]["accounts"]
    assert [a["is_default"] for a in remaining] == [True]


def test_secrets_are_sealed_at_rest(
    ws: Workspace, api: httpx.Client, number: dict[str, Any]
) -> None:
    token = "emulator-token"
    r = api.post("/api/accounts", json=_body(number))
    assert r.status_code == 201, r.text
    rows = _raw_account_rows(ws)
    assert rows, "no account rows found"
    for row in rows:
        for value in row.values():
            text = value.hex() if isinstance(value, bytes | memoryview) else str(value)
            raw = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
            assert token.encode() not in raw and APP_SECRET.encode() not in raw, text
            assert "my-verify-token" not in text


def _raw_account_rows(ws: Workspace) -> list[dict[str, Any]]:
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def read() -> list[dict[str, Any]]:
        from aisoule.config import normalize_database_url

        engine = create_async_engine(normalize_database_url(ws.server.database_url))
        try:
            async with engine.connect() as conn:
                result = await conn.execute(
                    text(
                        "SELECT * FROM whatsapp_accounts WHERE CAST(workspace_id AS TEXT) LIKE :w"
                    ),
                    {"w": "%" + ws.workspace_id.replace("-", "%")},
                )
                return [dict(r._mapping) for r in result]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_scopes_and_isolation(ws: Workspace, make_workspace: Any, number: dict[str, Any]) -> None:
    reader = ws.new_key(scopes=["accounts:read"])
    with ws.client(reader["key"]) as c:
        assert c.get("/api/accounts").status_code == 200
        r = c.post("/api/accounts", json=_body(number))
        assert r.status_code == 403 and "accounts:write" in r.text
    other = make_workspace()
    with ws.client() as mine, other.client() as theirs:
        my_id = mine.get("/api/accounts").json()["data"]["accounts"][0]["id"]
        assert theirs.get(f"/api/accounts/{my_id}").status_code == 404
        assert theirs.put(f"/api/accounts/{my_id}", json={"name": "x"}).status_code == 404
        assert theirs.delete(f"/api/accounts/{my_id}").status_code == 404
        assert mine.get(f"/api/accounts/{my_id}").status_code == 200


def test_an_emulator_number_the_emulator_refuses_is_a_422(api: httpx.Client) -> None:
    sandbox = api.get("/api/accounts").json()["data"]["accounts"][0]
    # The sandbox's phone number id used as a WABA id: the emulator refuses (ids are one kind).
    r = api.post(
        "/api/accounts",
        json={
            "provider": "emulator",
            "phone_number_id": "5550001",
            "waba_id": sandbox["phone_number_id"],
            "access_token": "emulator-token",
        },
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "phone_number_id"


def test_a_number_or_waba_of_another_workspace_is_refused(
    server: Server, make_workspace: Any, number: dict[str, Any]
) -> None:
    """A WhatsApp number and its WABA belong to one workspace: B cannot connect A's number (and
    then read its customers' messages or send from it), nor another number of A's WABA."""
    a, b = make_workspace(), make_workspace()
    with a.client() as mine, b.client() as theirs:
        assert mine.post("/api/accounts", json=_body(number)).status_code == 201
        before = theirs.get("/api/accounts").json()["data"]["total"]
        stolen = theirs.post("/api/accounts", json=_body(number, app_secret="b-chose-this"))
        assert stolen.status_code == 409, stolen.text
        assert stolen.json()["errors"][0]["field"] == "phone_number_id"
        assert "another workspace" in stolen.json()["message"]
        assert a.workspace_id not in stolen.text and "Shop" not in stolen.text
        # Another number in A's WABA: the WABA is A's too.
        sibling = new_number(server)
        r = httpx.post(
            f"{server.url}/emulator/_emulator/numbers",
            json={"phone_number_id": "5" + _digits(14), "waba_id": number["waba_id"]},
            timeout=10,
        )
        assert r.status_code == 201, r.text
        in_a_waba = {**_body(sibling), "phone_number_id": r.json()["phone_number_id"]}
        in_a_waba["waba_id"] = number["waba_id"]
        refused = theirs.post("/api/accounts", json=in_a_waba)
        assert refused.status_code == 409, refused.text
        assert refused.json()["errors"][0]["field"] == "waba_id"
        assert a.workspace_id not in refused.text
        assert theirs.get("/api/accounts").json()["data"]["total"] == before
        # A may hold several numbers of its own WABA.
        assert mine.post("/api/accounts", json=in_a_waba).status_code == 201
        # Once A disconnects the number, it is free for B.
        acc = next(
            x
            for x in mine.get("/api/accounts").json()["data"]["accounts"]
            if x["phone_number_id"] == number["phone_number_id"]
        )
        assert mine.delete(f"/api/accounts/{acc['id']}").status_code == 200
        assert theirs.post("/api/accounts", json=_body(number)).status_code == 409  # WABA: A's
        mine_left = [
            x
            for x in mine.get("/api/accounts").json()["data"]["accounts"]
            if x["waba_id"] == number["waba_id"]
        ]
        for x in mine_left:
            assert mine.delete(f"/api/accounts/{x['id']}").status_code == 200
        assert theirs.post("/api/accounts", json=_body(number)).status_code == 201


def test_the_emulators_shared_app_secret_is_refused(
    api: httpx.Client, number: dict[str, Any]
) -> None:
    """Every user of a sandbox can read the emulator's app secret: as an account's secret it
    would let anyone sign that account's webhooks."""
    r = api.post("/api/accounts", json=_body(number, app_secret="emulator-app-secret"))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "app_secret"
    sandbox = api.get("/api/accounts").json()["data"]["accounts"][0]
    r = api.put(f"/api/accounts/{sandbox['id']}", json={"app_secret": "emulator-app-secret"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "app_secret"


# -- no network I/O while the request holds the write lock ---------------------------------------


class Gate:
    """A stand-in Graph API whose phone-number read blocks until the test opens the gate: the
    test knows for certain that the connect request is waiting on "Meta" at that moment."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gate.entered.set()
                gate.opened.wait(60)
                node = {
                    "id": self.path.rsplit("/", 1)[-1].split("?")[0],
                    "display_phone_number": "+1 555-010-0200",
                    "verified_name": "Gate Shop",
                    "quality_rating": "GREEN",
                }
                raw = json.dumps(node).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Gate]]:
    """A SQLite server (one writer: where a held transaction blocks every other write) whose
    Graph API is the gate."""
    gate = Gate()
    srv = make_server(
        "sqlite", tmp_path_factory.mktemp("gated"), AISOULE_WHATSAPP_GRAPH_URL=gate.url
    )
    srv.cli("migrate")
    srv.start()
    yield srv, gate
    gate.opened.set()
    srv.stop()
    gate.server.shutdown()


def test_connect_holds_no_write_lock_while_meta_answers(gated: tuple[Server, Gate]) -> None:
    srv, gate = gated
    session, *_ = signup(srv)
    key = session.post(
        "/api/api-keys", json={"name": "k", "scopes": ["accounts:write", "contacts:write"]}
    )
    assert key.status_code == 201, key.text
    headers = {"X-API-Key": key.json()["data"]["api_key"]["key"]}
    result: dict[str, httpx.Response] = {}

    def connect() -> None:
        with httpx.Client(base_url=srv.url, headers=headers, timeout=90) as c:
            result["r"] = c.post(
                "/api/accounts",
                json={
                    "phone_number_id": "7" + _digits(14),
                    "waba_id": "8" + _digits(14),
                    "access_token": "EAAG-real-looking-token",
                    "app_secret": APP_SECRET,
                },
            )

    worker = threading.Thread(target=connect)
    worker.start()
    try:
        assert gate.entered.wait(30), "the connect request never asked the Graph API"
        # "Meta" has not answered: another write goes through now (before the fix it waited for
        # SQLite's write lock, held by the connect request, until the gate opened).
        with httpx.Client(base_url=srv.url, headers=headers, timeout=20) as c:
            r = c.post("/api/contacts", json={"phone_number": "+919876500011", "name": "Ravi"})
        assert r.status_code == 201, r.text
        assert not gate.opened.is_set()
    finally:
        gate.opened.set()
        worker.join(60)
    assert result["r"].status_code == 201, result["r"].text
    assert result["r"].json()["data"]["account"]["display_name"] == "Gate Shop"
    session.close()
