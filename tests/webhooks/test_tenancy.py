"""Webhook tenancy, over real HTTP on both databases: a delivery proves only the accounts whose own
app secret signed it, each event reaches only the account it names and that signed it, and a
delivery holding NUL is stored and applied without it (docs/security.md, "Webhook tenancy").

The attacker is workspace B: it knows its own account's app secret (it chose it) and the
emulator's shared one (anyone can read it), and signs what it likes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from aisoule.config import normalize_database_url
from tests.conftest import Workspace
from tests.servers import Server
from tests.webhooks.test_inbound import (
    HOOK,
    envelope,
    inbound,
    inbound_messages,
    messages_value,
    new_wa_id,
    new_wamid,
    post_signed,
    send_text,
    sent_with_wamid,
    status,
    wait_for,
)

SHARED_SANDBOX_SECRET = "emulator-app-secret"  # the emulator's default, in its source and config


def account_with_secret(ws: Workspace) -> tuple[dict[str, Any], str]:
    """The workspace's sandbox account, given an app secret only this test (as its owner) knows."""
    secret = "secret-" + secrets.token_hex(8)
    with ws.client() as api:
        account = api.get("/api/accounts").json()["data"]["accounts"][0]
        r = api.put(f"/api/accounts/{account['id']}", json={"app_secret": secret})
    assert r.status_code == 200, r.text
    return dict(account), secret


def entries(*bodies: dict[str, Any]) -> dict[str, Any]:
    """One delivery holding the entries of several (as Meta batches them)."""
    return {"object": "whatsapp_business_account", "entry": [e for b in bodies for e in b["entry"]]}


def template_update(waba_id: str, meta_id: str, event: str) -> dict[str, Any]:
    body = envelope(
        waba_id,
        "message_template_status_update",
        {
            "event": event,
            "message_template_id": int(meta_id),
            "message_template_name": "welcome_tenancy",
            "message_template_language": "en",
            "reason": "INCORRECT_CATEGORY",
        },
    )
    body["entry"][0]["time"] = int(time.time())
    return body


def a_template(api: httpx.Client) -> dict[str, Any]:
    r = api.post(
        "/api/templates",
        json={
            "name": "welcome_tenancy",
            "language": "en",
            "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Your order is on its way."}],
        },
    )
    assert r.status_code == 201, r.text
    tpl = dict(r.json()["data"]["template"])
    assert tpl["meta_id"], tpl
    return tpl


def template(api: httpx.Client, tpl_id: str) -> dict[str, Any]:
    return dict(api.get(f"/api/templates/{tpl_id}").json()["data"]["template"])


def message(api: httpx.Client, message_id: str) -> dict[str, Any]:
    return dict(api.get(f"/api/messages/{message_id}").json()["data"]["message"])


def customer_of(api: httpx.Client, anon: httpx.Client, account: dict[str, Any], secret: str) -> str:
    wa_id = new_wa_id()
    r = post_signed(anon, inbound(account, wa_id, "Hi, where is my order?"), secret)
    assert r.status_code == 200, r.text
    assert r.json()["new"] == 1
    wait_for(lambda: inbound_messages(api, "+" + wa_id), what="A's customer's message")
    return "+" + wa_id


