"""The input guard on every operation of the OpenAPI document, over real HTTP on both databases.

Each string the document lets a client send (every string field of every request body, found by
walking its schema, strings inside free-form objects included, and every query and path
parameter) gets NUL, a C0 and a C1 control character, a lone surrogate and an over-long value;
each body field also gets JSON nested too deep. Every answer must be a 422 naming that field as
the client wrote it, and afterwards nothing may have changed: neither the workspace's objects
nor what the embedded emulator (standing in for Meta) holds. A new endpoint, field or parameter
without the guard fails here, since the cases come from the document, not from a list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import ALL_SCOPES, signup
from tests.servers import Server

Path = tuple[str | int, ...]
# The documented limits (docs/security.md, "Input guard").
MAX_STRING = 4096
MAX_DEPTH = 32

BODY_VALUES = {
    "NUL": "a\x00b",
    "C0 control": "a\x1bb",
    "C1 control": "a\x9bb",
    "lone surrogate": "a\ud800b",
    "over-long": "x" * (MAX_STRING + 1),
}
# Parameters hold no multi-line text: tab and newline are refused there too. Lone surrogates
# cannot arrive in a URL (invalid UTF-8 is decoded to U+FFFD), so they are a body matter.
PARAM_VALUES = {
    "NUL": "a\x00b",
    "tab": "a\tb",
    "newline": "a\nb",
    "C1 control": "a\x85b",
    "over-long": "x" * (MAX_STRING + 1),
}
# Meta's webhook deliveries are raw bytes checked by signature (no body schema); the rest of the
# document's operations are all here.
SESSION_ONLY = {"/api/audit-log", "/api/auth/workspaces", "/api/auth/switch-workspace"}


@dataclass
class Target:
    server: Server
    http: httpx.Client  # X-API-Key with every scope
    owner: httpx.Client  # the owner's cookie session
    ids: dict[str, str]  # path parameter -> a real object's id (PUT must not need a 404)

    def client(self, path: str) -> httpx.Client:
        return self.owner if path in SESSION_ONLY else self.http


@pytest.fixture(scope="module")
def target(server: Server) -> Iterator[Target]:
    owner, _, _, _ = signup(server)
    r = owner.post("/api/api-keys", json={"name": "guard", "scopes": ALL_SCOPES})
    assert r.status_code == 201, r.text
    created = r.json()["data"]["api_key"]
    http = httpx.Client(base_url=server.url, headers={"X-API-Key": created["key"]}, timeout=30)
    contact = http.post("/api/contacts", json={"phone_number": "+919876543210", "name": "Asha"})
    assert contact.status_code == 201, contact.text
    account = http.get("/api/accounts").json()["data"]["accounts"][0]
    ids = {
        "contact_id": contact.json()["data"]["contact"]["id"],
        "account_id": account["id"],
        "key_id": created["id"],
    }
    yield Target(server, http, owner, ids)
    http.close()
    owner.close()


@pytest.fixture(scope="module")
def spec(target: Target) -> dict[str, Any]:
    r = target.http.get("/openapi.json")
    assert r.status_code == 200
    return dict(r.json())


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def string_sites(spec: dict[str, Any], schema: dict[str, Any], path: Path = ()) -> Iterator[Path]:
    """Every place in a body schema where the client may put a string: string fields (enums
    too), list items, map values, and any key of a free-form object."""
    schema = _resolve(spec, schema)
    for member in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
        yield from string_sites(spec, member, path)
    kind = schema.get("type")
    if kind == "string" or (not schema and path):  # {}: any value at all
        yield path
    elif kind == "array" and "items" in schema:
        yield from string_sites(spec, schema["items"], (*path, 0))
    elif kind == "object":
        for name, prop in schema.get("properties", {}).items():
            yield from string_sites(spec, prop, (*path, name))
        extra = schema.get("additionalProperties", not schema.get("properties"))
        if extra is True:
            yield (*path, "key")
        elif isinstance(extra, dict):
            yield from string_sites(spec, extra, (*path, "key"))


def top_fields(spec: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    schema = _resolve(spec, schema)
    names: list[str] = []
    for member in schema.get("anyOf", []):
        names += top_fields(spec, member)
    return names + list(schema.get("properties", {}))


def put(path: Path, value: Any) -> Any:
    """The smallest JSON that holds ``value`` at ``path``."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    return [put(rest, value)] if isinstance(head, int) else {head: put(rest, value)}


