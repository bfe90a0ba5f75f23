"""Property-based fuzzing of every documented operation with schemathesis, against a real server.

Each operation gets AISOULE_FUZZ_EXAMPLES generated cases (15 in `make test`, 1000 in
`make fuzz`) in schemathesis' examples, coverage and fuzzing phases, valid and invalid ones, all
authenticated (sign-up and login included; logout excluded, see below). Every answer must be a
non-5xx, with a documented status, headers and content type, in the documented shape.
"""

from __future__ import annotations

import itertools
import os
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import ALL_SCOPES, signup
from tests.servers import Server, make_server, pg_url, sibling_postgres

EXAMPLES = int(os.environ.get("AISOULE_FUZZ_EXAMPLES", "15"))
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    # Beyond the three the issue asks for: every status and header is documented too.
    status_code_conformance,
    response_headers_conformance,
]
# Operations that need a logged-in owner, not a key: fuzzed with the owner's session cookie.
SESSION_ONLY = {
    "GET /api/audit-log",
    "GET /api/auth/workspaces",
    "POST /api/auth/switch-workspace",
}
# Operations without any input (no parameter, body or credentials): nothing to vary.
INPUTLESS = {"GET /healthz"}


@dataclass
class Target:
    """The fuzzed server, a workspace's credentials, and real objects to aim id routes at."""

    server: Server
    key: str
    key_id: str
    cookie: str
    http: httpx.Client
    contact_uuid: str = ""
    contact_cnt: str = ""
    calls: Counter[str] = field(default_factory=Counter)
    _phones: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_contact(self, surface: str) -> str:
        """A fresh contact; its uuid (/api) or cnt_ id (/v1)."""
        while True:  # the fuzzer may have taken a phone number already
            phone = f"91900{next(self._phones):07d}"
            if surface == "v1":
                r = self.http.post("/v1/contacts", json={"phone": phone})
                if r.status_code == 201:
                    return str(r.json()["contact"]["id"])
            else:
                r = self.http.post("/api/contacts", json={"phone_number": f"+{phone}"})
                if r.status_code == 201:
                    return str(r.json()["data"]["contact"]["id"])
            assert r.status_code in (200, 409), r.text

    def new_key(self) -> str:
        r = self.http.post("/api/api-keys", json={"name": "to revoke"})
        assert r.status_code == 201, r.text
        return str(r.json()["data"]["api_key"]["id"])

    def aim(self, case: Any) -> None:
        """Half of the cases of an id route (chosen by their generated id) get a real object's id
        instead: random ids only ever reach the 404 branch. DELETE gets a fresh object each time."""
        params = case.path_parameters
        if not params or zlib.crc32(repr(sorted(params.items())).encode()) % 2:
            return
        delete = case.method.upper() == "DELETE"
        if "contact_id" in params:
            if case.path.startswith("/v1"):
                params["contact_id"] = self.new_contact("v1") if delete else self.contact_cnt
            else:
                params["contact_id"] = self.new_contact("api") if delete else self.contact_uuid
        elif "key_id" in params:
            params["key_id"] = self.new_key() if delete else self.key_id


@pytest.fixture(scope="module")
def target(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A server of the fuzz module's own, on its own database (an SQLite file, or a PostgreSQL
    database next to the test database): the fuzzer signs up workspaces (the documented example
    among them) and writes thousands of rows that other tests must not meet."""
    tmp = tmp_path_factory.mktemp("fuzz")
    if server.backend == "sqlite":
        srv = make_server("sqlite", tmp)
    else:
        try:
            url = sibling_postgres(pg_url(), "fuzz")
        except Exception as exc:  # a failure, never a skip
            pytest.fail(f"cannot create the fuzz database next to {pg_url()}: {exc!r}")
        srv = make_server("postgresql", tmp, database_url=url)
    srv.cli("migrate")
    srv.start()
    session, _, _, _ = signup(srv)
    try:
        r = session.post("/api/api-keys", json={"name": "fuzzer", "scopes": ALL_SCOPES})
        assert r.status_code == 201, r.text
        created = r.json()["data"]["api_key"]
        cookie = session.cookies["aisoule_session"]
    finally:
        session.close()
    with httpx.Client(base_url=srv.url, headers={"X-API-Key": created["key"]}, timeout=30) as http:
        t = Target(srv, created["key"], created["id"], cookie, http)
        t.contact_uuid = t.new_contact("api")
        t.contact_cnt = t.new_contact("v1")
        yield t
    srv.stop()


@pytest.fixture(scope="module")
def api_schema(target: Target) -> Any:
    loaded = schemathesis.openapi.from_url(f"{target.server.url}/openapi.json", timeout=30)
    loaded.config.update(base_url=target.server.url, request_timeout=30)
    return loaded


schema = (
    schemathesis.pytest.from_fixture("api_schema")
    # Every case authenticates with a key, so logout would end nothing; and fuzzing it with the
    # owner's cookie would end the session the audit-log cases use.
    .exclude(path="/api/auth/logout")
    # A Server-Sent Events stream never ends by itself: tests/inbox/test_live.py checks it.
    .exclude(path="/api/events")
)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis/ directory; every run explores afresh
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms_to_the_openapi(case: Any, target: Target) -> None:
    target.aim(case)
    if case.operation.label in SESSION_ONLY:
        headers = {"Cookie": f"aisoule_session={target.cookie}"}
    else:
        headers = {"X-API-Key": target.key}
    case.call_and_validate(headers=headers, checks=CHECKS)
    target.calls[case.operation.label] += 1


def test_every_operation_got_its_cases(target: Target, api_schema: Any) -> None:
    """The fuzz test above really sent EXAMPLES cases or more to every operation."""
    if not target.calls:
        pytest.skip("the fuzz test did not run")
    labels = {
        op.ok().label
        for op in api_schema.get_all_operations()
        if op.ok().path not in ("/api/auth/logout", "/api/events")
    }
    short = {label: target.calls[label] for label in labels - INPUTLESS}
    assert all(n >= EXAMPLES for n in short.values()), short
