"""Media links go through kit/http: over real HTTP against the app, on SQLite and PostgreSQL.

No test here sends a packet beyond this machine: the only servers are on 127.0.0.5 (the one the
test server's allow-list admits, AISOULE_HTTP_ALLOW_PRIVATE_NETWORKS=127.0.0.5/32) and a trap on
127.0.0.1 / ::1 that counts every TCP connection made to it. Private, link-local and metadata
addresses are only ever named in URLs that must be refused before any connection: the refusal
reason "address not allowed" is given by the checks that run before connecting, and the trap
proves that loopback names and literals got no connection either.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.conftest import ALL_SCOPES, signup
from tests.messages.test_end_to_end import CUSTOMER, customer_writes, sandbox, wait_for
from tests.servers import Server, make_server

SECRET = "TOPSECRET-7f3a"  # in every answer of the targets: it must never reach the client
ALLOWED_HOST = "127.0.0.5"


class Targets:
    """An aiohttp server on 127.0.0.5 (admitted) and a TCP trap on 127.0.0.1 and ::1 (not)."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.trap_accepts = 0
        self.held = threading.Event()  # a /slow request has arrived and is being held
        self._release: asyncio.Event | None = None
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        assert self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{name:.*}", self._handle)
        self.runner = web.AppRunner(app, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, ALLOWED_HOST, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        async def trap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.trap_accepts += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 0\r\n\r\n"
            )
            await writer.drain()
            writer.close()

        sock = socket.socket(socket.AF_INET)
        sock.bind(("127.0.0.1", 0))
        self.trap_port = sock.getsockname()[1]
        sock.close()
        self.trap4 = await asyncio.start_server(trap, "127.0.0.1", self.trap_port)
        self.trap6 = await asyncio.start_server(trap, "::1", self.trap_port)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits.append(name)
        secret = {"X-Internal-Token": SECRET}
        if name == "photo.jpg":
            return web.Response(body=b"\xff\xd8" + SECRET.encode(), content_type="image/jpeg")
        if name == "redirect":
            raise web.HTTPFound(request.query["to"], headers=secret, text=SECRET)
        if name == "loop":
            raise web.HTTPFound(f"/loop?n={int(request.query.get('n', 0)) + 1}")
        if name == "huge.jpg":  # HEAD: only the headers say how large the file is
            return web.Response(
                headers={"Content-Type": "image/jpeg", "Content-Length": str(50 * 2**20)}
            )
        if name == "page":
            return web.Response(text=SECRET, content_type="text/html", headers=secret)
        if name == "big-headers.jpg":
            return web.Response(body=b"", headers={"X-Padding": SECRET + "x" * 20_000})
        if name == "slow.jpg":
            self.held.set()
            assert self._release is not None
            await self._release.wait()
            return web.Response(body=b"", content_type="image/jpeg")
        return web.Response(status=404, text=SECRET)

    def url(self, path: str) -> str:
        return f"http://{ALLOWED_HOST}:{self.port}/{path}"

    def release(self) -> None:
        assert self._release is not None
        self.loop.call_soon_threadsafe(self._release.set)

    def close(self) -> None:
        self.release()
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        for trap in (self.trap4, self.trap6):
            trap.close()
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def targets() -> Iterator[Targets]:
    t = Targets()
    yield t
    t.close()


