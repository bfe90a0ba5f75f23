"""Sign-up, login, sessions, CSRF and logout."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Workspace, signup
from tests.servers import Server, make_server


def login(
    server: Server, email: str, password: str, client: httpx.Client | None = None
) -> httpx.Response:
    c = client or httpx.Client(base_url=server.url)
    return c.post("/api/auth/login", json={"email": email, "password": password})


def test_signup_logs_in_and_me_shows_the_workspace(server: Server) -> None:
    client, data, email, _ = signup(server, workspace_name="Acme Retail")
    assert data["user"]["email"] == email and data["user"]["role"] == "owner"
    me = client.get("/api/auth/me").json()["data"]
    assert me["workspace"]["name"] == "Acme Retail" and me["auth"] == "session"
    assert "keys:manage" in me["scopes"]


def test_signup_validation_and_duplicates(server: Server) -> None:
    _, _, email, _ = signup(server)
    r = httpx.post(
        f"{server.url}/api/auth/signup",
        json={
            "email": email.upper(),
            "password": "another password",
            "name": "B",
            "workspace_name": "W",
        },
    )
    assert r.status_code == 409 and "email" in r.json()["message"]
    for body, field in [
        (
            {"email": "nope", "password": "long enough pw", "name": "A", "workspace_name": "W"},
            "email",
        ),
        (
            {"email": "a@example.com", "password": "short", "name": "A", "workspace_name": "W"},
            "password",
        ),
        (
            {
                "email": "a@example.com",
                "password": "long enough pw",
                "name": " ",
                "workspace_name": "W",
            },
            "name",
        ),
        ({"email": "a@example.com", "password": "long enough pw", "name": "A"}, "workspace_name"),
        (
            {
                "email": "a@example.com",
                "password": "long enough pw",
                "name": "A",
                "workspace_name": "W",
                "x": 1,
            },
            "x",
        ),
    ]:
        r = httpx.post(f"{server.url}/api/auth/signup", json=body)
        assert r.status_code == 422, r.text
        assert field in r.json()["message"]
    assert (
        login(server, "a@example.com", "long enough pw").status_code == 401
    )  # nothing was written


def test_wrong_email_and_wrong_password_answer_the_same(ws: Workspace) -> None:
    wrong_pw = login(ws.server, ws.email, "not the password")
    no_user = login(ws.server, "nobody@example.com", "not the password")
    malformed = login(ws.server, "not an email", "x")
    assert wrong_pw.status_code == no_user.status_code == malformed.status_code == 401
    assert wrong_pw.json() == no_user.json() == malformed.json()
    assert "set-cookie" not in wrong_pw.headers


def test_login_is_case_insensitive_on_email(ws: Workspace) -> None:
    assert login(ws.server, ws.email.upper(), ws.password).status_code == 200


def test_login_rotates_the_session(ws: Workspace) -> None:
    with httpx.Client(base_url=ws.server.url) as browser:
        assert login(ws.server, ws.email, ws.password, browser).status_code == 200
        old = browser.cookies["aisoule_session"]
        assert browser.get("/api/auth/me").status_code == 200
        assert login(ws.server, ws.email, ws.password, browser).status_code == 200
        new = browser.cookies["aisoule_session"]
        assert new != old
    with httpx.Client(base_url=ws.server.url, cookies={"aisoule_session": old}) as stale:
        assert stale.get("/api/auth/me").status_code == 401
    with httpx.Client(base_url=ws.server.url, cookies={"aisoule_session": new}) as fresh:
        assert fresh.get("/api/auth/me").status_code == 200


def test_cookie_writes_need_the_csrf_header(ws: Workspace) -> None:
    token = ws.session.headers.pop("X-CSRF-Token")
    try:
        r = ws.session.post("/api/contacts", json={"phone_number": "+14155550130"})
        assert r.status_code == 403 and "X-CSRF-Token" in r.json()["message"]
        r = ws.session.post(
            "/api/contacts",
            json={"phone_number": "+14155550130"},
            headers={"X-CSRF-Token": "forged"},
        )
        assert r.status_code == 403
        assert (
            ws.session.get("/api/contacts").json()["data"]["total"] == 0
        )  # reads need no token; nothing written
        r = ws.session.post(
            "/api/contacts", json={"phone_number": "+14155550130"}, headers={"X-CSRF-Token": token}
        )
        assert r.status_code == 201
    finally:
        ws.session.headers["X-CSRF-Token"] = token
    # API-key requests need no CSRF token.
    with ws.client() as c:
        assert c.post("/api/contacts", json={"phone_number": "+14155550131"}).status_code == 201


def test_logout_ends_the_session(ws: Workspace) -> None:
    with httpx.Client(base_url=ws.server.url) as browser:
        data = login(ws.server, ws.email, ws.password, browser).json()["data"]
        cookie = browser.cookies["aisoule_session"]
        r = browser.post("/api/auth/logout", headers={"X-CSRF-Token": data["csrf_token"]})
        assert r.status_code == 200
    with httpx.Client(base_url=ws.server.url, cookies={"aisoule_session": cookie}) as stale:
        assert stale.get("/api/auth/me").status_code == 401


def test_session_cookie_is_never_an_api_key(ws: Workspace) -> None:
    with httpx.Client(base_url=ws.server.url, cookies={"aisoule_session": ws.key}) as c:
        assert c.get("/api/contacts").status_code == 401


@pytest.fixture(scope="module")
def closed_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    srv = make_server("sqlite", tmp_path_factory.mktemp("closed"), AISOULE_SIGNUP_ENABLED="false")
    srv.cli("migrate")
    srv.start()
    yield srv
    srv.stop()


def test_signup_can_be_disabled(closed_server: Server) -> None:
    r = httpx.post(
        f"{closed_server.url}/api/auth/signup",
        json={
            "email": "a@example.com",
            "password": "long enough pw",
            "name": "A",
            "workspace_name": "W",
        },
    )
    assert r.status_code == 403 and r.json()["status"] == "error"
