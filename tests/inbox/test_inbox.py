"""The team inbox over real HTTP on SQLite and PostgreSQL, the emulator as Meta: customers write,
conversations appear with unread counts, agents claim, reply, note, and the window holds."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from aisoule.config import normalize_database_url
from aisoule.kit.time import utcnow
from aisoule.models import Conversation
from tests.conftest import Workspace
from tests.inbox.helpers import (
    customer_writes,
    invite,
    sandbox_number,
    start_conversation,
    wait_conversation,
    wait_for,
)
from tests.servers import Server


def emulator(server: Server, what: str) -> list[dict[str, object]]:
    r = httpx.get(f"{server.url}/emulator/_emulator/{what}", timeout=10)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def test_customer_message_makes_a_conversation_with_unread_counts(ws: Workspace) -> None:
    agent = invite(ws)
    customer, conv = start_conversation(ws, "Hi, where is order #1042?")
    assert conv["status"] == "open" and conv["assignee"] is None
    assert conv["unread"] == 1 and conv["window_open"] is True
    assert conv["last_message_preview"] == "Hi, where is order #1042?"
    assert conv["contact"]["phone"] == "+" + customer and conv["contact"]["opted_out"] is False
    customer_writes(ws.server, sandbox_number(ws), customer, "Hello?")
    conv = wait_conversation(agent.client, customer, unread=2)

    # Opening it: this member's unread drops to 0 (not the owner's), the newest message is
    # marked read at Meta, once.
    r = agent.client.post(f"/api/conversations/{conv['id']}/read")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["conversation"]["unread"] == 0
    assert wait_conversation(ws.session, customer)["unread"] == 2
    newest = agent.client.get(f"/api/conversations/{conv['id']}/messages").json()["data"]
    assert newest["total"] == 2 and newest["messages"][0]["preview"] == "Hello?"
    wamid = newest["messages"][0]["wamid"]
    wait_for(lambda: any(m["message_id"] == wamid for m in emulator(ws.server, "reads")), "read")
    assert agent.client.post(f"/api/conversations/{conv['id']}/read").status_code == 200
    assert [m["message_id"] for m in emulator(ws.server, "reads")].count(wamid) == 1

    # Views, filters and search.
    assert [
        c["id"]
        for c in agent.client.get("/api/conversations", params={"view": "unassigned"}).json()[
            "data"
        ]["conversations"]
    ].count(conv["id"]) == 1
    assert (
        agent.client.get("/api/conversations", params={"view": "mine"}).json()["data"]["total"] == 0
    )
    found = agent.client.get("/api/conversations", params={"q": "ORDER #1042"}).json()["data"]
    assert [c["id"] for c in found["conversations"]] == [conv["id"]]
    assert (
        agent.client.get("/api/conversations", params={"q": "no such text"}).json()["data"]["total"]
        == 0
    )
    assert (
        agent.client.get("/api/conversations", params={"q": "100%_"}).json()["data"]["total"] == 0
    )


def test_fifty_concurrent_claims_make_exactly_one_assignee(ws: Workspace) -> None:
    agents = [invite(ws) for _ in range(5)]
    _, conv = start_conversation(ws)
    path = f"/api/conversations/{conv['id']}/claim"

    def claim(i: int) -> httpx.Response:
        return agents[i % len(agents)].client.post(path, json={})

    with ThreadPoolExecutor(max_workers=25) as pool:
        answers = list(pool.map(claim, range(50)))
    assert {r.status_code for r in answers} <= {200, 409}, [r.text for r in answers]
    winners = {
        r.json()["data"]["conversation"]["assignee"]["id"] for r in answers if r.status_code == 200
    }
    assert len(winners) == 1
    (winner,) = winners
    holder = next(a for a in agents if a.user_id == winner)
    for r in answers:
        if r.status_code == 409:
            assert r.json()["code"] == "already_assigned"
            assert holder.email in r.json()["message"]  # told who has it
    # Everyone but the winner was refused; the winner's own repeats are no-ops.
    assert sum(r.status_code == 200 for r in answers) == 10
    events = ws.session.get(f"/api/conversations/{conv['id']}/events").json()["data"]["events"]
    assert [e["kind"] for e in events] == ["assigned"]
    assert events[0]["actor_user_id"] == winner and events[0]["data"]["reason"] == "claim"

    # An agent cannot take it from the holder; an admin can (a takeover, on the timeline).
    other = next(a for a in agents if a.user_id != winner)
    r = other.client.put(
        f"/api/conversations/{conv['id']}/assignee", json={"assignee_id": other.user_id}
    )
    assert r.status_code == 409 and r.json()["code"] == "already_assigned", r.text
    r = ws.session.put(
        f"/api/conversations/{conv['id']}/assignee",
        json={"assignee_id": other.user_id, "reason": "shift change"},
    )
    assert (
        r.status_code == 200 and r.json()["data"]["conversation"]["assignee"]["id"] == other.user_id
    )
    last = ws.session.get(f"/api/conversations/{conv['id']}/events").json()["data"]["events"][0]
    assert last["data"] == {"from": winner, "to": other.user_id, "reason": "shift change"}


def test_only_the_assignee_replies_when_the_setting_is_on(ws: Workspace) -> None:
    a, b = invite(ws), invite(ws)
    r = a.client.put("/api/inbox/settings", json={"only_assignee_replies": True})
    assert r.status_code == 403 and r.json()["code"] == "role_forbidden", r.text
    r = ws.session.put("/api/inbox/settings", json={"only_assignee_replies": True})
    assert r.status_code == 200 and r.json()["data"]["settings"]["only_assignee_replies"] is True
    _, conv = start_conversation(ws)
    cid = conv["id"]
    assert a.client.post(f"/api/conversations/{cid}/claim").status_code == 200
    r = b.client.post(f"/api/conversations/{cid}/reply", json={"text": "I can help!"})
    assert r.status_code == 403 and r.json()["code"] == "assignee_only", r.text
    assert a.email in r.json()["message"]
    r = a.client.post(
        f"/api/conversations/{cid}/reply",
        json={"text": "On its way 🚚"},
        headers={"Idempotency-Key": "reply-1"},
    )
    assert r.status_code == 202, r.text
    again = a.client.post(
        f"/api/conversations/{cid}/reply",
        json={"text": "On its way 🚚"},
        headers={"Idempotency-Key": "reply-1"},
    )
    assert again.json()["data"]["message"]["id"] == r.json()["data"]["message"]["id"]
    sent = wait_for(
        lambda: [m for m in emulator(ws.server, "messages") if "On its way" in str(m)],
        "the reply at Meta",
    )
    assert len(sent) == 1  # the retry sent nothing
    # A reply to an unassigned conversation claims it for the replier.
    _, other = start_conversation(ws)
    assert (
        b.client.post(f"/api/conversations/{other['id']}/reply", json={"text": "Hi"}).status_code
        == 202
    )
    assert (
        wait_conversation(ws.session, other["contact"]["phone"][1:])["assignee"]["id"] == b.user_id
    )


def test_sending_to_a_contact_obeys_only_the_assignee_replies(ws: Workspace) -> None:
    """The rule holds wherever a member sends from (POST /api/messages/send, the contact
    page's form), not only the inbox's reply; an API key (an integration) is not held to it."""
    a, b = invite(ws), invite(ws)
    assert ws.session.put("/api/inbox/settings", json={"only_assignee_replies": True}).is_success
    _, conv = start_conversation(ws)
    cid, contact = conv["id"], conv["contact"]["id"]
    assert a.client.post(f"/api/conversations/{cid}/claim").status_code == 200

    def text(body: str) -> dict[str, object]:
        return {"to": contact, "type": "text", "text": {"body": body}}

    def sent(body: str) -> list[dict[str, object]]:
        return [m for m in emulator(ws.server, "messages") if body in str(m)]

    r = b.client.post("/api/messages/send", json=text("From B's API call"))
    assert r.status_code == 403 and r.json()["code"] == "assignee_only", r.text
    assert a.email in r.json()["message"]
    page = b.client.post(f"/contacts/{contact}/send", data={"text": "From B's contact page"})
    assert page.status_code == 422, page.text  # the refusal, shown on the form
    assert 'role="alert"' in page.text and "Only the assignee" in page.text
    # Nothing was written: no message in the contact's history, the conversation unchanged.
    history = ws.session.get("/api/messages", params={"contact": contact}).json()["data"]
    assert not [m for m in history["messages"] if m["direction"] == "outbound"]
    assert (
        ws.session.get(f"/api/conversations/{cid}").json()["data"]["conversation"]["assignee"]["id"]
        == a.user_id
    )

    # The assignee sends from the contact page: sent, and it is the conversation's last message.
    page = a.client.post(f"/contacts/{contact}/send", data={"text": "From A's contact page"})
    assert page.status_code == 200 and 'role="alert"' not in page.text, page.text
    wait_for(lambda: sent("From A's contact page"), "A's message at Meta")
    last = ws.session.get(f"/api/conversations/{cid}").json()["data"]["conversation"]
    assert last["last_message_direction"] == "outbound", last
    assert last["last_message_preview"] == "From A's contact page"

    # An integration's key is not a member: it sends whoever holds the conversation.
    r = ws.client().post("/api/messages/send", json=text("From the CRM"))
    assert r.status_code == 202, r.text
    wait_for(lambda: sent("From the CRM"), "the key's message at Meta")
    assert not sent("From B's")  # the refused ones never reached Meta

    # A member sending to an unassigned conversation claims it, as a reply does.
    _, other = start_conversation(ws)
    r = b.client.post(
        "/api/messages/send",
        json={"to": other["contact"]["id"], "type": "text", "text": {"body": "Hi"}},
    )
    assert r.status_code == 202, r.text
    held = ws.session.get(f"/api/conversations/{other['id']}").json()["data"]["conversation"]
    assert held["assignee"]["id"] == b.user_id


def _age_window(server: Server, conversation_id: str, hours: int) -> None:
    async def run() -> None:
        engine = create_async_engine(normalize_database_url(server.database_url))
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    update(Conversation)
                    .where(Conversation.id == int(conversation_id))
                    .values(last_inbound_at=utcnow() - timedelta(hours=hours))
                )
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_outside_the_window_free_text_is_refused_and_a_template_accepted(ws: Workspace) -> None:
    body = {
        "name": f"order_update_{uuid.uuid4().hex[:6]}",
        "language": "en_US",
        "category": "UTILITY",
        "components": [
            {
                "type": "BODY",
                "text": "Hi {{1}}, your order shipped.",
                "example": {"body_text": [["Priya"]]},
            }
        ],
    }
    r = ws.session.post("/api/templates", json=body)
    assert r.status_code in (201, 202), r.text
    tid = r.json()["data"]["template"]["id"]
    wait_for(
        lambda: (
            ws.session.get(f"/api/templates/{tid}").json()["data"]["template"]["status"]
            == "APPROVED"
        ),
        "approval",
    )
    _, conv = start_conversation(ws)
    _age_window(ws.server, conv["id"], 25)
    got = ws.session.get(f"/api/conversations/{conv['id']}").json()["data"]["conversation"]
    assert got["window_open"] is False
    r = ws.session.post(f"/api/conversations/{conv['id']}/reply", json={"text": "Are you there?"})
    assert r.status_code == 422 and r.json()["code"] == "outside_24h_window", r.text
    r = ws.session.post(
        f"/api/conversations/{conv['id']}/reply",
        json={"type": "template", "template": {"name": body["name"], "parameters": ["Priya"]}},
    )
    assert r.status_code == 202, r.text
    assert r.json()["data"]["message"]["type"] == "template"


def test_a_note_is_on_the_timeline_and_never_sent(ws: Workspace) -> None:
    agent = invite(ws)
    _, conv = start_conversation(ws)
    secret = f"customer sounds angry {uuid.uuid4().hex}"
    r = agent.client.post(f"/api/conversations/{conv['id']}/notes", json={"body": secret})
    assert r.status_code == 201, r.text
    assert r.json()["data"]["event"]["kind"] == "note"
    events = ws.session.get(f"/api/conversations/{conv['id']}/events").json()["data"]["events"]
    assert events[0]["data"]["body"] == secret and events[0]["actor_user_id"] == agent.user_id
    thread = ws.session.get(f"/api/conversations/{conv['id']}/messages").json()["data"]
    assert secret not in str(thread)
    assert secret not in str(emulator(ws.server, "messages"))


def test_status_labels_canned_and_context(ws: Workspace) -> None:
    customer, conv = start_conversation(ws, "Need a refund")
    cid = conv["id"]
    r = ws.session.post(f"/api/conversations/{cid}/labels", json={"add": ["Refund", "vip"]})
    assert r.json()["data"]["conversation"]["labels"] == ["refund", "vip"]
    assert [
        c["id"]
        for c in ws.session.get("/api/conversations", params={"label": "refund"}).json()["data"][
            "conversations"
        ]
    ] == [cid]
    r = ws.session.put(f"/api/conversations/{cid}/status", json={"status": "snoozed"})
    assert r.status_code == 422, r.text
    r = ws.session.put(
        f"/api/conversations/{cid}/status", json={"status": "resolved", "reason": "refunded"}
    )
    assert r.json()["data"]["conversation"]["status"] == "resolved"
    assert (
        ws.session.get("/api/conversations", params={"status": "open"}).json()["data"]["total"] == 0
    )
    # The customer writes again: reopened, with the event saying why.
    customer_writes(ws.server, sandbox_number(ws), customer, "One more thing")
    wait_conversation(ws.session, customer, status="open")
    kinds = [
        (e["kind"], e["data"].get("reason"))
        for e in ws.session.get(f"/api/conversations/{cid}/events").json()["data"]["events"]
    ]
    assert kinds[:2] == [("status", "customer_wrote"), ("status", "refunded")]

    r = ws.session.post(
        "/api/canned-responses",
        json={"short_code": "/Refund", "content": "Your refund is on its way."},
    )
    assert r.status_code == 201 and r.json()["data"]["canned_response"]["short_code"] == "refund"
    assert (
        ws.session.post(
            "/api/canned-responses", json={"short_code": "refund", "content": "x"}
        ).status_code
        == 409
    )
    quoted = ws.session.get(f"/api/conversations/{cid}/messages").json()["data"]["messages"][0]
    r = ws.session.post(
        f"/api/conversations/{cid}/reply", json={"canned": "refund", "reply_to": quoted["id"]}
    )
    assert r.status_code == 202, r.text
    assert r.json()["data"]["message"]["content"]["text"]["body"] == "Your refund is on its way."
    assert r.json()["data"]["message"]["content"]["context"] == {"message_id": quoted["wamid"]}
    r = ws.session.post(f"/api/conversations/{cid}/reply", json={"canned": "nope"})
    assert r.status_code == 422 and "canned" in r.text


def test_foreign_conversations_are_404(make_workspace: object) -> None:
    mine, theirs = make_workspace(), make_workspace()  # type: ignore[operator]
    _, conv = start_conversation(theirs)
    for method, path in [
        ("GET", ""),
        ("GET", "/messages"),
        ("GET", "/events"),
        ("POST", "/claim"),
        ("POST", "/read"),
        ("POST", "/notes"),
        ("PUT", "/status"),
        ("POST", "/labels"),
        ("POST", "/reply"),
        ("PUT", "/assignee"),
    ]:
        body = {
            "notes": {"body": "x"},
            "status": {"status": "resolved"},
            "labels": {"add": ["x"]},
            "reply": {"text": "x"},
            "assignee": {"assignee_id": None},
        }.get(path.strip("/"))
        r = mine.session.request(method, f"/api/conversations/{conv['id']}{path}", json=body)
        assert r.status_code == 404, (method, path, r.text)
    assert (
        theirs.session.get(f"/api/conversations/{conv['id']}/events").json()["data"]["total"] == 0
    )
