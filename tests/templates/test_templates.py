"""Templates over real HTTP, on SQLite and PostgreSQL, against the server's embedded emulator: the
sandbox account of each new workspace has its own WABA there."""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from typing import Any

import httpx
import pytest

from aisoule.config import normalize_database_url
from tests.conftest import Workspace
from tests.servers import Server

TOKEN = "emulator-token"
GRAPH = "/emulator/v23.0"
HELLO = "hello_world"  # Meta gives every WABA this APPROVED sample, so a sync brings it too

POSITIONAL: dict[str, Any] = {
    "name": "order_update",
    "language": "en_US",
    "category": "UTILITY",
    "components": [
        {
            "type": "HEADER",
            "format": "TEXT",
            "text": "Order {{1}}",
            "example": {"header_text": ["A-17"]},
        },
        {
            "type": "BODY",
            "text": "Hi {{1}}, your order {{2}} ships today.",
            "example": {"body_text": [["Asha", "A-17"]]},
        },
        {"type": "FOOTER", "text": "Reply STOP to opt out"},
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "QUICK_REPLY", "text": "Thanks"},
                {
                    "type": "URL",
                    "text": "Track",
                    "url": "https://shop.example/track/{{1}}",
                    "example": ["https://shop.example/track/A-17"],
                },
            ],
        },
    ],
}

NAMED: dict[str, Any] = {
    "name": "welcome_named",
    "language": "en",
    "category": "MARKETING",
    "parameter_format": "NAMED",
    "components": [
        {
            "type": "BODY",
            "text": "Welcome {{first_name}}! Use {{code}} for 10% off.",
            "example": {
                "body_text_named_params": [
                    {"param_name": "first_name", "example": "Asha"},
                    {"param_name": "code", "example": "HELLO10"},
                ]
            },
        }
    ],
}


def _account(api: httpx.Client) -> dict[str, Any]:
    r = api.get("/api/accounts")
    assert r.status_code == 200, r.text
    accounts = r.json()["data"]["accounts"]
    assert accounts, "every new workspace has a sandbox account"
    return dict(accounts[0])


def _at_emulator(server: Server, waba_id: str) -> list[dict[str, Any]]:
    """The WABA's templates at the emulator, but Meta's ``hello_world`` sample every WABA has."""
    r = httpx.get(
        f"{server.url}{GRAPH}/{waba_id}/message_templates",
        params={"access_token": TOKEN, "limit": 1000},
        timeout=10,
    )
    if r.status_code == 400 and r.json()["error"].get("error_subcode") == 33:
        return []  # the app registers a sandbox number on its first call: none was made
    assert r.status_code == 200, r.text
    return [t for t in r.json()["data"] if t["name"] != HELLO]


