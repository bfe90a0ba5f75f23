"""The pre-flight and preview over real HTTP on both databases: who an audience reaches (every
criterion, retargeting included), whom it skips and why, the template, the messaging limit left
in Meta's moving 24 hours, the estimated duration; a start over the limit is refused unless
forced."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.campaigns.helpers import (
    ORDER_UPDATE,
    add_recipients,
    approved_template,
    contact,
    customer_writes,
    sandbox,
    set_messaging_limit,
    wait_for,
)
from tests.conftest import Workspace
from tests.servers import Server

NO_FALLBACK = {"body": [{"field": "first_name"}, {"value": "DIWALI20"}]}


def preview(api: httpx.Client, audience: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {
        "template": {"name": "order_update", "language": "en_US"},
        "audience": audience,
        "parameters": NO_FALLBACK,
        **extra,
    }
    r = api.post("/api/campaigns/preview", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json()["data"])


def codes(checked: dict[str, Any]) -> dict[str, bool]:
    return {p["code"]: p["blocking"] for p in checked["problems"]}


def test_preview_counts_the_skipped_and_shows_five_messages(
    server: Server, ws: Workspace, api: httpx.Client
) -> None:
    approved_template(api, ORDER_UPDATE)
    number = sandbox(api)
    people = [
        contact(api, "+919811100001", name="Asha Rao", tags=["pv"]),
        contact(api, "+919811100002", name="Ravi", tags=["pv"]),
        contact(api, "+919811100003", tags=["pv"]),  # no first name, no fallback: skipped
        contact(api, "+919811100004", name="Meera", tags=["pv"]),  # opts out below
        contact(api, "+919811100005", name="Kabir", tags=["pv"]),
        contact(api, "+919811100006", name="Zoya", tags=["pv"]),
        contact(api, "+919811100007", name="Other", tags=["elsewhere"]),
    ]
    customer_writes(server, number["phone_number_id"], "919811100004", "STOP")
    wait_for(lambda: preview(api, {"tags": ["pv"]})["preflight"]["opted_out"] == 1, "the opt-out")

    data = preview(api, {"tags": ["pv"]})
    checked = data["preflight"]
    assert checked["audience"] == 6
    assert checked["opted_out"] == 1
    assert checked["missing_variable"] == 1
    assert checked["eligible"] == 4
    assert checked["template"] == {"status": "APPROVED", "quality": None}
    assert checked["messaging_limit"] == {
        "tier": "TIER_1K",
        "limit": 1000,
        "used_24h": 0,
        "left": 1000,
    }
    assert checked["estimated_seconds"] == 1  # 4 messages at 80/s
    assert codes(checked) == {"opted_out": False, "missing_variable": False}

    sample = data["sample"]
    assert [s["contact"]["id"] for s in sample] == [p["id"] for p in people[:5]]
    assert sample[0]["text"] == "Hi Asha, your order DIWALI20 has shipped."
    assert sample[0]["components"] == [
        {
            "type": "body",
            "parameters": [{"type": "text", "text": "Asha"}, {"type": "text", "text": "DIWALI20"}],
        }
    ]
    assert sample[0]["skip_reason"] is None and sample[0]["missing"] is None
    assert sample[2]["skip_reason"] == "missing_variable" and sample[2]["text"] is None
    assert sample[2]["missing"] == "body[0] (first_name)"
    assert sample[3]["skip_reason"] == "opted_out"
    assert sample[3]["text"] == "Hi Meera, your order DIWALI20 has shipped."

    # A fallback fills the hole: nobody is missing a variable any more.
    with_fallback = {"body": [{"field": "first_name", "fallback": "there"}, {"value": "X"}]}
    checked = preview(api, {"tags": ["pv"]}, parameters=with_fallback)
    assert checked["preflight"]["missing_variable"] == 0
    assert checked["sample"][2]["text"] == "Hi there, your order X has shipped."

    # A template message sent in the last 24 hours counts against the limit (distinct people).
    send = {
        "to": people[0]["phone_number"],
        "type": "template",
        "template": {"name": "order_update", "language": "en_US", "parameters": ["A", "B"]},
    }
    for _ in range(2):
        assert api.post("/api/messages/send", json=send).status_code == 202
    limit = preview(api, {"tags": ["pv"]})["preflight"]["messaging_limit"]
    assert limit["used_24h"] == 1 and limit["left"] == 999

    # The sample shows contacts on /v1 by their cnt_ id; preview writes nothing.
    with ws.client(bearer=True) as v1:
        r = v1.post(
            "/v1/campaigns/preview",
            json={
                "template": {"name": "order_update", "language": "en_US"},
                "audience": {"tags": ["pv"]},
                "parameters": NO_FALLBACK,
            },
        )
        assert r.status_code == 200 and r.json()["success"] is True, r.text
        assert r.json()["sample"][0]["contact"]["id"].startswith("cnt_")
    assert api.get("/api/campaigns").json()["data"]["total"] == 0

    # An audience nobody is in: blocking.
    checked = preview(api, {"tags": ["nobody"]})["preflight"]
    assert checked["audience"] == 0 and codes(checked)["audience_empty"] is True


def test_a_start_over_the_messaging_limit_is_refused_unless_forced(
    server: Server, ws: Workspace, api: httpx.Client
) -> None:
    approved_template(api, ORDER_UPDATE)
    account = sandbox(api)
    set_messaging_limit(server, account["id"], "TIER_50")
    with ws.client(bearer=True) as v1:
        for i in range(51):
            r = v1.post("/v1/contacts", json={"phone": f"9198222{i:05d}", "tags": ["big"]})
            assert r.status_code == 201, r.text
    r = api.put(f"/api/accounts/{account['id']}", json={"throughput": 1})
    assert r.status_code == 200, r.text
    body = {
        "name": "Too many",
        "template": {"name": "order_update", "language": "en_US"},
        "audience": {"tags": ["big"]},
        "parameters": {"body": [{"field": "first_name", "fallback": "there"}, {"value": "X"}]},
    }
    checked = preview(api, body["audience"], parameters=body["parameters"])["preflight"]
    assert checked["eligible"] == 51
    assert checked["messaging_limit"] == {"tier": "TIER_50", "limit": 50, "used_24h": 0, "left": 50}
    assert codes(checked) == {"messaging_limit_exceeded": True}
    assert checked["estimated_seconds"] == 51  # at 1 message a second

    r = api.post("/api/campaigns", json={**body, "start": True})
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "messaging_limit_exceeded"
    assert "force" in r.json()["message"]
    assert api.get("/api/campaigns").json()["data"]["total"] == 0  # nothing written

    r = api.post("/api/campaigns", json={**body, "start": True, "force": True})
    assert r.status_code == 201 and r.json()["data"]["campaign"]["status"] == "running", r.text

    draft = api.post("/api/campaigns", json=body).json()["data"]["campaign"]
    r = api.post(f"/api/campaigns/{draft['id']}/start")
    assert r.status_code == 409 and r.json()["code"] == "messaging_limit_exceeded", r.text
    r = api.post(f"/api/campaigns/{draft['id']}/start", json={"force": False})
    assert r.status_code == 409, r.text
    r = api.post(f"/api/campaigns/{draft['id']}/start", json={"force": True})
    assert r.status_code == 200 and r.json()["data"]["campaign"]["status"] == "running", r.text


@pytest.fixture
def crowd(api: httpx.Client) -> list[dict[str, Any]]:
    approved_template(api, ORDER_UPDATE)
    return [
        contact(
            api,
            "+919833300001",
            name="One",
            tags=["a", "b"],
            stage="Lead",
            custom_fields={"city": "Pune", "orders": 10, "vip": True},
        ),
        contact(
            api,
            "+919833300002",
            name="Two",
            tags=["a"],
            stage="Customer",
            custom_fields={"city": "Mumbai", "orders": "10"},
        ),
        contact(
            api, "+919833300003", name="Three", tags=["b", "x"], custom_fields={"city": "Pune"}
        ),
        contact(api, "+919833300004", tags=[], custom_fields={"city": "  "}),
    ]


def test_every_audience_criterion(
    server: Server, api: httpx.Client, crowd: list[dict[str, Any]]
) -> None:
    one, two, three, four = (c["id"] for c in crowd)
    cases: list[tuple[dict[str, Any], int]] = [
        ({"all": True}, 4),
        ({"tags": ["a"]}, 2),
        ({"tags": ["a", "b"]}, 3),
        ({"tags_all": ["a", "b"]}, 1),
        ({"tags": ["a", "b"], "exclude_tags": ["x"]}, 2),
        ({"stage": "Customer"}, 1),
        ({"stage": "customer"}, 1),  # the workspace's stages, case-insensitive
        ({"custom_fields": {"city": "Pune"}}, 2),
        ({"custom_fields": {"city": {"in": ["Pune", "Mumbai"]}}}, 3),
        ({"custom_fields": {"orders": 10}}, 1),  # the number, not the string
        ({"custom_fields": {"orders": "10"}}, 1),
        ({"custom_fields": {"orders": 10.0}}, 1),
        ({"custom_fields": {"vip": True}}, 1),
        ({"custom_fields": {"city": "Pune"}, "tags": ["x"]}, 1),
        ({"contact_ids": [one, four]}, 2),
        ({"contact_ids": [one, four, one], "tags": ["a"]}, 1),
    ]
    for audience, expected in cases:
        checked = preview(api, audience)["preflight"]
        assert checked["audience"] == expected, (audience, checked)

    # Retargeting an earlier campaign's recipients by their outcome.
    earlier = api.post(
        "/api/campaigns",
        json={
            "name": "Earlier",
            "template": {"name": "order_update", "language": "en_US"},
            "audience": {"all": True},
            "parameters": NO_FALLBACK,
        },
    ).json()["data"]["campaign"]
    add_recipients(server, earlier["id"], {one: "failed", two: "delivered", three: "queued"})
    for statuses, expected in (
        (["failed"], 1),
        (["pending"], 1),  # queued is shown as pending
        (["failed", "delivered"], 2),
        (["read"], 0),
        (None, 3),
    ):
        source: dict[str, Any] = {"id": earlier["id"]}
        if statuses is not None:
            source["statuses"] = statuses
        checked = preview(api, {"from_campaign": source})["preflight"]
        assert checked["audience"] == expected, (statuses, checked)
    r = api.post(
        "/api/campaigns",
        json={
            "name": "Retry the failed",
            "template": {"name": "order_update", "language": "en_US"},
            "audience": {"from_campaign": {"id": earlier["id"], "statuses": ["failed"]}},
            "parameters": NO_FALLBACK,
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["data"]["campaign"]["audience"] == {
        "from_campaign": {"id": earlier["id"], "statuses": ["failed"]}
    }
    # A campaign cannot retarget itself.
    retry = r.json()["data"]["campaign"]
    r = api.put(
        f"/api/campaigns/{retry['id']}", json={"audience": {"from_campaign": {"id": retry["id"]}}}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "audience.from_campaign.id"


def test_missing_variables_are_counted_in_the_database(
    api: httpx.Client, crowd: list[dict[str, Any]]
) -> None:
    def missing(entry: dict[str, Any]) -> int:
        params = {"body": [entry, {"value": "X"}]}
        return int(preview(api, {"all": True}, parameters=params)["preflight"]["missing_variable"])

    assert missing({"field": "first_name"}) == 1  # four has no name
    assert missing({"field": "name"}) == 1
    assert missing({"field": "phone"}) == 0
    assert missing({"field": "stage"}) == 0
    assert missing({"field": "email"}) == 4
    assert missing({"field": "custom_fields.city"}) == 1  # only spaces is empty
    assert missing({"field": "custom_fields.orders"}) == 2
    assert missing({"field": "custom_fields.vip"}) == 3
    assert missing({"field": "email", "fallback": "you"}) == 0