@dataclass
class Operation:
    method: str
    path: str
    body: dict[str, Any] | None
    parameters: list[dict[str, Any]]

    def url(self, ids: dict[str, str], override: tuple[str, str] | None = None) -> str:
        url = self.path
        for p in self.parameters:
            if p["in"] == "path":
                value = ids.get(p["name"], "x")
                if override is not None and override[0] == p["name"]:
                    value = override[1]
                url = url.replace("{" + p["name"] + "}", quote(value, safe=""))
        return url


def operations(spec: dict[str, Any]) -> list[Operation]:
    out = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            content = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            params = [p for p in op.get("parameters", []) if p["in"] in ("query", "path")]
            out.append(Operation(method.upper(), path, content.get("schema"), params))
    return out


def named_field(r: httpx.Response) -> str | None:
    body = r.json()
    if "error" in body:  # /v1
        return body["error"].get("field")  # type: ignore[no-any-return]
    errors = body.get("errors") or [{}]
    return errors[0].get("field")  # type: ignore[no-any-return]


def snapshot(t: Target) -> dict[str, Any]:
    """What a write would change: the workspace's objects, and what the emulator holds."""
    http = t.http

    def get(path: str) -> Any:
        r = http.get(path, params={"per_page": 100} if path.startswith("/api") else None)
        assert r.status_code == 200, (path, r.text)
        return r.json()

    keys = get("/api/api-keys")["data"]["api_keys"]
    emulator = f"{t.server.url}/emulator/_emulator"
    return {
        "contacts": get("/api/contacts")["data"],
        "contacts_v1": get("/v1/contacts"),
        "accounts": get("/api/accounts")["data"],
        "templates": get("/api/templates")["data"],
        "messages": get("/api/messages")["data"],
        "keys": [(k["id"], k["name"], k["status"], k["scopes"]) for k in keys],
        "audit": t.owner.get("/api/audit-log", params={"per_page": 100}).json()["data"],
        "meta_messages": httpx.get(f"{emulator}/messages", timeout=10).json()["data"],
        "meta_numbers": httpx.get(f"{emulator}/numbers", timeout=10).json()["data"],
    }


def sync_templates(t: Target) -> dict[str, Any]:
    """Sync takes whatever templates Meta holds: one created there by a refused request shows."""
    r = t.http.post("/api/templates/sync", json={})
    assert r.status_code == 200, r.text
    return dict(r.json()["data"])


def send(t: Target, op: Operation, url: str, body: Any) -> httpx.Response:
    client = t.client(op.path)
    if body is None:
        return client.request(op.method, url)
    # ASCII JSON, so a lone surrogate travels as the escape "\ud800" that JSON allows.
    content = json.dumps(body).encode()
    return client.request(
        op.method, url, content=content, headers={"Content-Type": "application/json"}
    )