def _wait_emulator_status(server: Server, waba_id: str, name: str, status: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if any(t["name"] == name and t["status"] == status for t in _at_emulator(server, waba_id)):
            return
        time.sleep(0.2)
    pytest.fail(f"the emulator never set {name} to {status}")


def _create(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post("/api/templates", json=body)
    assert r.status_code == 201, r.text
    payload = r.json()
    assert payload["status"] == "success"
    return dict(payload["data"]["template"])


def _list(api: httpx.Client, **params: Any) -> dict[str, Any]:
    r = api.get("/api/templates", params=params)
    assert r.status_code == 200, r.text
    return dict(r.json()["data"])


def test_create_positional_pending_then_approved_after_sync(
    server: Server, api: httpx.Client
) -> None:
    account = _account(api)
    tpl = _create(api, POSITIONAL)
    assert tpl["status"] == "PENDING"
    assert tpl["account_id"] == account["id"]
    assert tpl["meta_id"] and tpl["meta_id"].isdigit()
    assert (tpl["name"], tpl["language"], tpl["category"]) == ("order_update", "en_US", "UTILITY")
    assert tpl["parameter_format"] == "POSITIONAL"
    assert tpl["rejected_reason"] is None
    assert [c["type"] for c in tpl["components"]] == ["HEADER", "BODY", "FOOTER", "BUTTONS"]
    assert set(tpl) == {
        "id", "account_id", "meta_id", "name", "language", "category", "status",
        "parameter_format", "components", "rejected_reason", "created_at", "updated_at",
    }  # fmt: skip

    remote = _at_emulator(server, account["waba_id"])
    assert [(t["id"], t["name"]) for t in remote] == [(tpl["meta_id"], "order_update")]

    _wait_emulator_status(server, account["waba_id"], "order_update", "APPROVED")
    r = api.post("/api/templates/sync", json={})
    assert r.status_code == 200, r.text
    counts = r.json()["data"]
    assert counts["created"] == 1 and counts["deleted"] == 0  # Meta's hello_world
    got = api.get(f"/api/templates/{tpl['id']}").json()["data"]["template"]
    assert got["status"] == "APPROVED"
    assert got["meta_id"] == tpl["meta_id"]

    listed = _list(api, name="order_update")
    assert listed["total"] == 1 and listed["page"] == 1
    assert listed["templates"][0]["id"] == tpl["id"]
    assert _list(api)["total"] == 2


def test_create_named(server: Server, api: httpx.Client) -> None:
    account = _account(api)
    tpl = _create(api, {**NAMED, "account_id": account["id"]})
    assert tpl["parameter_format"] == "NAMED" and tpl["status"] == "PENDING"
    remote = _at_emulator(server, account["waba_id"])
    assert remote[0]["parameter_format"] == "NAMED"
    _wait_emulator_status(server, account["waba_id"], "welcome_named", "APPROVED")
    r = api.post("/api/templates/sync")  # no body: the default account
    assert r.status_code == 200, r.text
    assert api.get(f"/api/templates/{tpl['id']}").json()["data"]["template"]["status"] == (
        "APPROVED"
    )


def _mutate(path: list[Any], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(POSITIONAL)
    node: Any = body
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return body


_DELETE = object()
_BODY = {"type": "BODY", "text": "Hello", "example": {}}

INVALID = [
    pytest.param(_mutate(["name"], "Order Update"), "name", id="name-uppercase-space"),
    pytest.param(_mutate(["name"], "a" * 513), "name", id="name-too-long"),
    pytest.param(_mutate(["name"], _DELETE), "name", id="name-missing"),
    pytest.param(_mutate(["language"], "english"), "language", id="language"),
    pytest.param(_mutate(["category"], "PROMO"), "category", id="category"),
    pytest.param(_mutate(["parameter_format"], "BOTH"), "parameter_format", id="format"),
    pytest.param(_mutate(["components"], []), "components", id="no-components"),
    pytest.param(
        _mutate(["components"], [{"type": "FOOTER", "text": "x"}]), "components", id="no-body"
    ),
    pytest.param(_mutate(["components"], [_BODY, _BODY]), "components[1].type", id="two-bodies"),
    pytest.param(_mutate(["components", 1, "type"], "TITLE"), "components[1].type", id="type"),
    pytest.param(
        _mutate(["components", 0, "format"], "GIF"), "components[0].format", id="header-format"
    ),
    pytest.param(
        _mutate(["components", 1, "text"], "Hi {{1}}, order {{3}}"),
        "components[1].text",
        id="positional-gap",
    ),
    pytest.param(
        _mutate(["components", 1, "text"], "Hi {{name}}, order {{2}}"),
        "components[1].text",
        id="named-in-positional",
    ),
    pytest.param(
        _mutate(["components", 1, "example", "body_text"], [["Asha"]]),
        "components[1].example.body_text",
        id="example-count",
    ),
    pytest.param(
        _mutate(["components", 0, "example"], _DELETE),
        "components[0].example.header_text",
        id="header-example-missing",
    ),
    pytest.param(
        _mutate(["components", 2, "text"], "Bye {{1}}"), "components[2].text", id="footer-var"
    ),
    pytest.param(
        _mutate(["components", 3, "buttons", 1, "example"], _DELETE),
        "components[3].buttons[1].example",
        id="url-example-missing",
    ),
    pytest.param(
        _mutate(["components", 3, "buttons"], []), "components[3].buttons", id="no-buttons"
    ),
    pytest.param(
        {**NAMED, "parameter_format": "POSITIONAL"}, "components[0].text", id="named-as-positional"
    ),
    pytest.param(
        {
            **NAMED,
            "components": [
                {
                    "type": "BODY",
                    "text": NAMED["components"][0]["text"],
                    "example": {
                        "body_text_named_params": [{"param_name": "first_name", "example": "A"}]
                    },
                }
            ],
        },
        "components[0].example.body_text_named_params",
        id="named-example-missing",
    ),
    pytest.param(
        {**NAMED, "components": [{"type": "BODY", "text": "Hi {{1}}", "example": {}}]},
        "components[0].text",
        id="positional-in-named",
    ),
    pytest.param(
        _mutate(["components", 0], {"type": "HEADER", "format": "IMAGE"}),
        "components[0].example.header_handle",
        id="media-header-no-sample",
    ),
]


@pytest.mark.parametrize(("body", "field"), INVALID)
def test_invalid_bodies_name_the_field_and_write_nothing(
    server: Server, api: httpx.Client, body: dict[str, Any], field: str
) -> None:
    r = api.post("/api/templates", json=body)
    assert r.status_code == 422, r.text
    payload = r.json()
    assert payload["status"] == "error"
    assert payload["errors"][0]["field"] == field, payload
    assert payload["message"].startswith(field), payload
    assert _list(api)["total"] == 0
    assert _at_emulator(server, _account(api)["waba_id"]) == []


def test_variable_without_example_is_refused(server: Server, api: httpx.Client) -> None:
    body = copy.deepcopy(POSITIONAL)
    body["components"] = [{"type": "BODY", "text": "Your code is {{1}}"}]
    r = api.post("/api/templates", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "components[0].example.body_text"
    assert "example" in r.json()["message"]
    assert _list(api)["total"] == 0


def test_duplicate_is_409_but_another_language_is_fine(api: httpx.Client) -> None:
    _create(api, NAMED)
    r = api.post("/api/templates", json=NAMED)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "template_exists"
    other = _create(api, {**NAMED, "language": "en_GB"})
    assert other["language"] == "en_GB"
    assert _list(api)["total"] == 2


def test_unknown_account_is_422(api: httpx.Client) -> None:
    r = api.post("/api/templates", json={**NAMED, "account_id": str(uuid.uuid4())})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "account_id"


def test_get_and_delete_at_meta_too(server: Server, api: httpx.Client) -> None:
    waba = _account(api)["waba_id"]
    keep = _create(api, {**NAMED, "language": "es"})
    tpl = _create(api, NAMED)
    r = api.get(f"/api/templates/{tpl['id']}")
    assert r.status_code == 200 and r.json()["data"]["template"] == tpl

    r = api.delete(f"/api/templates/{tpl['id']}")
    assert r.status_code == 200, r.text
    assert r.json() == {"data": {"id": tpl["id"], "deleted": True}, "status": "success"}
    assert api.get(f"/api/templates/{tpl['id']}").status_code == 404
    assert api.delete(f"/api/templates/{tpl['id']}").status_code == 404
    # Only that language went, here and at the emulator.
    assert [t["id"] for t in _at_emulator(server, waba)] == [keep["meta_id"]]
    assert [t["id"] for t in _list(api)["templates"]] == [keep["id"]]
    assert api.get("/api/templates/not-a-uuid").status_code == 404


def test_delete_of_a_template_already_gone_at_meta(server: Server, api: httpx.Client) -> None:
    waba = _account(api)["waba_id"]
    tpl = _create(api, NAMED)
    r = httpx.delete(
        f"{server.url}{GRAPH}/{waba}/message_templates",
        params={"access_token": TOKEN, "name": NAMED["name"]},
    )
    assert r.status_code == 200, r.text
    assert api.delete(f"/api/templates/{tpl['id']}").status_code == 200
    assert _list(api)["total"] == 0


def test_sync_pulls_creates_updates_and_removes(server: Server, api: httpx.Client) -> None:
    waba = _account(api)["waba_id"]
    gone = _create(api, NAMED)
    # Created directly at "Meta" (WhatsApp Manager), and one deleted there.
    direct = {
        "name": "made_in_manager",
        "language": "pt_BR",
        "category": "MARKETING",
        "components": [{"type": "BODY", "text": "Olá!"}],
    }
    r = httpx.post(
        f"{server.url}{GRAPH}/{waba}/message_templates", params={"access_token": TOKEN}, json=direct
    )
    assert r.status_code == 200, r.text
    meta_id = r.json()["id"]
    r = httpx.delete(
        f"{server.url}{GRAPH}/{waba}/message_templates",
        params={"access_token": TOKEN, "name": NAMED["name"]},
    )
    assert r.status_code == 200, r.text

    r = api.post("/api/templates/sync", json={"account_id": _account(api)["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"created": 2, "updated": 0, "deleted": 1, "skipped": []}
    # (and hello_world)
    listed = [t for t in _list(api)["templates"] if t["name"] != HELLO]
    assert [(t["name"], t["language"], t["meta_id"]) for t in listed] == [
        ("made_in_manager", "pt_BR", meta_id)
    ]
    [hello] = _list(api, name=HELLO)["templates"]
    assert (hello["language"], hello["status"], hello["category"]) == (
        "en_US",
        "APPROVED",
        "UTILITY",
    )
    assert listed[0]["components"] == direct["components"]
    assert api.get(f"/api/templates/{gone['id']}").status_code == 404

    _wait_emulator_status(server, waba, "made_in_manager", "APPROVED")
    r = api.post("/api/templates/sync", json={})
    # The approval also comes by webhook (message_template_status_update), which may have
    # updated the row first: either way, one sync later it is APPROVED and nothing else changed.
    data = r.json()["data"]
    assert data["created"] == 0 and data["deleted"] == 0 and data["updated"] in (0, 1), data
    r = api.post("/api/templates/sync", json={})
    assert r.json()["data"] == {"created": 0, "updated": 0, "deleted": 0, "skipped": []}
    assert _list(api, status="APPROVED")["total"] == 2  # made_in_manager and hello_world


def test_sync_reads_every_page(server: Server, api: httpx.Client) -> None:
    waba = _account(api)["waba_id"]
    r = api.post("/api/templates/sync", json={})  # only hello_world (and the number registered)
    assert r.json()["data"] == {"created": 1, "updated": 0, "deleted": 0, "skipped": []}
    for i in range(130):  # Meta's pages hold at most 100 here
        r = httpx.post(
            f"{server.url}{GRAPH}/{waba}/message_templates",
            params={"access_token": TOKEN},
            json={
                "name": f"bulk_{i:03d}",
                "language": "en",
                "category": "UTILITY",
                "components": [{"type": "BODY", "text": f"Notice {i}"}],
            },
        )
        assert r.status_code == 200, r.text
    r = api.post("/api/templates/sync", json={})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["created"] == 130
    assert _list(api, per_page=100)["total"] == 131


def test_list_filters(api: httpx.Client) -> None:
    account = _account(api)
    a = _create(api, NAMED)
    b = _create(api, POSITIONAL)
    assert {t["id"] for t in _list(api, status="pending")["templates"]} == {a["id"], b["id"]}
    assert _list(api, status="APPROVED")["total"] == 0
    assert [t["id"] for t in _list(api, name="order")["templates"]] == [b["id"]]
    assert _list(api, name="%")["total"] == 0  # a literal, not a wildcard
    assert _list(api, account_id=account["id"])["total"] == 2
    assert _list(api, account_id=str(uuid.uuid4()))["total"] == 0
    r = api.get("/api/templates", params={"account_id": "nope"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "account_id"


def test_tenant_isolation(make_workspace: Any) -> None:
    mine: Workspace = make_workspace()
    theirs: Workspace = make_workspace()
    with mine.client() as api, theirs.client() as other:
        tpl = _create(api, NAMED)
        assert other.get(f"/api/templates/{tpl['id']}").status_code == 404
        assert other.delete(f"/api/templates/{tpl['id']}").status_code == 404
        assert _list(other)["total"] == 0
        r = other.post("/api/templates", json={**NAMED, "account_id": tpl["account_id"]})
        assert r.status_code == 422, r.text
        # Their sync brings their own WABA's hello_world, nothing of mine.
        assert other.post("/api/templates/sync", json={}).json()["data"]["created"] == 1
        assert [t["name"] for t in _list(other)["templates"]] == [HELLO]
        assert api.get(f"/api/templates/{tpl['id']}").status_code == 200


def test_scopes(ws: Workspace) -> None:
    key = ws.new_key(scopes=["templates:read"])["key"]
    with ws.client(key) as reader:
        assert reader.get("/api/templates").status_code == 200
        r = reader.post("/api/templates", json=NAMED)
        assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
        assert reader.post("/api/templates/sync", json={}).status_code == 403
    key = ws.new_key(scopes=["contacts:read"])["key"]
    with ws.client(key) as nobody:
        assert nobody.get("/api/templates").status_code == 403


def test_apply_status_update_through_a_real_session(server: Server, api: httpx.Client) -> None:
    """What the webhook processor calls for ``message_template_status_update``."""
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from aisoule.templates.service import apply_status_update

    mine = uuid.UUID(_account(api)["id"])
    by_id = _create(api, NAMED)
    by_name = _create(api, POSITIONAL)

    async def run(value: dict[str, Any], account_id: uuid.UUID = mine) -> bool:
        engine = create_async_engine(normalize_database_url(server.database_url))
        try:
            async with async_sessionmaker(engine)() as session:
                found = await apply_status_update(session, [account_id], value)
                await session.commit()
                return found
        finally:
            await engine.dispose()

    assert asyncio.run(
        run(
            {
                "event": "REJECTED",
                "message_template_id": int(by_id["meta_id"]),
                "message_template_name": by_id["name"],
                "message_template_language": by_id["language"],
                "reason": "INVALID_FORMAT",
            }
        )
    )
    got = api.get(f"/api/templates/{by_id['id']}").json()["data"]["template"]
    assert (got["status"], got["rejected_reason"]) == ("REJECTED", "INVALID_FORMAT")

    # Another account's update does not reach this account's template, by id or by name.
    assert not asyncio.run(
        run(
            {
                "event": "PAUSED",
                "message_template_id": int(by_id["meta_id"]),
                "message_template_name": by_id["name"],
                "message_template_language": by_id["language"],
            },
            uuid.uuid4(),
        )
    )
    # An id Meta did not give us (yet): found by name and language on the account.
    value = {
        "event": "APPROVED",
        "message_template_id": 999000111,
        "message_template_name": by_name["name"],
        "message_template_language": by_name["language"],
        "reason": "NONE",
    }
    assert not asyncio.run(run(value, account_id=uuid.uuid4()))
    assert asyncio.run(run(value))
    got = api.get(f"/api/templates/{by_name['id']}").json()["data"]["template"]
    assert (got["status"], got["rejected_reason"]) == ("APPROVED", None)

    assert not asyncio.run(
        run(
            {
                "event": "PAUSED",
                "message_template_id": 1,
                "message_template_name": "nope",
                "message_template_language": "en",
            }
        )
    )


def _at_meta_directly(server: Server, waba: str, body: dict[str, Any]) -> None:
    """Created in WhatsApp Manager (the emulator's Graph API), not through us."""
    r = httpx.post(
        f"{server.url}{GRAPH}/{waba}/message_templates", params={"access_token": TOKEN}, json=body
    )
    assert r.status_code == 200, r.text


def test_sync_takes_what_meta_has_even_what_create_would_refuse(
    server: Server, api: httpx.Client
) -> None:
    """Meta's templates are taken as Meta holds them: a language code our create refuses, a
    variable without an example, odd characters; NUL (which PostgreSQL cannot store) removed.
    What cannot be stored at all is reported, never a 500, and the next sync is the same."""
    account = _account(api)
    waba = account["waba_id"]
    api.post("/api/templates/sync", json={})  # registers the sandbox number at the emulator
    text = "Hola {{1}} \u2603 \u202e\u2028 fin\u0000!"
    _at_meta_directly(
        server,
        waba,
        {
            "name": "made_in_manager_odd",
            "language": "es_419",
            "category": "UTILITY",
            "components": [{"type": "BODY", "text": text, "x\u0000": ["\u0000"]}],
        },
    )
    for language in ("x" * 20, "en\u0000"):
        _at_meta_directly(
            server,
            waba,
            {
                "name": "cannot_be_stored",
                "language": language,
                "category": "UTILITY",
                "components": [{"type": "BODY", "text": "Hi"}],
            },
        )
    for _ in range(2):
        r = api.post("/api/templates/sync", json={})
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        skipped = sorted(data.pop("skipped"), key=lambda s: s["reason"])
        assert [(s["name"], s["reason"]) for s in skipped] == [
            ("cannot_be_stored", "control characters in the name or language"),
            ("cannot_be_stored", "name or language longer than 15 characters"),
        ]
        assert "\u0000" not in r.text
        assert data["deleted"] == 0 and data["updated"] == 0
    listed = [t for t in _list(api)["templates"] if t["name"] != HELLO]
    assert [(t["name"], t["language"]) for t in listed] == [("made_in_manager_odd", "es_419")]
    assert listed[0]["components"] == [
        {"type": "BODY", "text": text.replace("\u0000", ""), "x": [""]}
    ]
    assert listed[0]["meta_id"]


def test_meta_refusing_a_create_leaves_nothing_that_breaks_sync(
    server: Server, api: httpx.Client
) -> None:
    """The row is stored PENDING before Meta sees it; Meta's refusal removes it again."""
    waba = _account(api)["waba_id"]
    api.post("/api/templates/sync", json={})
    _at_meta_directly(server, waba, NAMED)  # Meta has it, we do not (yet)
    r = api.post("/api/templates", json=NAMED)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "template_exists" and "sync" in r.json()["message"]
    assert [t["name"] for t in _list(api)["templates"]] == [HELLO]
    r = api.post("/api/templates/sync", json={})
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"created": 1, "updated": 0, "deleted": 0, "skipped": []}


def test_a_value_the_database_refuses_leaves_nothing_at_meta(
    server: Server, api: httpx.Client
) -> None:
    """The issue's case: a NUL in a component (PostgreSQL refuses it). Whatever refuses it (the
    input guard, the database), Meta never gets it, and sync keeps working."""
    waba = _account(api)["waba_id"]
    body = copy.deepcopy(NAMED)
    body["components"][0]["text"] = "Welcome {{first_name}}!\u0000 Use {{code}}"
    r = api.post("/api/templates", json=body)
    assert r.status_code == 422, r.text  # the input guard, on both databases
    assert r.json()["errors"][0]["field"] == "components.0.text"
    assert NAMED["name"] not in [t["name"] for t in _at_emulator(server, waba)]
    assert _list(api)["total"] == 0
    r = api.post("/api/templates/sync", json={})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["skipped"] == []