@pytest.fixture(scope="module")
def ssrf_server(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on the session server's database whose allow-list admits 127.0.0.5 only."""
    srv = make_server(
        server.backend,
        tmp_path_factory.mktemp("ssrf"),
        database_url=server.database_url,
        AISOULE_HTTP_ALLOW_PRIVATE_NETWORKS=f"{ALLOWED_HOST}/32",
        AISOULE_HTTP_TIMEOUT_SECONDS="1",
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(ssrf_server: Server) -> Iterator[httpx.Client]:
    """A workspace whose customer wrote in (free-form media may be sent to them)."""
    session, _, _, _ = signup(ssrf_server)
    r = session.post("/api/api-keys", json={"name": "ssrf", "scopes": ALL_SCOPES})
    assert r.status_code == 201, r.text
    key = r.json()["data"]["api_key"]["key"]
    with httpx.Client(base_url=ssrf_server.url, headers={"X-API-Key": key}, timeout=30) as c:
        customer_writes(ssrf_server, sandbox(c)["phone_number_id"], "Hi, send me the photo")
        wait_for(
            lambda: c.get("/api/messages", params={"direction": "inbound"}).json()["data"]["total"],
            "the customer's message",
        )
        yield c
    session.close()


def _counts(api: httpx.Client) -> tuple[int, int]:
    return (
        api.get("/api/messages").json()["data"]["total"],
        api.get("/api/contacts").json()["data"]["total"],
    )


def _send_image(api: httpx.Client, link: str) -> httpx.Response:
    return api.post(
        "/api/messages/send",
        json={"to": "+" + CUSTOMER, "type": "image", "image": {"link": link}},
    )


def _assert_refused(r: httpx.Response, field: str, reason: str | None = None) -> None:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["errors"][0]["field"] == field, body
    assert body["message"].startswith(f"{field}: "), body
    if reason is not None:
        assert body["message"] == f"{field}: the URL could not be checked: {reason}", body
    assert SECRET not in r.text
    assert "X-Internal-Token" not in r.text


def test_an_allowed_link_is_checked_and_queued(api: httpx.Client, targets: Targets) -> None:
    before = len(targets.hits)
    r = _send_image(api, targets.url("photo.jpg"))
    assert r.status_code == 202, r.text
    assert targets.hits[before:] == ["photo.jpg"]  # the HEAD went through kit/http


def test_the_embedded_emulator_is_admitted(ssrf_server: Server, api: httpx.Client) -> None:
    """The default admits the server's own emulator URL (and, above, nothing else of it)."""
    r = _send_image(api, f"{ssrf_server.url}/emulator/media/sample.jpg")
    assert r.status_code == 202, r.text


def _forbidden(ssrf_server: Server, trap: int) -> list[Any]:
    own = f"127.0.0.1:{ssrf_server.port}"
    return [
        pytest.param(f"http://127.0.0.1:{trap}/a.jpg", id="loopback"),
        pytest.param(f"http://{own}/api/contacts?x=a.jpg", id="own-origin-outside-emulator"),
        pytest.param(f"http://{own}/emulator/../api/contacts", id="own-origin-dot-dot"),
        pytest.param(f"http://localhost:{trap}/a.jpg", id="name-resolving-to-loopback"),
        pytest.param(f"http://[::1]:{trap}/a.jpg", id="ipv6-loopback"),
        pytest.param(f"http://[::ffff:127.0.0.1]:{trap}/a.jpg", id="ipv4-mapped"),
        pytest.param(f"http://0.0.0.0:{trap}/a.jpg", id="unspecified"),
        pytest.param("http://10.0.0.1/a.jpg", id="rfc1918"),
        pytest.param("http://192.168.1.1/a.jpg", id="rfc1918-192"),
        pytest.param("http://169.254.169.254/latest/meta-data/a.jpg", id="cloud-metadata"),
        pytest.param("http://100.64.0.1/a.jpg", id="cgnat"),
        pytest.param("http://[fd00::1]/a.jpg", id="ipv6-ula"),
        pytest.param("http://[fe80::1]/a.jpg", id="ipv6-link-local"),
        pytest.param("http://224.0.0.1/a.jpg", id="multicast"),
        pytest.param("http://240.0.0.1/a.jpg", id="reserved"),
    ]


def test_private_and_loopback_links_are_refused_before_connecting(
    ssrf_server: Server, api: httpx.Client, targets: Targets
) -> None:
    before = _counts(api)
    accepts = targets.trap_accepts
    for param in _forbidden(ssrf_server, targets.trap_port):
        (link,) = param.values
        r = _send_image(api, link)
        _assert_refused(r, "image.link", "address not allowed")
    assert targets.trap_accepts == accepts, "a refused link was connected to"
    assert _counts(api) == before


def test_a_redirect_to_a_forbidden_address_is_refused(api: httpx.Client, targets: Targets) -> None:
    before = _counts(api)
    accepts, hits = targets.trap_accepts, len(targets.hits)
    for to in (
        f"http://127.0.0.1:{targets.trap_port}/a.jpg",
        f"http://localhost:{targets.trap_port}/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
    ):
        r = _send_image(api, targets.url("redirect") + "?to=" + to)
        _assert_refused(r, "image.link", "address not allowed")
    assert targets.hits[hits:] == ["redirect"] * 3  # the allowed hop was made, the next was not
    assert targets.trap_accepts == accepts
    r = _send_image(api, targets.url("loop"))
    _assert_refused(r, "image.link", "more than 3 redirects")
    assert _counts(api) == before


def test_credentials_in_the_link_are_refused(api: httpx.Client, targets: Targets) -> None:
    hits = len(targets.hits)
    link = f"http://user:pw@{ALLOWED_HOST}:{targets.port}/photo.jpg"
    _assert_refused(_send_image(api, link), "image.link", "credentials in URLs are not accepted")
    assert len(targets.hits) == hits


def test_slow_oversize_and_odd_targets_are_refused_without_echo(
    api: httpx.Client, targets: Targets
) -> None:
    before = _counts(api)
    r = _send_image(api, targets.url("slow.jpg"))
    _assert_refused(r, "image.link", "no answer within 1 s")
    r = _send_image(api, targets.url("big-headers.jpg"))
    _assert_refused(r, "image.link", "the answer was too large or not valid HTTP")
    r = _send_image(api, targets.url("huge.jpg"))
    _assert_refused(r, "image.link")
    assert r.json()["code"] == "unsupported_media" and "5 MB" in r.json()["message"]
    r = _send_image(api, targets.url("page"))  # the type the server gives is not repeated
    _assert_refused(r, "image.link")
    assert "text/html" not in r.text and "image/jpeg" in r.text
    assert _counts(api) == before


def test_v1_refuses_a_document_link_in_its_own_shape(
    ssrf_server: Server, api: httpx.Client, targets: Targets
) -> None:
    r = api.post(
        "/v1/messages",
        json={
            "to": CUSTOMER,
            "type": "document",
            "document": {"link": f"http://localhost:{targets.trap_port}/a.pdf"},
        },
    )
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["field"] == "document.link"
    assert err["message"] == "document.link: the URL could not be checked: address not allowed"


def test_no_transaction_is_held_while_the_link_is_checked(
    ssrf_server: Server, api: httpx.Client, targets: Targets
) -> None:
    """The HEAD is held open by the target; meanwhile the database must be free: on SQLite
    another writer takes the write lock at once, on PostgreSQL no transaction of the app that
    began before the HEAD is still open."""
    targets.held.clear()
    result: dict[str, httpx.Response] = {}
    link = targets.url("slow.jpg")
    sender = threading.Thread(target=lambda: result.setdefault("r", _send_image(api, link)))
    sender.start()
    try:
        assert targets.held.wait(10), "the media check never reached the target"
        held_at = time.time()
        if ssrf_server.backend == "sqlite":
            path = ssrf_server.database_url.split("///", 1)[1]
            conn = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")  # raises "database is locked" if a lock is held
                conn.execute("ROLLBACK")
            finally:
                conn.close()
        else:
            assert _open_transactions_since(ssrf_server.database_url, held_at) == 0
    finally:
        sender.join(10)
    _assert_refused(result["r"], "image.link", "no answer within 1 s")


def _open_transactions_since(url: str, since: float) -> int:
    import asyncpg

    async def run() -> int:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%' "
                    "AND xact_start <= to_timestamp($1)",
                    since,
                )
            )
        finally:
            await conn.close()

    return asyncio.run(run())