def test_every_string_of_every_operation_is_guarded(target: Target, spec: dict[str, Any]) -> None:
    sync_templates(target)
    before = snapshot(target)
    failures: list[str] = []
    cases = 0
    ops = operations(spec)
    # Sanity: the walk reaches the fields the issue found 500s in.
    reached = {
        (op.path, ".".join(map(str, site)))
        for op in ops
        if op.body is not None
        for site in string_sites(spec, op.body)
    }
    assert {
        ("/api/messages/send", "template.name"),
        ("/v1/messages", "text.body"),
        ("/v1/messages", "image.caption"),
        ("/api/messages/send", "interactive.key"),
        ("/api/templates", "name"),
        ("/api/templates", "components.0.key"),
        ("/api/accounts", "access_token"),
        ("/api/contacts", "tags.0"),
    } <= reached

    def check(op: Operation, what: str, url: str, body: Any, field: str) -> None:
        nonlocal cases
        cases += 1
        r = send(target, op, url, body)
        got = named_field(r) if r.headers.get("content-type", "").endswith("json") else None
        if r.status_code != 422 or got != field:
            failures.append(
                f"{op.method} {op.path} {field} ({what}): {r.status_code} {r.text[:200]}"
            )

    for op in ops:
        if op.path.startswith("/webhooks/") and op.method == "POST":
            continue
        for param in op.parameters:
            for what, value in PARAM_VALUES.items():
                if param["in"] == "query":
                    url = op.url(target.ids) + "?" + quote(param["name"]) + "=" + quote(value)
                else:
                    url = op.url(target.ids, (param["name"], value))
                check(op, what, url, {} if op.body else None, param["name"])
        if op.body is None:
            continue
        for site in dict.fromkeys(string_sites(spec, op.body)):
            for what, value in BODY_VALUES.items():
                field = ".".join(map(str, site))
                check(op, what, op.url(target.ids), put(site, value), field)
        deep: Any = "x"
        for _ in range(MAX_DEPTH + 1):
            deep = {"a": deep}
        for name in dict.fromkeys(top_fields(spec, op.body)):
            check(op, "over-deep", op.url(target.ids), {name: deep}, name)

    assert not failures, f"{len(failures)} of {cases} cases:\n" + "\n".join(failures)
    assert cases > 300, cases
    assert snapshot(target) == before
    after = sync_templates(target)
    assert after["created"] == 0 and after["deleted"] == 0, after


def test_json_nested_far_too_deep_is_refused_quickly(target: Target, spec: dict[str, Any]) -> None:
    """100,000 levels: refused (4xx) without a crash, whatever the operation."""
    body = b"[" * 100_000 + b"]" * 100_000
    for op in operations(spec):
        if op.body is None:
            continue
        r = target.client(op.path).request(
            op.method,
            op.url(target.ids),
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert 400 <= r.status_code < 500, (op.method, op.path, r.status_code, r.text[:200])


def test_tab_and_newline_are_text_in_bodies(target: Target) -> None:
    """Multi-line text stays possible: the guard refuses controls, not line breaks."""
    r = target.http.put(
        f"/api/contacts/{target.ids['contact_id']}",
        json={"custom_fields": {"note": "line one\nline two\tend\r\n"}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["contact"]["custom_fields"]["note"] == "line one\nline two\tend\r\n"


def test_otherwise_valid_requests_with_one_nul_write_nothing(target: Target) -> None:
    """The issue's 500s (on PostgreSQL): complete, valid requests but for one NUL."""
    sync_templates(target)
    before = snapshot(target)
    template = {
        "name": "order_update",
        "language": "en_US",
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Your order\u0000 has shipped"}],
    }
    account = {
        "name": "Main\u0000line",
        "phone_number_id": "106540352242922",
        "waba_id": "102290129340398",
        "access_token": "emulator-token",
    }
    cases = [
        ("/api/templates", template, "components.0.text"),
        ("/api/accounts", account, "name"),
        ("/v1/messages", {"to": "+919876543210", "text": {"body": "hi\u0000"}}, "text.body"),
        (
            "/api/messages/send",
            {"to": "+919876543210", "type": "template", "template": {"name": "a\u0000"}},
            "template.name",
        ),
        (
            "/api/messages/send",
            {
                "to": "+919876543210",
                "type": "image",
                "image": {"link": "https://example.com/a.png", "caption": "\u0000"},
            },
            "image.caption",
        ),
    ]
    for path, body, field in cases:
        r = target.http.post(path, json=body)
        assert r.status_code == 422 and named_field(r) == field, (path, r.text)
    assert snapshot(target) == before
    after = sync_templates(target)
    assert after["created"] == 0 and after["deleted"] == 0, after
