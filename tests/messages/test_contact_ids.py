"""A message names its contact the way its surface names contacts: on /api by the uuid that
GET /api/contacts/{id} opens, with phones in E.164; on /v1 by the cnt_ id of GET /v1/contacts/{id}.
Both for a customer's inbound message and for an outbound send."""

from __future__ import annotations

from typing import Any

import httpx

from tests.messages.test_end_to_end import CUSTOMER, customer_writes, sandbox, wait_for
from tests.servers import Server

E164 = "+" + CUSTOMER


def _inbound(api: httpx.Client) -> list[dict[str, Any]]:
    r = api.get("/api/messages", params={"direction": "inbound"})
    return list(r.json()["data"]["messages"])


def test_messages_name_their_contact_as_each_surface_does(
    server: Server, api: httpx.Client, v1: httpx.Client
) -> None:
    customer_writes(server, sandbox(api)["phone_number_id"], "Where is my order?")
    inbound = wait_for(lambda: _inbound(api), "the inbound message")[0]
    # Written as people write numbers: stored and shown in E.164.
    r = api.post("/api/messages/send", json={"to": "+91 98123-45678", "text": {"body": "Shipped"}})
    assert r.status_code == 202, r.text
    sent_id = r.json()["data"]["message"]["id"]

    contact = api.get("/api/contacts", params={"q": CUSTOMER}).json()["data"]["contacts"][0]
    assert contact["phone_number"] == E164
    (v1_contact,) = v1.get("/v1/contacts").json()["contacts"]
    assert v1_contact["id"].startswith("cnt_") and v1_contact["phone"] == CUSTOMER

    one = {
        m: api.get(f"/api/messages/{m}").json()["data"]["message"] for m in (inbound["id"], sent_id)
    }
    listed = {m["id"]: m for m in api.get("/api/messages").json()["data"]["messages"]}
    assert set(listed) == set(one)
    for msg in [*one.values(), *listed.values()]:
        assert msg["contact_id"] == contact["id"], msg
        r = api.get(f"/api/contacts/{msg['contact_id']}")
        assert r.status_code == 200 and r.json()["data"]["contact"] == contact, r.text
    for msg in (one[inbound["id"]], listed[inbound["id"]]):
        assert msg["direction"] == "inbound" and msg["from"] == E164 and msg["to"] is None
    for msg in (one[sent_id], listed[sent_id]):
        assert msg["direction"] == "outbound" and msg["to"] == E164 and msg["from"] is None
    by_uuid = api.get("/api/messages", params={"contact": contact["id"]}).json()["data"]
    assert by_uuid["total"] == 2

    # /v1: the same messages, naming the contact by its cnt_ id, which /v1 opens.
    v1_one = [v1.get(f"/v1/messages/{m}").json()["data"] for m in one]
    v1_listed = v1.get("/v1/messages").json()["data"]
    assert {m["id"] for m in v1_listed} == set(one)
    for msg in [*v1_one, *v1_listed]:
        assert msg["contact_id"] == v1_contact["id"], msg
        assert v1.get(f"/v1/contacts/{msg['contact_id']}").json()["contact"] == v1_contact
    by_cnt = v1.get("/v1/messages", params={"contact": v1_contact["id"]}).json()
    assert by_cnt["pagination"]["total"] == 2
