"""Tenant isolation across 10 workspaces: every id route, with every other workspace's ids, is a 404
that changes nothing; no list ever shows another workspace's row.

The id routes are read from the OpenAPI document, so a new route without an entry in ID_ROUTES
fails this test until its isolation is covered.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from aisoule.config import normalize_database_url
from aisoule.kit.time import utcnow
from aisoule.models import (
    Campaign,
    Contact,
    Conversation,
    Message,
    MessageTemplate,
    WhatsAppAccount,
)
from tests.conftest import ALL_SCOPES, Workspace, signup
from tests.servers import Server

N = 10


@dataclass
class Tenant:
    n: int
    ws: Workspace
    user_id: str
    key: httpx.Client  # the all-scopes key
    uuids: list[str] = field(default_factory=list)  # every contact, as /api knows it
    cnt_ids: list[str] = field(default_factory=list)  # every contact, as /v1 knows it
    key_ids: list[str] = field(default_factory=list)
    listed: dict[str, set[str]] = field(default_factory=dict)  # templates, campaigns, accounts
    message_ids: list[str] = field(default_factory=list)
    # The inbox's ids: conversations, canned responses, teams, invitations, members.
    inbox: dict[str, list[str]] = field(default_factory=dict)

    # Each surface's own kind of id, and one of the other kind (a cnt_ id on /api is a 404 too).
    def api_ids(self) -> list[str]:
        return self.uuids + self.cnt_ids[:1]

    def v1_ids(self) -> list[str]:
        return self.cnt_ids + self.uuids[:1]


def _campaigns(t: Tenant) -> list[str]:
    return sorted(t.listed["campaigns"])


# Every (method, path) with an id in the OpenAPI document -> the ids of a victim to call it with.
ID_ROUTES: dict[tuple[str, str], Callable[[Tenant], list[str]]] = {
    ("GET", "/api/contacts/{contact_id}"): Tenant.api_ids,
    ("PUT", "/api/contacts/{contact_id}"): Tenant.api_ids,
    ("DELETE", "/api/contacts/{contact_id}"): Tenant.api_ids,
    ("GET", "/v1/contacts/{contact_id}"): Tenant.v1_ids,
    ("DELETE", "/v1/contacts/{contact_id}"): Tenant.v1_ids,
    ("DELETE", "/api/api-keys/{key_id}"): lambda t: t.key_ids,
    ("GET", "/api/api-keys/{key_id}/usage"): lambda t: t.key_ids,
    ("GET", "/api/accounts/{account_id}"): lambda t: sorted(t.listed["accounts"]),
    ("PUT", "/api/accounts/{account_id}"): lambda t: sorted(t.listed["accounts"]),
    ("DELETE", "/api/accounts/{account_id}"): lambda t: sorted(t.listed["accounts"]),
    ("GET", "/api/templates/{template_id}"): lambda t: sorted(t.listed["templates"]),
    ("DELETE", "/api/templates/{template_id}"): lambda t: sorted(t.listed["templates"]),
    ("GET", "/api/messages/{message_id}"): lambda t: t.message_ids,
    ("GET", "/v1/messages/{message_id}"): lambda t: t.message_ids,
    **{
        (method, f"{surface}/campaigns/{{campaign_id}}{suffix}"): _campaigns
        for surface in ("/api", "/v1")
        for method, suffix in (
            ("GET", ""),
            ("PUT", ""),
            ("DELETE", ""),
            ("POST", "/start"),
            ("POST", "/pause"),
            ("POST", "/resume"),
            ("POST", "/cancel"),
            ("POST", "/resend-unknown"),
            ("GET", "/recipients"),
            ("GET", "/stats"),
        )
    },
    **{
        (method, f"/api/conversations/{{conversation_id}}{tail}"): lambda t: t.inbox[
            "conversations"
        ]
        for method, tail in (
            ("GET", ""),
            ("GET", "/messages"),
            ("GET", "/events"),
            ("POST", "/reply"),
            ("POST", "/claim"),
            ("PUT", "/assignee"),
            ("PUT", "/team"),
            ("PUT", "/status"),
            ("POST", "/labels"),
            ("POST", "/notes"),
            ("POST", "/read"),
        )
    },
    ("PUT", "/api/canned-responses/{canned_id}"): lambda t: t.inbox["canned"],
    ("DELETE", "/api/canned-responses/{canned_id}"): lambda t: t.inbox["canned"],
    ("DELETE", "/api/teams/{team_id}"): lambda t: t.inbox["teams"],
    ("PUT", "/api/teams/{team_id}/members"): lambda t: t.inbox["teams"],
    ("POST", "/api/conversations/{conversation_id}/media"): lambda t: t.inbox["conversations"],
    # The victim's conversation with the victim's message (the second id is filled by _url).
    ("GET", "/api/conversations/{conversation_id}/messages/{message_id}/media"): lambda t: t.inbox[
        "conversations"
    ],
    ("DELETE", "/api/invitations/{invitation_id}"): lambda t: t.inbox["invitations"],
    ("PUT", "/api/members/{user_id}"): lambda t: [t.user_id],
    ("DELETE", "/api/members/{user_id}"): lambda t: [t.user_id],
}
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/conversations/{conversation_id}/reply"): {"text": "hijacked"},
    ("PUT", "/api/conversations/{conversation_id}/assignee"): {"assignee_id": None},
    ("PUT", "/api/conversations/{conversation_id}/team"): {"team_id": None},
    ("PUT", "/api/conversations/{conversation_id}/status"): {"status": "resolved"},
    ("POST", "/api/conversations/{conversation_id}/labels"): {"add": ["hijacked"]},
    ("POST", "/api/conversations/{conversation_id}/notes"): {"body": "hijacked"},
    ("PUT", "/api/teams/{team_id}/members"): {"user_ids": []},
    ("PUT", "/api/canned-responses/{canned_id}"): {"content": "hijacked"},
    ("PUT", "/api/members/{user_id}"): {"role": "agent"},
    ("PUT", "/api/accounts/{account_id}"): {"name": "Hijacked", "is_default": True},
    ("PUT", "/api/campaigns/{campaign_id}"): {"name": "Hijacked"},
    ("PUT", "/v1/campaigns/{campaign_id}"): {"name": "Hijacked"},
    ("POST", "/api/campaigns/{campaign_id}/start"): {"force": True},
    ("POST", "/v1/campaigns/{campaign_id}/start"): {"force": True},
    ("PUT", "/api/contacts/{contact_id}"): {
        "name": "Hijacked",
        "tags": ["hijacked"],
        "stage": "Lost",
        "custom_fields": {"owner": "attacker"},
    },
}


def _seed_listings(server: Server, tenants: list[Tenant]) -> None:
    """Templates and WhatsApp accounts have no API to create them without Meta, and campaigns
    need an approved template: write a few rows per workspace straight into the server's
    database, to have something to leak."""

    async def run() -> None:
        engine = create_async_engine(normalize_database_url(server.database_url))
        try:
            async with AsyncSession(engine) as session:
                now = utcnow()
                for t in tenants:
                    ws_id = uuid.UUID(t.ws.workspace_id)
                    rows: list[Any] = []
                    for i in range(2):
                        rows += [
                            MessageTemplate(
                                id=uuid.uuid4(),
                                workspace_id=ws_id,
                                name=f"welcome_{t.n}_{i}",
                                language="en",
                                category="MARKETING",
                                status="APPROVED",
                                created_at=now,
                                updated_at=now,
                            ),
                            Campaign(
                                id=uuid.uuid4(),
                                workspace_id=ws_id,
                                name=f"Diwali {t.n} {i}",
                                status="draft",
                                created_at=now,
                                updated_at=now,
                            ),
                            WhatsAppAccount(
                                id=uuid.uuid4(),
                                workspace_id=ws_id,
                                phone_number_id=f"77{t.n:03d}{i:02d}",
                                waba_id=f"88{t.n:03d}",
                                phone_number=f"+9198000{t.n:03d}{i:02d}",
                                display_name=f"Shop {t.n}",
                                status="connected",
                                provider="cloud_api",
                                created_at=now,
                                updated_at=now,
                            ),
                        ]
                    sandbox = t.key.get("/api/accounts").json()["data"]["accounts"][0]["id"]
                    contact_id = await session.scalar(
                        select(Contact.id).where(
                            Contact.workspace_id == ws_id,
                            Contact.number == int(t.cnt_ids[0][4:]),
                        )
                    )
                    message = Message(
                        id=uuid.uuid4(),
                        workspace_id=ws_id,
                        account_id=uuid.UUID(sandbox),
                        contact_id=contact_id,
                        direction="outbound",
                        type="text",
                        phone="+919876543210",
                        payload={"type": "text", "text": {"body": "secret"}},
                        preview="secret",
                        status="read",
                        status_rank=6,
                        attempts=1,
                        created_at=now,
                        updated_at=now,
                    )
                    session.add_all(rows)
                    t.listed = {
                        "templates": {str(r.id) for r in rows if isinstance(r, MessageTemplate)},
                        "campaigns": {str(r.id) for r in rows if isinstance(r, Campaign)},
                        "accounts": {str(r.id) for r in rows if isinstance(r, WhatsAppAccount)}
                        | {sandbox},
                    }
                    t.message_ids = [str(message.id)]
                    await session.flush()
                    session.add(message)
                    conversation = Conversation(
                        workspace_id=ws_id,
                        account_id=uuid.UUID(sandbox),
                        contact_id=contact_id,
                        last_inbound_at=now,
                        last_message_at=now,
                        status="open",
                        inbound_count=1,
                        created_at=now,
                    )
                    session.add(conversation)
                    await session.flush()
                    t.inbox["conversations"] = [str(conversation.id)]
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())


def _populate(t: Tenant) -> None:
    c = t.key
    # /v1 ids are numbered per workspace: numbers 1 to 4 exist in every workspace, each naming
    # that workspace's own contact (tests/contacts/test_endpoints_v1.py checks that). Spend a
    # different range in each workspace first, so that here no two workspaces' ids coincide and
    # another workspace's id must be a 404.
    for i in range(4 * t.n):
        made = c.post("/v1/contacts", json={"phone": f"9199{t.n:02d}{i:06d}"})
        assert made.status_code == 201, made.text
        assert c.delete(f"/v1/contacts/{made.json()['contact']['id']}").status_code == 200
    for body in (
        # The same phone, name, tag and stage in every workspace: one workspace's rows must never
        # match another's search, filter or unique constraint.
        {
            "phone_number": "+919876543210",
            "name": "Common Customer",
            "tags": ["shared", f"own{t.n}"],
            "stage": "Lead",
            "custom_fields": {"tenant": t.n},
        },
        {"phone_number": f"+91987650{t.n:04d}", "name": f"Buyer {t.n}", "tags": ["shared"]},
    ):
        r = c.post("/api/contacts", json=body)
        assert r.status_code == 201, r.text
    for body in (
        {"phone": "918856879188", "first_name": "Common", "tags": ["shared"], "stage": "Lead"},
        {"phone": f"9188568{t.n:05d}", "first_name": f"Lead {t.n}", "tags": ["shared"]},
    ):
        r = c.post("/v1/contacts", json=body)
        assert r.status_code == 201, r.text
    # Keys made both ways: by the owner's session and by a key.
    t.key_ids = [t.ws.key_id, t.ws.new_key(name="spare")["id"]]
    r = c.post("/api/api-keys", json={"name": "made by a key", "scopes": ["contacts:read"]})
    assert r.status_code == 201, r.text
    t.key_ids.append(r.json()["data"]["api_key"]["id"])
    r = c.post("/api/canned-responses", json={"short_code": f"hello{t.n}", "content": "Hello!"})
    assert r.status_code == 201, r.text
    t.inbox["canned"] = [r.json()["data"]["canned_response"]["id"]]
    r = c.post("/api/teams", json={"name": f"Support {t.n}"})
    assert r.status_code == 201, r.text
    t.inbox["teams"] = [r.json()["data"]["team"]["id"]]
    r = t.ws.session.post("/api/invitations", json={"email": f"invitee{t.n}@example.com"})
    assert r.status_code == 201, r.text
    t.inbox["invitations"] = [r.json()["data"]["invitation"]["id"]]
    t.uuids = [x["id"] for x in c.get("/api/contacts?per_page=100").json()["data"]["contacts"]]
    t.cnt_ids = [x["id"] for x in c.get("/v1/contacts?limit=100").json()["contacts"]]
    assert len(t.uuids) == len(t.cnt_ids) == 4


def _snapshot(t: Tenant) -> dict[str, Any]:
    """Everything of a workspace the attacks could have touched, as its own key sees it."""
    c = t.key
    keys = t.ws.session.get("/api/api-keys").json()["data"]["api_keys"]
    return {
        "api": {i: c.get(f"/api/contacts/{i}").json() for i in t.uuids},
        "v1": {i: c.get(f"/v1/contacts/{i}").json() for i in t.cnt_ids},
        # last_used_at moves with the owner's own use; everything else must not.
        "keys": sorted(
            (k["id"], k["name"], k["status"], k["revoked_at"], tuple(k["scopes"])) for k in keys
        ),
        "total": c.get("/api/contacts").json()["data"]["total"],
        "accounts": c.get("/api/accounts", params={"per_page": 100}).json()["data"],
        "templates": c.get("/api/templates", params={"per_page": 100}).json()["data"],
        "messages": c.get("/api/messages", params={"per_page": 100}).json()["data"],
        "campaigns": c.get("/api/campaigns", params={"per_page": 100}).json()["data"],
        "conversations": c.get("/api/conversations", params={"per_page": 100}).json()["data"],
        "canned": c.get("/api/canned-responses").json()["data"],
        "teams": c.get("/api/teams").json()["data"],
        "invitations": c.get("/api/invitations").json()["data"],
        "members": c.get("/api/members").json()["data"],
    }


def _workspace(server: Server) -> Workspace:
    session, data, email, password = signup(server)
    r = session.post("/api/api-keys", json={"name": "all scopes", "scopes": ALL_SCOPES})
    assert r.status_code == 201, r.text
    key = r.json()["data"]["api_key"]
    return Workspace(
        server, email, password, session, key["key"], key["id"], data["workspace"]["id"]
    )


@pytest.fixture(scope="module")
def tenants(server: Server) -> Iterator[list[Tenant]]:
    """Ten populated workspaces, shared by both tests (the first one must change nothing)."""

    def make(n: int) -> Tenant:
        ws = _workspace(server)
        me = ws.session.get("/api/auth/me").json()["data"]
        t = Tenant(n, ws, me["user"]["id"], ws.client())
        _populate(t)
        return t

    with ThreadPoolExecutor(N) as pool:
        made = list(pool.map(make, range(N)))
    _seed_listings(server, made)
    yield made
    for t in made:
        t.key.close()
        t.ws.session.close()


# A real PNG's first bytes: the media upload checks the file before it looks anything up.
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
FILES = {
    ("POST", "/api/conversations/{conversation_id}/media"): {"file": ("a.png", PNG, "image/png")}
}


def _url(path: str, name: str, victim_id: str, victim: Tenant) -> str:
    """The path with the victim's id; a second id (a message of the conversation) the victim's
    own message, so that only the workspace can make it a 404."""
    url = path.replace("{" + name + "}", victim_id)
    return url.replace("{message_id}", victim.message_ids[0] if victim.message_ids else victim_id)


def _call(client: httpx.Client, method: str, path: str, url: str) -> httpx.Response:
    if (method, path) in FILES:
        return client.request(method, url, files=FILES[(method, path)])
    return client.request(method, url, json=BODIES.get((method, path)))


def _sample(ids: list[str]) -> list[str]:
    """A victim's first, middle and last id of a kind (each of its own surface, and the other
    kind's one): as telling as all 40 of a tenant's contacts, at a fraction of the requests."""
    if len(ids) <= 4:
        return ids
    return [ids[0], ids[len(ids) // 2], ids[-2], ids[-1]]


def test_id_routes_are_404_for_every_other_workspace_and_change_nothing(
    server: Server, tenants: list[Tenant]
) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    routes = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        if "{" in path
        for method in operations
    }
    assert routes == set(ID_ROUTES), (
        "id routes without an isolation check (add them to ID_ROUTES):"
        f" {sorted(routes - set(ID_ROUTES))}; stale entries: {sorted(set(ID_ROUTES) - routes)}"
    )
    before = {t.n: _snapshot(t) for t in tenants}

    def attack(attacker: Tenant) -> list[str]:
        wrong: list[str] = []
        # The attacker's all-scopes key on every other workspace; its owner's session (which
        # holds every scope too, through another code path) on the next workspace.
        neighbour = tenants[(attacker.n + 1) % N]
        for client, victims in (
            (attacker.key, [t for t in tenants if t is not attacker]),
            (attacker.ws.session, [neighbour]),
        ):
            for (method, path), victim_ids in ID_ROUTES.items():
                name = path[path.index("{") + 1 : path.index("}")]
                for victim in victims:
                    for victim_id in _sample(victim_ids(victim)):
                        url = _url(path, name, victim_id, victim)
                        r = _call(client, method, path, url)
                        if r.status_code != 404:
                            wrong.append(f"{method} {url} by {attacker.n}: {r.status_code}")
        return wrong

    with ThreadPoolExecutor(N) as pool:
        wrong = [w for ws in pool.map(attack, tenants) for w in ws]
    assert wrong == [], wrong[:20]

    # Ids that are no id at all: a Unicode digit passes str.isdigit() but not int() (the fuzz
    # test found GET /api/conversations/³ answering 500), a NUL, a long run of digits.
    odd: list[str] = []
    for method, path in ID_ROUTES:
        name = path[path.index("{") + 1 : path.index("}")]
        for bad in ("³", "١٢", "%00", "9" * 40, "cnt_³"):
            url = path.replace("{" + name + "}", bad).replace("{message_id}", bad)
            r = _call(tenants[0].key, method, path, url)
            if r.status_code not in (404, 422):
                odd.append(f"{method} {url}: {r.status_code}")
    assert odd == [], odd[:20]

    after = {t.n: _snapshot(t) for t in tenants}
    assert after == before
    for t in tenants:  # every key, revoked by nobody, still works
        for key_id in t.key_ids:
            assert key_id in {k[0] for k in after[t.n]["keys"] if k[2] == "active"}


def test_lists_never_show_another_workspace_row(tenants: list[Tenant]) -> None:
    def check(t: Tenant) -> None:
        c = t.key
        own_uuids, own_cnt = set(t.uuids), set(t.cnt_ids)
        for params in (
            {},
            {"tag": "shared"},
            {"tag": f"own{t.n}"},
            {"stage": "Lead"},
            {"q": "Common"},
            {"q": "Customer"},
            {"q": "+919876543210"},
            {"q": "9876543210"},
            {"tag": "shared", "q": "Common", "per_page": 100},
            {"page": 2, "per_page": 1},
        ):
            for client in (c, t.ws.session):
                data = client.get("/api/contacts", params=params).json()["data"]
                ids = {x["id"] for x in data["contacts"]}
                assert ids and ids <= own_uuids, (params, ids - own_uuids)
                assert data["total"] <= len(own_uuids), params
        assert c.get("/api/contacts").json()["data"]["total"] == len(own_uuids)
        for params in ({}, {"tag": "shared"}, {"limit": 100}, {"offset": 1, "limit": 2}):
            body = c.get("/v1/contacts", params=params).json()
            ids = {x["id"] for x in body["contacts"]}
            assert ids and ids <= own_cnt, (params, ids - own_cnt)
        assert c.get("/v1/contacts").json()["pagination"]["total"] == len(own_cnt)

        for client in (c, t.ws.session):
            keys = client.get("/api/api-keys").json()["data"]["api_keys"]
            assert {k["id"] for k in keys} == set(t.key_ids)
            for listing in ("templates", "campaigns", "accounts"):
                data = client.get(f"/api/{listing}", params={"per_page": 100}).json()["data"]
                assert {x["id"] for x in data[listing]} == t.listed[listing], listing
                assert data["total"] == len(t.listed[listing])

        events = t.ws.session.get("/api/audit-log", params={"per_page": 100}).json()["data"]
        assert events["events"], "the sign-up and key creations are audited"
        for e in events["events"]:
            assert e["actor_user_id"] in (t.user_id, None), e
            assert e["actor_api_key_id"] in (*t.key_ids, None), e
            if "key_id" in e["details"]:
                assert e["details"]["key_id"] in t.key_ids, e
        t.listed["events"] = {str(e["id"]) for e in events["events"]}

    with ThreadPoolExecutor(N) as pool:
        list(pool.map(check, tenants))
    seen: set[str] = set()
    for t in tenants:  # no audit event is listed in two workspaces
        assert not (t.listed["events"] & seen)
        seen |= t.listed["events"]