def test_b_cannot_write_into_a_through_entries_naming_as_number(
    make_workspace: Any, anon: httpx.Client
) -> None:
    a, b = make_workspace(), make_workspace()
    acc_a, secret_a = account_with_secret(a)
    acc_b, secret_b = account_with_secret(b)
    with a.client() as api_a, b.client() as api_b:
        phone = customer_of(api_a, anon, acc_a, secret_a)
        sent = sent_with_wamid(api_a, phone)
        tpl = a_template(api_a)
        before_msg, before_tpl = message(api_a, sent["id"]), template(api_a, tpl["id"])

        # B signs, with its own secret, its own entry and entries naming A's number and WABA.
        b_customer = new_wa_id()
        now = int(time.time())
        wa_id = phone.lstrip("+")
        forged = entries(
            inbound(acc_b, b_customer, "hello from B's customer"),
            inbound(acc_a, wa_id, "STOP", ts=now),
            status(acc_a, sent["wamid"], wa_id, "failed", now, [{"code": 131026}]),
            status(acc_b, sent["wamid"], wa_id, "read", now),  # A's wamid on B's own number
            template_update(acc_a["waba_id"], tpl["meta_id"], "REJECTED"),
        )
        r = post_signed(anon, forged, secret_b)
        assert r.status_code == 200, r.text
        # B's own two events are stored (its inbound, and the status on its number, which waits
        # for a message of B's with that wamid); the three naming A are not.
        assert r.json() == {"received": 5, "new": 2, "unproven": 3}

        # B's own entry is applied: the delivery was processed.
        wait_for(lambda: inbound_messages(api_b, "+" + b_customer), what="B's own entry")
        # A's customer is not opted out, A's message and template are as they were.
        assert send_text(api_a, phone).status_code == 202
        after = message(api_a, sent["id"])
        assert (after["status"], after["statuses"]) == (
            before_msg["status"],
            before_msg["statuses"],
        )
        assert after["error"] is None
        got = template(api_a, tpl["id"])
        assert (got["status"], got["rejected_reason"]) == (
            before_tpl["status"],
            before_tpl["rejected_reason"],
        )
        # Nothing of A's reached B either.
        assert inbound_messages(api_b, phone) == []

        # The same entries signed with A's secret are A's: applied (the fix refuses B, not A).
        r = post_signed(anon, inbound(acc_a, wa_id, "STOP", ts=now + 1), secret_a)
        assert r.status_code == 200 and r.json()["new"] == 1

        def opted_out() -> bool:
            r = send_text(api_a, phone)
            return r.status_code == 422 and r.json()["code"] == "contact_opted_out"

        wait_for(opted_out, what="A's own STOP")


def test_a_template_update_on_bs_waba_does_not_reach_as_template(
    make_workspace: Any, anon: httpx.Client
) -> None:
    """Template updates are found by Meta's id within the proven account only."""
    a, b = make_workspace(), make_workspace()
    acc_b, secret_b = account_with_secret(b)
    with a.client() as api_a, b.client() as api_b:
        tpl = a_template(api_a)
        before = template(api_a, tpl["id"])
        b_customer = new_wa_id()
        body = template_update(acc_b["waba_id"], tpl["meta_id"], "REJECTED")
        # Only B's WABA is named: the same entry also carries a message to B's number (the
        # sign that the delivery was applied).
        control = inbound(acc_b, b_customer, "hi B")["entry"][0]["changes"][0]
        body["entry"][0]["changes"].append(control)
        r = post_signed(anon, body, secret_b)
        assert r.status_code == 200, r.text
        assert r.json() == {"received": 2, "new": 2, "unproven": 0}
        wait_for(lambda: inbound_messages(api_b, "+" + b_customer), what="B's delivery applied")
        got = template(api_a, tpl["id"])
        assert (got["status"], got["rejected_reason"]) == (
            before["status"],
            before["rejected_reason"],
        )


def test_the_shared_sandbox_secret_reaches_no_workspace(
    make_workspace: Any, anon: httpx.Client
) -> None:
    """All sandbox numbers once shared the emulator's app secret, which every user can read: now
    each has its own, and the shared one proves no account."""
    a = make_workspace()
    with a.client() as api_a:
        acc_a = api_a.get("/api/accounts").json()["data"]["accounts"][0]  # its secret untouched
        wa_id = new_wa_id()
        r = post_signed(anon, inbound(acc_a, wa_id, "STOP"), SHARED_SANDBOX_SECRET)
        assert r.status_code == 401, r.text
        forged = entries(
            inbound(acc_a, wa_id, "STOP"),
            template_update(acc_a["waba_id"], "1", "REJECTED"),
        )
        assert post_signed(anon, forged, SHARED_SANDBOX_SECRET).status_code == 401
        assert contact_count(api_a, "+" + wa_id) == 0


def contact_count(api: httpx.Client, phone: str) -> int:
    r = api.get("/api/contacts", params={"q": phone.lstrip("+")})
    assert r.status_code == 200, r.text
    return len([c for c in r.json()["data"]["contacts"] if c["phone_number"] == phone])


