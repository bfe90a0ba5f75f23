"""Meta → us at /webhooks/whatsapp, over real HTTP: the handshake, signatures over the raw bytes,
events stored once, inbound messages, opt-out keywords and statuses in any order."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from aisoule.kit.signing import sign_sha256
from tests.conftest import Workspace

# Each sandbox account has an app secret of its own that is never shown; these tests play Meta, so
# they give the account one they know (PUT /api/accounts/{id}), as a user connecting an app does.
APP_SECRET = "inbound-tests-app-secret"
HOOK = "/webhooks/whatsapp"


# -- Meta's shapes (as aisoule/whatsapp/emulator/meta.py builds them) ---------------------------


def envelope(waba_id: str, field: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"value": value, "field": field}]}],
    }


def messages_value(account: dict[str, Any], **parts: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": account["phone_number"].lstrip("+"),
            "phone_number_id": account["phone_number_id"],
        },
        **parts,
    }


def new_wa_id() -> str:
    return "9198" + "".join(secrets.choice("0123456789") for _ in range(8))


def new_wamid() -> str:
    return "wamid.HBgM" + secrets.token_hex(16).upper()


def inbound(
    account: dict[str, Any],
    wa_id: str,
    text: str,
    *,
    name: str = "Priya Shah",
    wamid: str | None = None,
    ts: int | None = None,
) -> dict[str, Any]:
    msg = {
        "from": wa_id,
        "id": wamid or new_wamid(),
        "timestamp": str(ts or int(time.time())),
        "type": "text",
        "text": {"body": text},
    }
    contact = {"profile": {"name": name}, "wa_id": wa_id}
    return envelope(
        account["waba_id"], "messages", messages_value(account, contacts=[contact], messages=[msg])
    )


def status(
    account: dict[str, Any],
    wamid: str,
    wa_id: str,
    name: str,
    ts: int,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": wamid,
        "status": name,
        "timestamp": str(ts),
        "recipient_id": wa_id,
    }
    if errors is not None:
        item["errors"] = errors
    elif name in ("sent", "delivered"):
        item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "service"}
    value = messages_value(account, contacts=[{"wa_id": wa_id}], statuses=[item])
    return envelope(account["waba_id"], "messages", value)


# -- helpers ------------------------------------------------------------------------------------


def post_signed(
    client: httpx.Client, body: Any, secret: str = APP_SECRET, raw: bytes | None = None
) -> httpx.Response:
    raw = raw if raw is not None else orjson.dumps(body)
    return client.post(
        HOOK,
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_sha256(raw, secret),
        },
    )


def sandbox(ws: Workspace) -> dict[str, Any]:
    with ws.client() as api:
        r = api.get("/api/accounts")
    assert r.status_code == 200, r.text
    accounts = r.json()["data"]["accounts"]
    assert accounts, "a new workspace has a sandbox account"
    with ws.client() as api:
        put = api.put(f"/api/accounts/{accounts[0]['id']}", json={"app_secret": APP_SECRET})
    assert put.status_code == 200, put.text
    return dict(accounts[0])


def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def inbound_messages(api: httpx.Client, phone: str) -> list[dict[str, Any]]:
    r = api.get("/api/messages", params={"direction": "inbound", "contact": phone})
    assert r.status_code == 200, r.text
    return list(r.json()["data"]["messages"])


def contact_by_phone(api: httpx.Client, phone: str) -> dict[str, Any] | None:
    r = api.get("/api/contacts", params={"q": phone.lstrip("+"), "per_page": 100})
    assert r.status_code == 200, r.text
    return next((c for c in r.json()["data"]["contacts"] if c["phone_number"] == phone), None)


def send_text(api: httpx.Client, to: str, body: str = "Thanks, on its way") -> httpx.Response:
    return api.post("/api/messages/send", json={"to": to, "type": "text", "text": body})


def open_window(api: httpx.Client, anon: httpx.Client, account: dict[str, Any]) -> str:
    """A customer writes (signed inbound); returns their E.164 phone once it is recorded."""
    wa_id = new_wa_id()
    r = post_signed(anon, inbound(account, wa_id, "Hi, is my order shipped?"))
    assert r.status_code == 200, r.text
    phone = "+" + wa_id
    wait_for(lambda: inbound_messages(api, phone), what="the inbound message")
    return phone


def sent_with_wamid(api: httpx.Client, to: str) -> dict[str, Any]:
    r = send_text(api, to)
    assert r.status_code == 202, r.text
    mid = r.json()["data"]["message"]["id"]

    def check() -> dict[str, Any] | None:
        got = api.get(f"/api/messages/{mid}")
        assert got.status_code == 200, got.text
        message = got.json()["data"]["message"]
        return message if message["wamid"] else None

    return dict(wait_for(check, what="the message's wamid"))


# -- the handshake ------------------------------------------------------------------------------


def test_handshake_answers_the_challenge_for_the_server_token(anon: httpx.Client) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": "server-verify-token",
        "hub.challenge": "1158201444",
    }
    r = anon.get(HOOK, params=params)
    assert r.status_code == 200
    assert r.text == "1158201444"
    assert r.headers["content-type"].startswith("text/plain")


def test_handshake_refuses_a_wrong_token_or_mode(anon: httpx.Client) -> None:
    base = {"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "42"}
    assert anon.get(HOOK, params=base).status_code == 403
    wrong_mode = {**base, "hub.mode": "unsubscribe", "hub.verify_token": "server-verify-token"}
    assert anon.get(HOOK, params=wrong_mode).status_code == 403
    assert anon.get(HOOK).status_code == 403


def test_handshake_accepts_an_accounts_verify_token(ws: Workspace, anon: httpx.Client) -> None:
    account = sandbox(ws)
    token = "acct-" + secrets.token_hex(8)
    with ws.client() as api:
        r = api.put(f"/api/accounts/{account['id']}", json={"verify_token": token})
    assert r.status_code == 200, r.text
    params = {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "abc123"}
    r = anon.get(HOOK, params=params)
    assert r.status_code == 200 and r.text == "abc123"


# -- signatures ---------------------------------------------------------------------------------


def test_bad_signatures_are_refused_and_nothing_is_stored(
    ws: Workspace, anon: httpx.Client
) -> None:
    account = sandbox(ws)
    body = inbound(account, new_wa_id(), "hello")
    raw = orjson.dumps(body)
    forged = anon.post(
        HOOK,
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_sha256(raw, "not-the-app-secret"),
        },
    )
    assert forged.status_code == 401, forged.text
    assert forged.json()["status"] == "error"
    missing = anon.post(HOOK, content=raw, headers={"Content-Type": "application/json"})
    assert missing.status_code == 401
    malformed = anon.post(
        HOOK, content=raw, headers={"Content-Type": "application/json", "X-Hub-Signature-256": "x"}
    )
    assert malformed.status_code == 401
    # Same JSON, other bytes: the signature of the compact form does not cover the pretty one.
    pretty = json.dumps(body, indent=2).encode()
    assert pretty != raw
    reserialised = anon.post(
        HOOK,
        content=pretty,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_sha256(raw, APP_SECRET),
        },
    )
    assert reserialised.status_code == 401
    # Nothing of the above was stored: the genuine delivery is new.
    r = post_signed(anon, body, raw=raw)
    assert r.status_code == 200, r.text
    assert r.json() == {"received": 1, "new": 1, "unproven": 0}


def test_a_body_that_is_not_json_is_a_400(anon: httpx.Client) -> None:
    raw = b"this is not json"
    r = anon.post(
        HOOK,
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_sha256(raw, APP_SECRET),
        },
    )
    assert r.status_code == 400, r.text


# -- inbound messages ---------------------------------------------------------------------------


def test_inbound_text_creates_the_contact_and_message_and_opens_the_window(
    ws: Workspace, anon: httpx.Client
) -> None:
    account = sandbox(ws)
    wa_id = new_wa_id()
    phone = "+" + wa_id
    with ws.client() as api:
        # Before the customer writes, a free-form message is refused.
        r = send_text(api, phone)
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "outside_24h_window"
        r = post_signed(anon, inbound(account, wa_id, "Do you ship to Pune?", name="Priya Shah"))
        assert r.status_code == 200, r.text
        assert r.json() == {"received": 1, "new": 1, "unproven": 0}
        messages = wait_for(lambda: inbound_messages(api, phone), what="the inbound message")
        assert len(messages) == 1
        assert messages[0]["preview"] == "Do you ship to Pune?"
        assert messages[0]["from"] == phone
        contact = contact_by_phone(api, phone)
        assert contact is not None
        assert contact["name"] == "Priya Shah"
        r = send_text(api, phone)
        assert r.status_code == 202, r.text


def test_the_same_delivery_twice_is_stored_once(ws: Workspace, anon: httpx.Client) -> None:
    account = sandbox(ws)
    wa_id = new_wa_id()
    body = inbound(account, wa_id, "hello twice")
    first = post_signed(anon, body)
    second = post_signed(anon, body)
    assert first.json() == {"received": 1, "new": 1, "unproven": 0}
    assert second.status_code == 200
    assert second.json() == {"received": 1, "new": 0, "unproven": 0}
    with ws.client() as api:
        wait_for(lambda: inbound_messages(api, "+" + wa_id), what="the inbound message")
        time.sleep(0.5)
        assert len(inbound_messages(api, "+" + wa_id)) == 1


def test_stop_opts_the_contact_out_and_start_opts_back_in(
    ws: Workspace, anon: httpx.Client
) -> None:
    account = sandbox(ws)
    wa_id = new_wa_id()
    phone = "+" + wa_id
    now = int(time.time())
    with ws.client() as api:
        assert post_signed(anon, inbound(account, wa_id, "hi", ts=now - 2)).status_code == 200
        assert post_signed(anon, inbound(account, wa_id, "  Stop ", ts=now - 1)).status_code == 200
        wait_for(lambda: len(inbound_messages(api, phone)) == 2, what="both messages")

        def refused() -> bool:
            r = send_text(api, phone)
            return r.status_code == 422 and r.json()["code"] == "contact_opted_out"

        wait_for(refused, what="the opt-out")
        template = {
            "to": phone,
            "type": "template",
            "template": {"name": "order_update", "language": "en"},
        }
        r = api.post("/api/messages/send", json=template)
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "contact_opted_out"
        assert post_signed(anon, inbound(account, wa_id, "START", ts=now)).status_code == 200
        wait_for(lambda: send_text(api, phone).status_code == 202, what="the opt-in")


def test_non_english_stop_keyword(ws: Workspace, anon: httpx.Client) -> None:
    account = sandbox(ws)
    wa_id = new_wa_id()
    phone = "+" + wa_id
    with ws.client() as api:
        assert post_signed(anon, inbound(account, wa_id, "Arrêter")).status_code == 200

        def refused() -> bool:
            r = send_text(api, phone)
            return r.status_code == 422 and r.json()["code"] == "contact_opted_out"

        wait_for(refused, what="the opt-out")


# -- statuses -----------------------------------------------------------------------------------


def test_statuses_out_of_order_and_duplicated_end_at_read(
    ws: Workspace, anon: httpx.Client
) -> None:
    account = sandbox(ws)
    with ws.client() as api:
        phone = open_window(api, anon, account)
        message = sent_with_wamid(api, phone)
        wa_id = phone.lstrip("+")
        now = int(time.time())
        read = status(account, message["wamid"], wa_id, "read", now + 3)
        delivered = status(account, message["wamid"], wa_id, "delivered", now + 2)
        sent = status(account, message["wamid"], wa_id, "sent", now + 1)
        for body in (read, delivered, read, sent, delivered):
            assert post_signed(anon, body).status_code == 200

        def history() -> dict[str, Any] | None:
            got = api.get(f"/api/messages/{message['id']}").json()["data"]["message"]
            names = {s["status"] for s in got["statuses"]}
            return got if {"sent", "delivered", "read"} <= names else None

        got = wait_for(history, what="all three statuses")
        assert got["status"] == "read"
        names = [s["status"] for s in got["statuses"]]
        assert names.count("read") == 1 and names.count("delivered") == 1
        assert names.index("sent") < names.index("delivered") < names.index("read")


def test_a_failed_status_keeps_metas_error(ws: Workspace, anon: httpx.Client) -> None:
    account = sandbox(ws)
    with ws.client() as api:
        phone = open_window(api, anon, account)
        message = sent_with_wamid(api, phone)
        error = {
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
        }
        body = status(
            account, message["wamid"], phone.lstrip("+"), "failed", int(time.time()), [error]
        )
        assert post_signed(anon, body).status_code == 200

        def failed() -> dict[str, Any] | None:
            got = api.get(f"/api/messages/{message['id']}").json()["data"]["message"]
            return got if got["status"] == "failed" else None

        got = wait_for(failed, what="the failed status")
        assert got["error"]["code"] == 131026
        assert got["error"]["title"] == "Message undeliverable"
        assert got["error"]["details"] == "Message Undeliverable."
        assert "retryable" in got["error"]
        failed_event = next(s for s in got["statuses"] if s["status"] == "failed")
        assert failed_event["error"]["code"] == 131026


def test_a_status_that_overtakes_the_message_is_applied_when_it_exists(
    ws: Workspace, anon: httpx.Client
) -> None:
    """A status for an unknown wamid waits (stored, unprocessed) instead of being lost."""
    account = sandbox(ws)
    body = status(account, new_wamid(), new_wa_id(), "delivered", int(time.time()))
    r = post_signed(anon, body)
    assert r.status_code == 200 and r.json() == {"received": 1, "new": 1, "unproven": 0}
    assert post_signed(anon, body).json() == {"received": 1, "new": 0, "unproven": 0}


# -- anything else ------------------------------------------------------------------------------


def test_unknown_fields_and_types_are_stored_and_answered_200(
    ws: Workspace, anon: httpx.Client
) -> None:
    account = sandbox(ws)
    unknown_field = envelope(
        account["waba_id"], "account_alerts", {"entity_type": "WABA", "alert_info": {"x": 1}}
    )
    r = post_signed(anon, unknown_field)
    assert r.status_code == 200 and r.json() == {"received": 1, "new": 1, "unproven": 0}
    assert post_signed(anon, unknown_field).json() == {"received": 1, "new": 0, "unproven": 0}
    odd = {
        "object": "whatsapp_business_account",
        "entry": [{"id": account["waba_id"], "changes": "?"}],
    }
    r = post_signed(anon, odd)
    assert r.status_code == 200 and r.json()["received"] == 1
    unknown_type = inbound(account, new_wa_id(), "x")
    msg = unknown_type["entry"][0]["changes"][0]["value"]["messages"][0]
    msg["type"] = "hologram"
    msg.pop("text")
    msg["hologram"] = {"id": "h1"}
    r = post_signed(anon, unknown_type)
    assert r.status_code == 200 and r.json() == {"received": 1, "new": 1, "unproven": 0}
    template_update = envelope(
        account["waba_id"],
        "message_template_status_update",
        {
            "event": "APPROVED",
            "message_template_id": 123456789,
            "message_template_name": "order_update",
            "message_template_language": "en",
            "reason": "NONE",
        },
    )
    template_update["entry"][0]["time"] = int(time.time())
    r = post_signed(anon, template_update)
    assert r.status_code == 200 and r.json() == {"received": 1, "new": 1, "unproven": 0}
    # The server is still well: an inbound afterwards is applied.
    with ws.client() as api:
        open_window(api, anon, account)
