"""HTTP hardening: request ids and security headers on every response, a CSP on HTML, CORS closed
unless an origin is allow-listed, HSTS and Secure cookies over HTTPS only (X-Forwarded-Proto
believed from trusted proxies only)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import Workspace, signup
from tests.servers import Server, make_server

CRM = "https://crm.example.com"
EVIL = "https://evil.example.com"


def _start(server: Server, tmp: Path, *args: str, **env: str) -> Server:
    """Another server on the session server's database (already migrated)."""
    srv = make_server(server.backend, tmp, database_url=server.database_url, **env)
    srv.args = list(args)
    if "--ssl-certfile" in args:
        srv.scheme = "https"
    srv.start()
    return srv


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def edge_server(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """CORS open to one origin; X-Forwarded-* believed from 127.0.0.1 (a proxy on this host)."""
    srv = _start(
        server,
        tmp_path_factory.mktemp("edge"),
        AISOULE_CORS_ORIGINS=CRM,
        AISOULE_TRUSTED_PROXIES="127.0.0.1",
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def https_server(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("https")
    cert, key = _self_signed(tmp)
    srv = _start(server, tmp, "--ssl-certfile", str(cert), "--ssl-keyfile", str(key))
    yield srv
    srv.stop()


def _hardened(r: httpx.Response) -> None:
    assert r.headers.get("x-request-id"), (r.request.method, r.url, r.status_code)
    assert r.headers.get("x-content-type-options") == "nosniff", (r.url, r.status_code)
    assert r.headers.get("referrer-policy") == "no-referrer", (r.url, r.status_code)


def _cookies(r: httpx.Response) -> dict[str, str]:
    """Set-Cookie lines by cookie name."""
    return {line.split("=", 1)[0]: line for line in r.headers.get_list("set-cookie")}


def _login(srv: Server, email: str, password: str, **headers: str) -> httpx.Response:
    with httpx.Client(base_url=srv.url, verify=False, timeout=30) as c:
        r = c.post("/api/auth/login", json={"email": email, "password": password}, headers=headers)
    assert r.status_code == 200, r.text
    assert {"aisoule_session", "csrf_token"} <= _cookies(r).keys()
    return r


def test_every_response_carries_a_request_id_and_security_headers(ws: Workspace) -> None:
    with httpx.Client(base_url=ws.server.url, timeout=30) as c:
        key = {"X-API-Key": ws.key}
        json = {"Content-Type": "application/json"}
        responses = [
            c.get("/healthz"),
            c.get("/openapi.json"),
            c.get("/docs"),
            c.get("/redoc"),
            c.get("/api/contacts", headers=key),
            c.get("/v1/contacts", headers=key),
            c.post("/v1/contacts", json={"phone": "918856879188"}, headers=key),
            c.get("/api/contacts"),  # 401
            c.get("/api/contacts", headers={"X-API-Key": "aisk_wrong"}),  # 401
            c.get("/api/audit-log", headers=key),  # 403
            c.get("/v1/contacts/cnt_999999", headers=key),  # 404
            c.get("/api/nope"),  # 404, no route
            c.patch("/v1/contacts", headers=key),  # 405
            c.post("/v1/contacts", content=b"{", headers={**key, **json}),  # 400
            c.get("/v1/contacts?tag=%00", headers=key),  # 422, the input guard
            c.post("/v1/contacts", content=b"x" * (1024 * 1024 + 1), headers={**key, **json}),
            c.post(
                "/v1/contacts", content=b"phone=1", headers={**key, "Content-Type": "text/plain"}
            ),
            c.post("/v1/contacts", json={"phone": "1"}, headers=key),  # 422
            c.get("/api/contacts?per_page=1000", headers=key),  # 422
            ws.session.get("/api/audit-log"),
            c.options("/v1/contacts", headers={"Origin": EVIL}),
        ]
        wrong = {"email": ws.email, "password": "not the password"}
        for _ in range(12):  # 10 failed logins per account, then 429
            responses.append(c.post("/api/auth/login", json=wrong))
    assert sorted({r.status_code for r in responses}) == [
        200, 201, 400, 401, 403, 404, 405, 413, 415, 422, 429,
    ]  # fmt: skip
    for r in responses:
        _hardened(r)


def test_a_valid_incoming_request_id_is_echoed_and_an_invalid_one_replaced(
    anon: httpx.Client,
) -> None:
    for path in ("/healthz", "/api/contacts", "/v1/contacts", "/api/nope"):
        r = anon.get(path, headers={"X-Request-ID": "req-2026.06_02-abc"})
        assert r.headers["x-request-id"] == "req-2026.06_02-abc", path
    ids = set()
    for bad in (b"", b"has space", b"x" * 129, "new\u00e9line".encode(), b"<script>"):
        r = anon.get("/healthz", headers={"X-Request-ID": bad})
        assert r.headers["x-request-id"].encode() not in (bad, b""), bad
        ids.add(r.headers["x-request-id"])
    assert len(ids) == 5, "a fresh id for each request"


def test_html_carries_a_content_security_policy_and_json_does_not_need_one(
    anon: httpx.Client,
) -> None:
    for path in ("/docs", "/redoc"):
        r = anon.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
        assert r.headers["x-frame-options"] == "DENY"
    assert anon.get("/healthz").headers["content-type"].startswith("application/json")


def test_cors_is_closed_by_default(ws: Workspace) -> None:
    with httpx.Client(base_url=ws.server.url, timeout=30) as c:
        r = c.get("/v1/contacts", headers={"Origin": CRM, "X-API-Key": ws.key})
        assert r.status_code == 200
        assert "access-control-allow-origin" not in r.headers
        r = c.options(
            "/v1/contacts",
            headers={
                "Origin": CRM,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-api-key, content-type",
            },
        )
        assert "access-control-allow-origin" not in r.headers
        assert "access-control-allow-credentials" not in r.headers


def test_cors_is_open_to_an_allow_listed_origin_only(edge_server: Server) -> None:
    session, _, _, _ = signup(edge_server)
    try:
        r = session.post("/api/api-keys", json={"name": "crm"})
        key = r.json()["data"]["api_key"]["key"]
    finally:
        session.close()
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key, content-type, idempotency-key",
    }
    with httpx.Client(base_url=edge_server.url, timeout=30) as c:
        r = c.options("/v1/contacts", headers={"Origin": CRM, **preflight})
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == CRM
        assert r.headers["access-control-allow-credentials"] == "true"
        assert "POST" in r.headers["access-control-allow-methods"]
        allowed = r.headers["access-control-allow-headers"].lower()
        assert {"x-api-key", "content-type", "idempotency-key"} <= set(allowed.split(", "))
        _hardened(r)

        r = c.get("/v1/contacts", headers={"Origin": CRM, "X-API-Key": key})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == CRM
        exposed = r.headers["access-control-expose-headers"].lower()
        for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "retry-after", "x-request-id"):
            assert name in exposed, exposed
        _hardened(r)

        r = c.options("/v1/contacts", headers={"Origin": EVIL, **preflight})
        assert "access-control-allow-origin" not in r.headers
        _hardened(r)
        r = c.get("/v1/contacts", headers={"Origin": EVIL, "X-API-Key": key})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        r = c.get("/v1/contacts", headers={"Origin": "https://crm.example.com.evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_https_sends_hsts_and_secure_cookies(
    https_server: Server, ws: Workspace, anon: httpx.Client
) -> None:
    with httpx.Client(base_url=https_server.url, verify=False, timeout=30) as c:
        for path in ("/healthz", "/api/contacts", "/docs"):
            r = c.get(path)
            assert r.url.scheme == "https"
            hsts = r.headers["strict-transport-security"]
            assert "max-age=" in hsts and int(hsts.split("max-age=")[1].split(";")[0]) >= 31536000
            _hardened(r)
    r = _login(https_server, ws.email, ws.password)
    for line in _cookies(r).values():
        assert "secure" in line.lower().split("; "), line
        assert "samesite=lax" in line.lower(), line
    assert "httponly" in _cookies(r)["aisoule_session"].lower()

    # Plain HTTP: no HSTS (it would be ignored, and would pin nothing), no Secure cookies.
    assert "strict-transport-security" not in anon.get("/healthz").headers
    for line in _cookies(_login(ws.server, ws.email, ws.password)).values():
        assert "secure" not in line.lower().split("; "), line


def test_x_forwarded_proto_is_believed_from_trusted_proxies_only(
    ws: Workspace, edge_server: Server
) -> None:
    # ws.server trusts no proxy: a client claiming HTTPS gets neither HSTS nor Secure cookies.
    r = _login(ws.server, ws.email, ws.password, **{"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in r.headers
    for line in _cookies(r).values():
        assert "secure" not in line.lower().split("; "), line

    # edge_server trusts 127.0.0.1, a TLS-terminating proxy on this host.
    session, _, email, password = signup(edge_server)
    session.close()
    r = _login(edge_server, email, password, **{"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" in r.headers
    for line in _cookies(r).values():
        assert "secure" in line.lower().split("; "), line
    r = _login(edge_server, email, password)  # the proxy says nothing: plain HTTP
    assert "strict-transport-security" not in r.headers
    for line in _cookies(r).values():
        assert "secure" not in line.lower().split("; "), line
