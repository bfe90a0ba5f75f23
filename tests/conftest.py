"""Every API test runs twice: against a server on SQLite and one on PostgreSQL, over real HTTP."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.servers import Server, make_server, pg_url, reset_postgres

# argon2 at its lowest cost in tests, as Django's docs advise for theirs: a sign-up or a login
# costs about 5 ms of CPU instead of about 400 ms (every server and CLI command the tests start
# inherits this environment). tests/auth/test_password_cost.py checks the setting is honoured
# and that the product's default stays argon2-cffi's.
os.environ.setdefault("AISOULE_PASSWORD_HASH_TIME_COST", "1")
os.environ.setdefault("AISOULE_PASSWORD_HASH_MEMORY_KIB", "8192")
os.environ.setdefault("AISOULE_PASSWORD_HASH_PARALLELISM", "1")

# The service-level harness (fixtures `harness`, `clock`), for every test folder.
pytest_plugins = ["tests.harness"]

_counter = itertools.count()
ALL_SCOPES = [
    "contacts:read",
    "contacts:write",
    "messages:send",
    "templates:read",
    "templates:write",
    "campaigns:read",
    "campaigns:write",
    "accounts:read",
    "accounts:write",
    "keys:manage",
    "conversations:read",
    "conversations:write",
    "workspace:manage",
]


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    backend = request.param
    srv = make_server(backend, tmp_path_factory.mktemp("srv"))
    if backend == "postgresql":
        try:
            reset_postgres(srv.database_url)
        except Exception as exc:  # a failure, never a skip: CI must have PostgreSQL
            pytest.fail(f"PostgreSQL is not reachable at {pg_url()}: {exc!r}", pytrace=False)
    srv.cli("migrate")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def anon(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@dataclass
class Workspace:
    """A fresh workspace: its owner's cookie session and an API key with every scope."""

    server: Server
    email: str
    password: str
    session: httpx.Client  # cookie-authenticated, sends X-CSRF-Token
    key: str
    key_id: str
    workspace_id: str

    def client(self, key: str | None = None, bearer: bool = False) -> httpx.Client:
        k = key or self.key
        headers = {"Authorization": f"Bearer {k}"} if bearer else {"X-API-Key": k}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=30)

    def new_key(self, **body: Any) -> dict[str, Any]:
        body.setdefault("name", "test key")
        r = self.session.post("/api/api-keys", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json()["data"]["api_key"])


def signup(server: Server, **overrides: Any) -> tuple[httpx.Client, dict[str, Any], str, str]:
    n = next(_counter)
    email = overrides.pop("email", f"owner{n}-{uuid.uuid4().hex[:8]}@example.com")
    password = overrides.pop("password", "correct horse battery staple")
    body = {"email": email, "password": password, "name": "Asha Rao", "workspace_name": f"Shop {n}"}
    body.update(overrides)
    client = httpx.Client(base_url=server.url, timeout=30)
    r = client.post("/api/auth/signup", json=body)
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    client.headers["X-CSRF-Token"] = data["csrf_token"]
    return client, data, email, password


@pytest.fixture
def make_workspace(server: Server) -> Iterator[Any]:
    made: list[Workspace] = []

    def make() -> Workspace:
        session, data, email, password = signup(server)
        r = session.post("/api/api-keys", json={"name": "all scopes", "scopes": ALL_SCOPES})
        assert r.status_code == 201, r.text
        key = r.json()["data"]["api_key"]
        ws = Workspace(
            server, email, password, session, key["key"], key["id"], data["workspace"]["id"]
        )
        made.append(ws)
        return ws

    yield make
    for ws in made:
        ws.session.close()


@pytest.fixture
def ws(make_workspace: Any) -> Workspace:
    return make_workspace()  # type: ignore[no-any-return]


@pytest.fixture
def api(ws: Workspace) -> Iterator[httpx.Client]:
    """API-key client (X-API-Key) for a fresh workspace."""
    with ws.client() as client:
        yield client


@pytest.fixture
def v1(ws: Workspace) -> Iterator[httpx.Client]:
    """Bearer client for a fresh workspace, as seed 003 shows."""
    with ws.client(bearer=True) as client:
        yield client


# make test runs two pytest-xdist workers with --dist loadfile, which by default hands out files
# by their number of tests, most first: the fuzz file (few tests, each a hundred cases per
# operation, the longest file) came last and ran alone for minutes while the other worker idled.
# These files go first, in this order, the rest by number of tests as before; the Makefile passes
# --no-loadscope-reorder so the order stands.
LONGEST_FIRST = (
    "tests/test_fuzz.py",
    "tests/ratelimit/test_limits.py",
    "tests/messages/test_end_to_end.py",
    "tests/auth/test_throttling.py",
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def path(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    counts: dict[str, int] = {}
    for item in items:
        counts[path(item)] = counts.get(path(item), 0) + 1
    rank = {p: i for i, p in enumerate(LONGEST_FIRST)}
    # Stable: the order within a file (pytest's grouping by server) is kept.
    items.sort(key=lambda item: (rank.get(path(item), len(rank)), -counts[path(item)]))