def test_every_connection_is_checked_again_dns_rebinding(targets: Targets) -> None:
    """In-process: a name that resolves to the admitted address first and to 127.0.0.1 next
    (all on this machine) is refused on the second connection; nothing reaches the trap."""
    from aiohttp.abc import AbstractResolver, ResolveResult

    from aisoule.kit import http

    class Rebinding(AbstractResolver):
        def __init__(self) -> None:
            self.answers = [ALLOWED_HOST, "127.0.0.1"]

        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            addr = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            return [
                {"hostname": host, "host": addr, "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": 0}
            ]  # fmt: skip

        async def close(self) -> None:
            pass

    policy = http.Policy(allow_networks=http.parse_networks(f"{ALLOWED_HOST}/32"), timeout=5)
    accepts = targets.trap_accepts

    async def run() -> tuple[int, str]:
        async with http.SafeClient(policy, resolver=Rebinding()) as client:
            first = await client.request("HEAD", f"http://media.test:{targets.port}/photo.jpg")
            try:
                await client.request("HEAD", f"http://media.test:{targets.trap_port}/photo.jpg")
            except http.FetchError as exc:
                return first.status, exc.reason
            return first.status, "connected"

    assert asyncio.run(run()) == (200, "address not allowed")
    assert targets.trap_accepts == accepts