def test_a_delivery_holding_nul_is_stored_and_every_event_applied(
    server: Server, ws: Workspace, anon: httpx.Client
) -> None:
    """PostgreSQL's jsonb and text refuse NUL: the signed bytes are kept beside the event, the
    event is stored and applied without NUL, and the delivery's other events are applied too."""
    account, secret = account_with_secret(ws)
    nul_customer, plain_customer = new_wa_id(), new_wa_id()
    ts = str(int(time.time()))
    msgs = [
        {
            "from": nul_customer,
            "id": new_wamid() + "\u0000",
            "timestamp": ts,
            "type": "text",
            "text": {"body": "Order\u0000 #12 please"},
            "odd\u0000key": "x",
        },
        {
            "from": plain_customer,
            "id": new_wamid(),
            "timestamp": ts,
            "type": "text",
            "text": {"body": "Plain one"},
        },
    ]
    contacts = [
        {"profile": {"name": "Nu\u0000ll"}, "wa_id": nul_customer},
        {"profile": {"name": "Plain"}, "wa_id": plain_customer},
    ]
    body = envelope(
        account["waba_id"], "messages", messages_value(account, contacts=contacts, messages=msgs)
    )
    raw = orjson.dumps(body)
    assert b"\\u0000" in raw
    r = post_signed(anon, None, secret, raw=raw)
    assert r.status_code == 200, r.text
    assert r.json() == {"received": 2, "new": 2, "unproven": 0}
    # Meta's retry of the same bytes is a duplicate, not another 500.
    assert post_signed(anon, None, secret, raw=raw).json()["new"] == 0
    with ws.client() as api:
        got = wait_for(lambda: inbound_messages(api, "+" + nul_customer), what="the NUL message")
        assert got[0]["preview"] == "Order #12 please"
        wait_for(lambda: inbound_messages(api, "+" + plain_customer), what="the other message")
    kept = raw_events(server, account["id"])
    assert kept and all(row == raw for row in kept)


def raw_events(server: Server, account_id: str) -> list[bytes]:
    async def read() -> list[bytes]:
        engine = create_async_engine(normalize_database_url(server.database_url))
        try:
            async with engine.connect() as conn:
                result = await conn.execute(
                    text(
                        "SELECT raw FROM webhook_events WHERE raw IS NOT NULL "
                        "AND CAST(account_id AS TEXT) LIKE :a"
                    ),
                    {"a": "%" + account_id.replace("-", "%")},
                )
                return [bytes(r[0]) for r in result]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_unsigned_by_any_named_account_is_401_and_nothing_stored(
    ws: Workspace, anon: httpx.Client
) -> None:
    account, secret = account_with_secret(ws)
    body = inbound(account, new_wa_id(), "hello")
    assert post_signed(anon, body, "someone-elses-secret").status_code == 401
    assert anon.post(HOOK, content=orjson.dumps(body)).status_code == 401
    assert post_signed(anon, body, secret).json() == {"received": 1, "new": 1, "unproven": 0}


def test_a_delivery_naming_too_many_numbers_is_refused_before_any_lookup(
    make_workspace: Any, anon: httpx.Client
) -> None:
    """Before its signature proves anything, a delivery costs a lookup per number it names: one
    naming more than 100 is a 400, and with 100 or fewer the owner's own entry still applies."""
    ws = make_workspace()
    account, secret = account_with_secret(ws)
    wa_id = new_wa_id()
    strangers = [
        inbound(
            {**account, "phone_number_id": str(10**14 + n), "waba_id": str(2 * 10**14 + n)},
            new_wa_id(),
            "hi",
        )
        for n in range(100)
    ]
    r = post_signed(anon, entries(inbound(account, wa_id, "hello"), *strangers), secret)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "too_many_numbers"
    with ws.client() as api:
        assert contact_count(api, "+" + wa_id) == 0
        r = post_signed(anon, entries(inbound(account, wa_id, "hello"), *strangers[:99]), secret)
        assert r.status_code == 200, r.text
        wait_for(lambda: contact_count(api, "+" + wa_id) == 1, what="the owner's own entry")
