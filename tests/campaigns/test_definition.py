"""Part A of issue 10, over real HTTP on SQLite and PostgreSQL: defining campaigns on /api and
/v1 (create as draft, scheduled or started; validation naming fields; PUT and DELETE by status;
other workspaces' ids), the pre-flight and preview, and the seed's POST /campaigns example."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.campaigns.helpers import (
    NAMED_OFFER,
    ORDER_UPDATE,
    approved_template,
    contact,
    sandbox,
    set_template_status,
)
from tests.conftest import ALL_SCOPES, signup
from tests.servers import Server

# The POST /api/campaigns, without its two placeholders (both optional).
SEED_EXAMPLE: dict[str, Any] = {
    "name": "Diwali offer",
    "template": {"name": "order_update", "language": "en_US"},
    "audience": {"tags": ["VIP"]},
    "parameters": {"body": [{"field": "first_name", "fallback": "there"}, {"value": "DIWALI20"}]},
    "start": False,
}


@dataclass
class Shop:
    server: Server
    api: httpx.Client
    v1: httpx.Client
    account_id: str
    order_update: dict[str, Any]
    named_offer: dict[str, Any]
    contacts: list[dict[str, Any]]


@pytest.fixture(scope="module")
def shop(server: Server) -> Iterator[Shop]:
    """A workspace with two approved templates on its sandbox number and a few VIP contacts."""
    owner, _, _, _ = signup(server)
    r = owner.post("/api/api-keys", json={"name": "campaigns", "scopes": ALL_SCOPES})
    assert r.status_code == 201, r.text
    key = r.json()["data"]["api_key"]["key"]
    api = httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=30)
    v1 = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    order = approved_template(api, ORDER_UPDATE)
    named = approved_template(api, NAMED_OFFER)
    people = [
        contact(
            api, "+919800000001", name="Asha Rao", tags=["VIP"], custom_fields={"city": "Pune"}
        ),
        contact(api, "+919800000002", name="Ravi", tags=["VIP", "new"], stage="Customer"),
        contact(api, "+919800000003", tags=["VIP"]),  # no name: the fallback
    ]
    yield Shop(server, api, v1, sandbox(api)["id"], order, named, people)
    api.close()
    v1.close()
    owner.close()


def make(shop: Shop, **overrides: Any) -> dict[str, Any]:
    r = shop.api.post("/api/campaigns", json={**SEED_EXAMPLE, **overrides})
    assert r.status_code == 201, r.text
    return dict(r.json()["data"]["campaign"])


_HELD: set[str] = set()  # the shops whose "held" contacts exist


@contextlib.contextmanager
def held(shop: Shop) -> Iterator[dict[str, Any]]:
    """An audience whose campaign cannot finish while the test looks at it running: 60 contacts
    tagged "held", and the number slowed to 1 message a second (the pacer spaces its sends over
    a second apart, so they take more than a minute whatever the machine's load). Afterwards
    every campaign still sending is cancelled (sends stop within a second) and the pace is
    restored."""
    if shop.account_id not in _HELD:
        for i in range(60):
            contact(shop.api, f"+91981100{i:04d}", tags=["held"])
        _HELD.add(shop.account_id)
    r = shop.api.put(f"/api/accounts/{shop.account_id}", json={"throughput": 1})
    assert r.status_code == 200, r.text
    try:
        yield {"tags": ["held"]}
    finally:
        for status in ("running", "paused"):
            listed = shop.api.get("/api/campaigns", params={"status": status, "per_page": 100})
            for c in listed.json()["data"]["campaigns"]:
                shop.api.post(f"/api/campaigns/{c['id']}/cancel")
        r = shop.api.put(f"/api/accounts/{shop.account_id}", json={"throughput": 80})
        assert r.status_code == 200, r.text


def error(r: httpx.Response) -> tuple[int, str | None, str]:
    body = r.json()
    if "error" in body:
        return r.status_code, body["error"].get("field"), body["error"]["code"]
    errors = body.get("errors") or [{}]
    return r.status_code, errors[0].get("field"), body["code"]


def future(minutes: int = 60) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


# -- the seed's example and the create variants -----------------------------------------------


def test_the_seed_example_creates_a_draft(shop: Shop) -> None:
    r = shop.api.post("/api/campaigns", json=SEED_EXAMPLE)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "success"
    c = body["data"]["campaign"]
    assert c["name"] == "Diwali offer" and c["status"] == "draft"
    assert c["template"] == {
        "id": shop.order_update["id"],
        "name": "order_update",
        "language": "en_US",
    }
    assert c["account_id"] == shop.account_id  # the default account
    assert c["audience"] == {"tags": ["VIP"]}
    assert c["parameters"] == SEED_EXAMPLE["parameters"]
    assert c["scheduled_at"] is None and c["started_at"] is None and c["completed_at"] is None
    assert c["status_reason"] is None
    assert c["stats"]["total"] == 0 and set(c["stats"]) >= {
        "skipped",
        "pending",
        "sent",
        "delivered",
        "read",
        "failed",
        "unknown",
        "replied",
        "skipped_reasons",
        "failed_codes",
    }
    assert c["created_at"].endswith("Z")
    got = shop.api.get(f"/api/campaigns/{c['id']}")
    assert got.status_code == 200 and got.json()["data"]["campaign"] == c
    listed = shop.api.get("/api/campaigns", params={"per_page": 100}).json()["data"]
    assert c["id"] in {x["id"] for x in listed["campaigns"]}
    assert listed["page"] == 1 and listed["per_page"] == 100 and listed["total"] >= 1


def test_scheduled_and_started_campaigns(shop: Shop) -> None:
    when = future()
    scheduled = make(shop, scheduled_at=when)
    assert scheduled["status"] == "scheduled"
    assert datetime.fromisoformat(scheduled["scheduled_at"]) == datetime.fromisoformat(
        when
    ).replace(microsecond=0)

    started = make(shop, start=True)
    assert started["status"] == "running" and started["started_at"] is not None

    for overrides, field in (
        ({"scheduled_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}, "scheduled_at"),
        ({"scheduled_at": "2030-01-01T10:00:00"}, "scheduled_at"),  # no zone
        ({"scheduled_at": "tomorrow"}, "scheduled_at"),
        ({"scheduled_at": "9999-12-31T23:59:59-01:00"}, "scheduled_at"),
        ({"scheduled_at": "0001-01-01T00:00:00+01:00"}, "scheduled_at"),
        ({"scheduled_at": future(60 * 24 * 400)}, "scheduled_at"),
        ({"scheduled_at": future(), "start": True}, "start"),
    ):
        r = shop.api.post("/api/campaigns", json={**SEED_EXAMPLE, **overrides})
        assert error(r)[:2] == (422, field), r.text


def test_a_draft_may_wait_for_approval_but_not_a_start(shop: Shop) -> None:
    paused = approved_template(shop.api, {**ORDER_UPDATE, "name": "order_paused"})
    set_template_status(shop.server, shop.api, paused, "PAUSED")
    body = {**SEED_EXAMPLE, "template": {"name": "order_paused", "language": "en_US"}}
    r = shop.api.post("/api/campaigns", json=body)
    assert r.status_code == 201, r.text
    draft = r.json()["data"]["campaign"]
    for extra in ({"start": True}, {"scheduled_at": future()}):
        r = shop.api.post("/api/campaigns", json={**body, **extra})
        assert error(r) == (422, "template.name", "template_not_approved"), r.text
    r = shop.api.post(f"/api/campaigns/{draft['id']}/start")
    assert error(r)[::2] == (409, "template_not_approved"), r.text
    assert shop.api.get(f"/api/campaigns/{draft['id']}").json()["data"]["campaign"]["status"] == (
        "draft"
    )


# -- validation: a 422 naming the field as the client wrote it ---------------------------------

NAMED_PARAMS = {
    "header": {"first_name": {"field": "first_name", "fallback": "there"}},
    "body": {"code": {"value": "X1"}, "city": {"field": "custom_fields.city", "fallback": "town"}},
    "buttons": {"1": {"value": "42"}},
}
NAMED = {"name": "named_offer", "language": "en"}


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"parameters": {"body": [{"field": "first_name"}]}}, "parameters.body[1]", None),
        (
            {"parameters": {"body": [{"value": "a"}, {"value": "b"}, {"value": "c"}]}},
            "parameters.body[2]",
            None,
        ),
        (
            {"parameters": {"body": [{"field": "nickname"}, {"value": "b"}]}},
            "parameters.body[0].field",
            None,
        ),
        (
            {"parameters": {"body": [{"field": "custom_fields.City"}, {"value": "b"}]}},
            "parameters.body[0].field",
            None,
        ),
        (
            {"parameters": {"body": [{"field": "name", "value": "x"}, {"value": "b"}]}},
            "parameters.body[0]",
            None,
        ),
        (
            {"parameters": {"body": [{"field": "name", "color": "x"}, {"value": "b"}]}},
            "parameters.body[0].color",
            None,
        ),
        (
            {"parameters": {"body": [{"value": ""}, {"value": "b"}]}},
            "parameters.body[0].value",
            None,
        ),
        (
            {"parameters": {"body": [{"value": "a\nb"}, {"value": "b"}]}},
            "parameters.body[0].value",
            None,
        ),
        ({"parameters": {"body": {"code": {"value": "x"}}}}, "parameters.body", None),
        ({"parameters": {}}, "parameters.body", "template_parameters"),
        (
            {"parameters": {**SEED_EXAMPLE["parameters"], "footer": []}},
            "parameters.footer",
            None,
        ),
        (
            {"parameters": {**SEED_EXAMPLE["parameters"], "header": [{"value": "x"}]}},
            "parameters.header",
            "template_parameters",
        ),
        (
            {"template": NAMED, "parameters": {**NAMED_PARAMS, "body": {"code": {"value": "x"}}}},
            "parameters.body.city",
            "template_parameters",
        ),
        (
            {
                "template": NAMED,
                "parameters": {
                    **NAMED_PARAMS,
                    "body": {**NAMED_PARAMS["body"], "coupon": {"value": "x"}},
                },
            },
            "parameters.body.coupon",
            "template_parameters",
        ),
        (
            {"template": NAMED, "parameters": {**NAMED_PARAMS, "buttons": {}}},
            "parameters.buttons.1",
            "template_parameters",
        ),
        (
            {"template": NAMED, "parameters": {**NAMED_PARAMS, "buttons": {"0": {"value": "x"}}}},
            "parameters.buttons.0",
            "template_parameters",
        ),
        (
            {"template": NAMED, "parameters": {**NAMED_PARAMS, "buttons": [None, {"v": 1}]}},
            "parameters.buttons[1].v",
            None,
        ),
        (
            {"template": {"name": "nope", "language": "en_US"}},
            "template.name",
            "template_not_found",
        ),
        (
            {"template": {"name": "order_update", "language": "fr"}},
            "template.language",
            "template_language",
        ),
        ({"audience": {}}, "audience", "empty_audience"),
        ({"audience": {"exclude_tags": ["x"]}}, "audience.exclude_tags", "empty_audience"),
        ({"audience": {"all": True, "tags": ["VIP"]}}, "audience.tags", None),
        ({"audience": {"all": False}}, "audience.all", None),
        ({"audience": {"tags": []}}, "audience.tags", None),
        ({"audience": {"tags": ["VIP"], "colour": "red"}}, "audience.colour", None),
        ({"audience": {"stage": "Martian"}}, "audience.stage", None),
        (
            {"audience": {"custom_fields": {"city": {"gt": 1}}}},
            "audience.custom_fields.city.gt",
            None,
        ),
        (
            {"audience": {"custom_fields": {"city": {"in": []}}}},
            "audience.custom_fields.city.in",
            None,
        ),
        ({"audience": {"custom_fields": {"city": None}}}, "audience.custom_fields.city", None),
        ({"audience": {"custom_fields": {"City": "Pune"}}}, "audience.custom_fields.City", None),
        (
            {"audience": {"contact_ids": [str(uuid.uuid4())]}},
            "audience.contact_ids[0]",
            "contact_not_found",
        ),
        (
            {"audience": {"contact_ids": ["cnt_999999"]}},
            "audience.contact_ids[0]",
            "contact_not_found",
        ),
        (
            {"audience": {"from_campaign": {"id": str(uuid.uuid4())}}},
            "audience.from_campaign.id",
            "campaign_not_found",
        ),
        (
            {"audience": {"from_campaign": {"id": "x", "statuses": ["lost"]}}},
            "audience.from_campaign.statuses.0",
            None,
        ),
        ({"account_id": str(uuid.uuid4())}, "account_id", None),
        ({"name": ""}, "name", None),
        ({"name": "   "}, "name", None),
        ({"template": None}, "template", None),
        ({"start": "maybe"}, "start", None),
    ],
)
def test_invalid_definitions_name_the_field(
    shop: Shop, overrides: dict[str, Any], field: str, code: str | None
) -> None:
    body = {**SEED_EXAMPLE, **overrides}
    if overrides.get("template") == NAMED and "parameters" not in overrides:
        body["parameters"] = NAMED_PARAMS
    before = shop.api.get("/api/campaigns").json()["data"]["total"]
    for client, path in ((shop.api, "/api/campaigns"), (shop.v1, "/v1/campaigns")):
        r = client.post(path, json=body)
        status, named, got_code = error(r)
        assert (status, named) == (422, field), r.text
        if code is not None:
            assert got_code == code, r.text
        if field != "name":  # preview takes no name (nor needs one)
            r = client.post(f"{path}/preview", json=body)
            assert error(r)[:2] == (422, field), r.text
    assert shop.api.get("/api/campaigns").json()["data"]["total"] == before


def test_named_templates_with_buttons(shop: Shop) -> None:
    body = {**SEED_EXAMPLE, "template": NAMED, "parameters": NAMED_PARAMS}
    c = make(shop, **{k: v for k, v in body.items() if k != "name"})
    assert c["parameters"] == NAMED_PARAMS
    # Buttons by position too (null for a button that takes nothing); stored by index.
    c = make(shop, template=NAMED, parameters={**NAMED_PARAMS, "buttons": [None, {"value": "42"}]})
    assert c["parameters"]["buttons"] == {"1": {"value": "42"}}
    r = shop.api.post(
        "/api/campaigns/preview",
        json={"template": NAMED, "parameters": NAMED_PARAMS, "audience": {"tags": ["VIP"]}},
    )
    assert r.status_code == 200, r.text
    first = r.json()["data"]["sample"][0]
    assert first["text"] == "Hello Asha\n\nUse X1 in Pune.\n\nReply STOP to opt out"
    assert first["components"] == [
        {
            "type": "header",
            "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Asha"}],
        },
        {
            "type": "body",
            "parameters": [
                {"type": "text", "parameter_name": "code", "text": "X1"},
                {"type": "text", "parameter_name": "city", "text": "Pune"},
            ],
        },
        {
            "type": "button",
            "sub_type": "url",
            "index": "1",
            "parameters": [{"type": "text", "text": "42"}],
        },
    ]


# -- other workspaces ---------------------------------------------------------------------------


def test_another_workspaces_campaign_is_a_404(shop: Shop, ws: Any) -> None:
    theirs = make(shop)
    with ws.client() as mine:
        for method, suffix, body in (
            ("GET", "", None),
            ("PUT", "", {"name": "Hijacked"}),
            ("DELETE", "", None),
            ("POST", "/start", {"force": True}),
            ("POST", "/pause", None),
            ("POST", "/resume", None),
            ("POST", "/cancel", None),
            ("POST", "/resend-unknown", None),
            ("GET", "/recipients", None),
            ("GET", "/stats", None),
        ):
            for prefix in ("/api", "/v1"):
                for cid in (theirs["id"], "not-a-uuid", str(uuid.uuid4())):
                    r = mine.request(method, f"{prefix}/campaigns/{cid}{suffix}", json=body)
                    assert r.status_code == 404, (method, prefix, suffix, r.text)
                    assert error(r)[2] == "campaign_not_found"
        # Nor can one retarget another workspace's campaign, nor name its contacts.
        mine.post("/api/templates", json=ORDER_UPDATE)
        r = mine.post(
            "/api/campaigns/preview",
            json={**SEED_EXAMPLE, "audience": {"from_campaign": {"id": theirs["id"]}}},
        )
        assert error(r)[1] in ("audience.from_campaign.id", "template.name"), r.text
        r = mine.post(
            "/api/campaigns",
            json={**SEED_EXAMPLE, "audience": {"contact_ids": [shop.contacts[0]["id"]]}},
        )
        assert r.status_code == 422, r.text
        listed = mine.get("/api/campaigns").json()["data"]
        assert listed["total"] == 0 and listed["campaigns"] == []
    after = shop.api.get(f"/api/campaigns/{theirs['id']}").json()["data"]["campaign"]
    assert after == theirs


# -- PUT and DELETE by status -------------------------------------------------------------------


def test_put_and_delete_follow_the_status(shop: Shop) -> None:
    c = make(shop)
    url = f"/api/campaigns/{c['id']}"
    r = shop.api.put(
        url, json={"name": "Diwali offer (final)", "audience": {"tags_all": ["VIP", "new"]}}
    )
    assert r.status_code == 200, r.text
    edited = r.json()["data"]["campaign"]
    assert edited["name"] == "Diwali offer (final)"
    assert edited["audience"] == {"tags_all": ["VIP", "new"]}
    assert edited["parameters"] == c["parameters"]  # not sent: unchanged
    r = shop.api.put(url, json={"parameters": {"body": [{"value": "x"}]}})
    assert error(r)[:2] == (422, "parameters.body[1]"), r.text
    r = shop.api.put(url, json={"name": None})
    assert error(r)[:2] == (422, "name"), r.text

    # draft -> scheduled -> draft again
    r = shop.api.put(url, json={"scheduled_at": future()})
    assert r.json()["data"]["campaign"]["status"] == "scheduled", r.text
    r = shop.api.put(url, json={"scheduled_at": None})
    assert r.json()["data"]["campaign"]["status"] == "draft", r.text
    assert r.json()["data"]["campaign"]["scheduled_at"] is None

    # running: no edits, no delete (an audience that is still sending while we look)
    with held(shop) as audience:
        assert shop.api.put(url, json={"audience": audience}).status_code == 200
        _running_paused_cancelled(shop, url, c)


def _running_paused_cancelled(shop: Shop, url: str, c: dict[str, Any]) -> None:
    r = shop.api.post(f"{url}/start")
    assert r.status_code == 200 and r.json()["data"]["campaign"]["status"] == "running", r.text
    r = shop.api.put(url, json={"name": "late"})
    assert error(r) == (409, None, "campaign_status") and "running" in r.json()["message"]
    r = shop.api.delete(url)
    assert error(r) == (409, None, "campaign_status") and "running" in r.json()["message"]
    r = shop.api.post(f"{url}/start")
    assert error(r)[::2] == (409, "campaign_status"), r.text
    r = shop.api.post(f"{url}/resume")
    assert error(r)[::2] == (409, "campaign_status"), r.text

    # paused: name and parameters may change, not the audience
    r = shop.api.post(f"{url}/pause")
    assert r.json()["data"]["campaign"]["status"] == "paused", r.text
    r = shop.api.put(url, json={"name": "paused edit"})
    assert r.status_code == 200, r.text
    r = shop.api.put(url, json={"audience": {"tags": ["new"]}})
    assert error(r) == (409, "audience", "campaign_started"), r.text
    r = shop.api.delete(url)
    assert error(r)[0] == 409, r.text
    r = shop.api.post(f"{url}/resume")
    assert r.json()["data"]["campaign"]["status"] == "running", r.text

    r = shop.api.post(f"{url}/cancel")
    assert r.json()["data"]["campaign"]["status"] == "cancelled", r.text
    r = shop.api.post(f"{url}/cancel")
    assert error(r) == (409, None, "campaign_status") and "cancelled" in r.json()["message"]
    r = shop.api.put(url, json={"name": "too late"})
    assert error(r)[0] == 409
    r = shop.api.delete(url)
    assert r.status_code == 200 and r.json()["data"] == {"id": c["id"], "deleted": True}, r.text
    assert shop.api.get(url).status_code == 404

    draft = make(shop)
    assert shop.v1.delete(f"/v1/campaigns/{draft['id']}").json() == {
        "success": True,
        "id": draft["id"],
        "deleted": True,
    }


def test_list_filters_by_status_and_pages(shop: Shop) -> None:
    ids = [make(shop, name=f"page {i}")["id"] for i in range(3)]
    with held(shop) as audience:
        running = make(shop, start=True, audience=audience)
        listed = shop.api.get("/api/campaigns", params={"status": "running", "per_page": 100})
    api = listed.json()
    assert running["id"] in {c["id"] for c in api["data"]["campaigns"]}
    assert all(c["status"] == "running" for c in api["data"]["campaigns"])
    drafts = shop.api.get("/api/campaigns", params={"status": "draft", "per_page": 100}).json()
    assert set(ids) <= {c["id"] for c in drafts["data"]["campaigns"]}
    page = shop.api.get("/api/campaigns", params={"per_page": 2, "page": 1}).json()["data"]
    assert len(page["campaigns"]) == 2 and page["page"] == 1 and page["per_page"] == 2
    assert page["campaigns"][0]["id"] == running["id"]  # newest first
    v1 = shop.v1.get("/v1/campaigns", params={"limit": 2, "offset": 1}).json()
    assert v1["success"] is True and len(v1["campaigns"]) == 2
    assert v1["pagination"]["limit"] == 2 and v1["pagination"]["offset"] == 1
    assert v1["pagination"]["total"] == page["total"]
    assert error(shop.api.get("/api/campaigns", params={"status": "lost"}))[:2] == (422, "status")
    assert error(shop.v1.get("/v1/campaigns", params={"status": "lost"}))[:2] == (422, "status")


def test_recipients_and_stats_answer_in_both_shapes(shop: Shop) -> None:
    c = make(shop)
    r = shop.api.get(f"/api/campaigns/{c['id']}/recipients", params={"status": "failed"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert set(data) == {"recipients", "total", "page", "per_page"}
    r = shop.v1.get(f"/v1/campaigns/{c['id']}/recipients", params={"limit": 5})
    assert r.status_code == 200 and set(r.json()) == {"success", "recipients", "pagination"}
    r = shop.api.get(f"/api/campaigns/{c['id']}/recipients", params={"status": "lost"})
    assert error(r)[:2] == (422, "status"), r.text
    stats = shop.api.get(f"/api/campaigns/{c['id']}/stats").json()["data"]["stats"]
    assert stats == c["stats"]
    assert shop.v1.get(f"/v1/campaigns/{c['id']}/stats").json() == {"success": True, "stats": stats}


def test_v1_names_contacts_by_cnt_id(shop: Shop) -> None:
    cnt = [x["id"] for x in shop.v1.get("/v1/contacts", params={"limit": 100}).json()["contacts"]]
    r = shop.v1.post("/v1/campaigns", json={**SEED_EXAMPLE, "audience": {"contact_ids": cnt[:2]}})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["success"] is True
    c = body["campaign"]
    assert c["audience"] == {"contact_ids": cnt[:2]}
    api = shop.api.get(f"/api/campaigns/{c['id']}").json()["data"]["campaign"]
    uuids = [shop.api.get(f"/v1/contacts/{i}") for i in cnt[:2]]
    assert len(api["audience"]["contact_ids"]) == 2
    assert all(len(u) == 36 for u in api["audience"]["contact_ids"])
    assert uuids  # both exist
    # Each surface takes its own kind of contact id.
    r = shop.api.post("/api/campaigns", json={**SEED_EXAMPLE, "audience": {"contact_ids": cnt[:1]}})
    assert error(r)[:2] == (422, "audience.contact_ids[0]")
    r = shop.v1.post(
        "/v1/campaigns",
        json={**SEED_EXAMPLE, "audience": {"contact_ids": [shop.contacts[0]["id"]]}},
    )
    assert error(r)[:2] == (422, "audience.contact_ids[0]")
    r = shop.v1.post(f"/v1/campaigns/{c['id']}/start", json={})
    assert r.status_code == 200 and r.json()["campaign"]["status"] == "running", r.text
    r = shop.v1.put(f"/v1/campaigns/{c['id']}", json={"name": "x"})
    assert r.status_code == 409 and r.json()["success"] is False, r.text
    assert r.json()["error"]["code"] == "campaign_status"


def test_idempotency_key_makes_one_campaign(shop: Shop) -> None:
    key = f"campaign-{uuid.uuid4()}"
    first = shop.api.post("/api/campaigns", json=SEED_EXAMPLE, headers={"Idempotency-Key": key})
    again = shop.api.post("/api/campaigns", json=SEED_EXAMPLE, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201, again.text
    assert first.json() == again.json()
    r = shop.api.post(
        f"/api/campaigns/{first.json()['data']['campaign']['id']}/start",
        headers={"Idempotency-Key": "not valid"},
    )
    assert r.status_code == 400, r.text
