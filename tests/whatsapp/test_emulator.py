"""Our CloudAPIClient against the emulator subprocess, over real HTTP: Meta's formats and rules."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx
import pytest

from aisoule.kit.signing import verify_sha256
from aisoule.whatsapp.cloud.client import CloudAPIClient
from aisoule.whatsapp.provider import (
    ErrorClass,
    MetaAPIError,
    ProviderUnavailable,
    SendOutcomeUnknown,
)
from tests.servers import Server, free_port
from tests.whatsapp.conftest import APP_SECRET, PHONE_ID, TOKEN, WABA_ID, Emulator, Receiver

pytestmark = pytest.mark.anyio

CUSTOMER = "15551234567"


def text(to: str = CUSTOMER, body: str = "Hello") -> dict[str, Any]:
    return {"to": to, "type": "text", "text": {"body": body}}


def template_send(name: str, params: list[str], lang: str = "en_US") -> dict[str, Any]:
    components = [{"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}]
    return {
        "to": CUSTOMER,
        "type": "template",
        "template": {"name": name, "language": {"code": lang}, "components": components},
    }


async def approved_template(
    client: CloudAPIClient,
    name: str = "order_update",
    category: str = "UTILITY",
    waba_id: str = WABA_ID,
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "name": name,
        "language": "en_US",
        "category": category,
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Order news"},
            {
                "type": "BODY",
                "text": "Hi {{1}}, order {{2}} has shipped.",
                "example": {"body_text": [["Asha", "#1042"]]},
            },
        ],
        **extra,
    }
    created = await client.create_template(waba_id, body)
    assert created["status"] == "PENDING" and created["category"] == category
    for _ in range(100):
        rows = await client.list_templates(waba_id, name=name)
        if rows and rows[0]["status"] != "PENDING":
            break
        await asyncio.sleep(0.05)
    assert rows[0]["status"] == "APPROVED"
    return rows[0]


async def own_templates(client: CloudAPIClient, waba_id: str) -> list[dict[str, Any]]:
    """A WABA's templates but Meta's ``hello_world`` sample, which every WABA has."""
    return [t for t in await client.list_templates(waba_id) if t["name"] != "hello_world"]


async def expect_error(coro: Any, code: int, cls: ErrorClass, status: int = 400) -> MetaAPIError:
    with pytest.raises(MetaAPIError) as info:
        await coro
    err = info.value
    assert (err.code, err.classification, err.http_status) == (code, cls, status), err
    assert err.fbtrace_id and err.message
    return err


async def test_text_send_answers_metas_success_json(
    emulator: Emulator, client: CloudAPIClient
) -> None:
    emulator.inbound(**{"from": CUSTOMER, "text": "hi"})
    sent = await client.send_message(PHONE_ID, text(to="+1 555-123-4567"))
    assert sent.message_id.startswith("wamid.")
    assert (sent.input, sent.wa_id) == ("+1 555-123-4567", CUSTOMER)
    # The exact shape, read without our client.
    async with httpx.AsyncClient() as raw:
        r = await raw.post(
            f"{emulator.url}/v23.0/{PHONE_ID}/messages",
            headers={"Authorization": f"Bearer {TOKEN}"},
            json={"messaging_product": "whatsapp", **text()},
        )
    body = r.json()
    assert r.status_code == 200
    assert set(body) == {"messaging_product", "contacts", "messages"}
    assert body["contacts"] == [{"input": CUSTOMER, "wa_id": CUSTOMER}]
    assert list(body["messages"][0]) == ["id"]
    assert [m["type"] for m in emulator.sent(CUSTOMER)] == ["text", "text"]


async def test_other_message_types(emulator: Emulator, client: CloudAPIClient) -> None:
    inbound = emulator.inbound(**{"from": CUSTOMER, "text": "hi"})["message"]
    payloads: list[dict[str, Any]] = [
        {"type": "image", "image": {"link": "https://example.com/a.jpg", "caption": "A"}},
        {
            "type": "document",
            "document": {"link": "https://example.com/a.pdf", "filename": "a.pdf"},
        },
        {"type": "audio", "audio": {"link": "https://example.com/a.ogg"}},
        {"type": "video", "video": {"link": "https://example.com/a.mp4"}},
        {
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "Pick one"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "y", "title": "Yes"}}]},
            },
        },
        {
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "Menu"},
                "action": {
                    "button": "Choose",
                    "sections": [{"title": "S", "rows": [{"id": "r1", "title": "Row 1"}]}],
                },
            },
        },
        {"type": "reaction", "reaction": {"message_id": inbound["id"], "emoji": "👍"}},
    ]
    for p in payloads:
        sent = await client.send_message(PHONE_ID, {"to": CUSTOMER, **p})
        assert sent.message_id.startswith("wamid.")
    assert await client.mark_read(PHONE_ID, inbound["id"]) is True
    bad = {
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "Too many"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": str(i), "title": "B"}} for i in range(4)
                ]
            },
        },
    }
    # Meta's answer to a value beyond its documented limits is 131009, not 100.
    err = await expect_error(
        client.send_message(PHONE_ID, {"to": CUSTOMER, **bad}), 131009, ErrorClass.permanent
    )
    assert "buttons" in (err.details or "")
    await expect_error(client.mark_read(PHONE_ID, "wamid.nope"), 100, ErrorClass.permanent)


async def test_template_send_positional_and_named(
    emulator: Emulator, client: CloudAPIClient
) -> None:
    await approved_template(client)
    sent = await client.send_message(PHONE_ID, template_send("order_update", ["Asha", "#1042"]))
    assert sent.message_status == "accepted"
    named = {
        "name": "welcome_named",
        "language": "en_US",
        "category": "MARKETING",
        "parameter_format": "NAMED",
        "components": [
            {
                "type": "BODY",
                "text": "Welcome {{first_name}}!",
                "example": {
                    "body_text_named_params": [{"param_name": "first_name", "example": "A"}]
                },
            }
        ],
    }
    await client.create_template(WABA_ID, named)
    await asyncio.sleep(0.5)
    send = {
        "to": CUSTOMER,
        "type": "template",
        "template": {
            "name": "welcome_named",
            "language": {"code": "en_US"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "parameter_name": "first_name", "text": "Asha"}
                    ],
                }
            ],
        },
    }
    assert (await client.send_message(PHONE_ID, send)).message_id
    send["template"]["components"][0]["parameters"][0]["parameter_name"] = "name"
    await expect_error(client.send_message(PHONE_ID, send), 132000, ErrorClass.permanent)


async def test_template_errors(emulator: Emulator, client: CloudAPIClient) -> None:
    await approved_template(client)
    await expect_error(
        client.send_message(PHONE_ID, template_send("order_update", ["Asha"])),
        132000,
        ErrorClass.permanent,
    )
    await expect_error(
        client.send_message(PHONE_ID, template_send("no_such_template", [])),
        132001,
        ErrorClass.permanent,
        404,
    )
    await expect_error(
        client.send_message(PHONE_ID, template_send("order_update", ["A", "B"], lang="de")),
        132001,
        ErrorClass.permanent,
        404,
    )


async def test_bad_token_is_190(emulator: Emulator, client: CloudAPIClient) -> None:
    await expect_error(
        client.send_message(PHONE_ID, text(), access_token="wrong"), 190, ErrorClass.account, 401
    )
    anonymous = CloudAPIClient(base_url=emulator.url)
    try:
        await expect_error(anonymous.get_phone_number(PHONE_ID), 190, ErrorClass.account, 401)
    finally:
        await anonymous.close()


async def test_throughput_is_130429(emulator: Emulator, client: CloudAPIClient) -> None:
    emulator.configure(throughput_per_second=3, async_failures=True)
    for n in range(3):
        await client.send_message(PHONE_ID, text(to=f"1555000000{n}"))
    err = await expect_error(
        client.send_message(PHONE_ID, text(to="15550000009")), 130429, ErrorClass.retryable
    )
    assert err.retryable
    await asyncio.sleep(1.05)
    await client.send_message(PHONE_ID, text(to="15550000009"))


async def test_pair_rate_is_131056(emulator: Emulator, client: CloudAPIClient) -> None:
    emulator.configure(pair_burst=2, pair_period_seconds=60)
    emulator.inbound(**{"from": CUSTOMER, "text": "hi"})
    await client.send_message(PHONE_ID, text())
    await client.send_message(PHONE_ID, text())
    await expect_error(client.send_message(PHONE_ID, text()), 131056, ErrorClass.retryable)
    await client.send_message(PHONE_ID, text(to="15557654321"))  # another recipient is fine


async def test_sync_failures(emulator: Emulator, client: CloudAPIClient) -> None:
    emulator.configure(async_failures=False, not_on_whatsapp="15559990000")
    await expect_error(client.send_message(PHONE_ID, text()), 131047, ErrorClass.permanent)
    emulator.inbound(**{"from": "15559990000", "text": "hi"})
    await expect_error(
        client.send_message(PHONE_ID, text(to="15559990000")), 131026, ErrorClass.permanent
    )
    await expect_error(
        client.send_message(PHONE_ID, {"to": CUSTOMER, "type": "text", "text": {}}),
        100,
        ErrorClass.permanent,
    )
    await expect_error(
        client.send_message("999", text()), 100, ErrorClass.permanent
    )  # an unknown phone number id


@pytest.mark.parametrize(
    ("code", "cls", "status"),
    [
        (131000, ErrorClass.retryable, 500),
        (80007, ErrorClass.retryable, 400),
        (131031, ErrorClass.account, 403),
        (368, ErrorClass.account, 403),
    ],
)
async def test_injected_failures(
    emulator: Emulator, client: CloudAPIClient, code: int, cls: ErrorClass, status: int
) -> None:
    emulator.inbound(**{"from": CUSTOMER, "text": "hi"})
    with emulator.control() as c:
        assert c.post("/_emulator/fail", json={"code": code, "count": 1}).status_code == 200
    await expect_error(client.send_message(PHONE_ID, text()), code, cls, status)
    assert (await client.send_message(PHONE_ID, text())).message_id  # only the next one fails


async def test_inbound_opens_the_window(
    emulator: Emulator, client: CloudAPIClient, receiver: Receiver
) -> None:
    emulator.configure(async_failures=False)
    await expect_error(client.send_message(PHONE_ID, text()), 131047, ErrorClass.permanent)
    hook = emulator.inbound(**{"from": CUSTOMER, "name": "Asha", "text": "Where is my order?"})
    assert (await client.send_message(PHONE_ID, text())).message_id
    emulator.configure(window_seconds=0)  # the window closes
    await expect_error(client.send_message(PHONE_ID, text()), 131047, ErrorClass.permanent)
    got = receiver.wait(
        lambda hs: any("messages" in h.json["entry"][0]["changes"][0]["value"] for h in hs)
    )
    value = next(
        h.json["entry"][0]["changes"][0]["value"]
        for h in got
        if "messages" in h.json["entry"][0]["changes"][0]["value"]
    )
    assert value["contacts"][0]["profile"] == {"name": "Asha"}
    assert value["contacts"][0]["wa_id"] == CUSTOMER
    assert value["contacts"][0]["user_id"].startswith("US.")  # a business-scoped user id
    assert value["messages"][0]["text"] == {"body": "Where is my order?"}
    assert value["messages"][0]["id"] == hook["message"]["id"]
    assert value["metadata"]["phone_number_id"] == PHONE_ID


async def test_failures_arrive_as_failed_statuses(
    emulator: Emulator, client: CloudAPIClient, receiver: Receiver
) -> None:
    """Meta's default: 131047 / 131026 / 131050 are accepted, then reported by webhook."""
    emulator.configure(not_on_whatsapp="15559990000")
    outside = await client.send_message(PHONE_ID, text())
    emulator.inbound(**{"from": "15559990000", "text": "hi"})
    gone = await client.send_message(PHONE_ID, text(to="15559990000"))
    await approved_template(client, name="promo", category="MARKETING")
    emulator.inbound(**{"from": CUSTOMER, "text": "STOP"})
    stopped = await client.send_message(PHONE_ID, template_send("promo", ["A", "B"]))
    receiver.wait(lambda hs: len([s for s in receiver.statuses() if s["status"] == "failed"]) >= 3)
    failed = {s["id"]: s for s in receiver.statuses() if s["status"] == "failed"}
    assert failed[outside.message_id]["errors"][0]["code"] == 131047
    assert failed[gone.message_id]["errors"][0]["code"] == 131026
    assert failed[stopped.message_id]["errors"][0]["code"] == 131050
    assert failed[gone.message_id]["errors"][0]["error_data"]["details"]


async def test_status_webhooks_are_signed_and_ordered(
    emulator: Emulator, client: CloudAPIClient, receiver: Receiver
) -> None:
    emulator.inbound(**{"from": CUSTOMER, "text": "hi"})
    sent = await client.send_message(PHONE_ID, text())
    receiver.wait(lambda hs: len(receiver.statuses()) >= 3)
    for h in receiver.hooks:
        assert verify_sha256(h.raw, h.headers["x-hub-signature-256"], APP_SECRET)
        assert not verify_sha256(h.raw + b" ", h.headers["x-hub-signature-256"], APP_SECRET)
        assert h.json["object"] == "whatsapp_business_account"
        assert h.json["entry"][0]["id"] == WABA_ID
        assert h.json["entry"][0]["changes"][0]["field"] == "messages"
    statuses = [s for s in receiver.statuses() if s["id"] == sent.message_id]
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]
    assert all(s["recipient_id"] == CUSTOMER and s["timestamp"].isdigit() for s in statuses)


async def test_statuses_stay_in_order_however_close(
    emulator: Emulator, client: CloudAPIClient, receiver: Receiver
) -> None:
    """No latency between statuses at all (what a starved CPU turns 20 ms into): each
    message's ``sent``, ``delivered``, ``read`` still arrive in that order, because one
    conversation's webhooks are posted one after another, not raced by timers."""
    emulator.configure(webhook_latency_ms=0)
    customers = [f"1555123{n:04d}" for n in range(12)]
    for c in customers:
        emulator.inbound(**{"from": c, "text": "hi"})
    sent = [await client.send_message(PHONE_ID, text(to=c)) for c in customers]
    receiver.wait(lambda hs: len(receiver.statuses()) >= 3 * len(sent), timeout=15)
    for s in sent:
        order = [x["status"] for x in receiver.statuses() if x["id"] == s.message_id]
        assert order == ["sent", "delivered", "read"], (s.message_id, order)
    # Each conversation's inbound message came before its statuses, too.
    for c in customers:
        kinds = [
            "messages" if "messages" in v else "statuses"
            for h in receiver.hooks
            for v in [h.json["entry"][0]["changes"][0]["value"]]
            if v["contacts"][0]["wa_id"] == c
        ]
        assert kinds == ["messages", "statuses", "statuses", "statuses"], (c, kinds)


async def test_duplicates_and_out_of_order(
    emulator: Emulator, client: CloudAPIClient, receiver: Receiver
) -> None:
    emulator.configure(webhook_duplicates=True, webhook_out_of_order=True, webhook_latency_ms=60)
    emulator.inbound(**{"from": CUSTOMER, "text": "hi"})
    sent = await client.send_message(PHONE_ID, text())
    receiver.wait(
        lambda hs: len([s for s in receiver.statuses() if s["id"] == sent.message_id]) >= 6
    )
    order = [s["status"] for s in receiver.statuses() if s["id"] == sent.message_id]
    assert sorted(order) == ["delivered", "delivered", "read", "read", "sent", "sent"]
    assert order.index("read") < order.index("delivered") < order.index("sent")
    inbound = [h for h in receiver.hooks if "messages" in h.json["entry"][0]["changes"][0]["value"]]
    assert len(inbound) == 2 and inbound[0].raw == inbound[1].raw


async def test_template_lifecycle(
    emulator: Emulator, client: CloudAPIClient, receiver: Receiver
) -> None:
    tpl = await approved_template(client)
    assert tpl["language"] == "en_US" and tpl["category"] == "UTILITY" and tpl["id"]
    await expect_error(
        client.create_template(
            WABA_ID,
            {
                "name": "order_update",
                "language": "en_US",
                "category": "UTILITY",
                "components": [{"type": "BODY", "text": "x"}],
            },
        ),
        100,
        ErrorClass.permanent,
    )
    await client.create_template(
        WABA_ID,
        {
            "name": "no_example",
            "language": "en_US",
            "category": "MARKETING",
            "components": [{"type": "BODY", "text": "Hi {{1}}"}],
        },
    )
    await asyncio.sleep(0.6)
    assert (await client.list_templates(WABA_ID, name="no_example"))[0]["status"] == "REJECTED"
    await expect_error(
        client.send_message(PHONE_ID, template_send("no_example", ["A"])),
        132001,
        ErrorClass.permanent,
        404,
    )
    for n in range(3):
        await client.create_template(
            WABA_ID,
            {
                "name": f"bulk_{n}",
                "language": "en_US",
                "category": "UTILITY",
                "components": [{"type": "BODY", "text": "Plain"}],
            },
        )
    names = {t["name"] for t in await client.list_templates(WABA_ID, limit=2)}
    assert names == {"hello_world", "order_update", "no_example", "bulk_0", "bulk_1", "bulk_2"}
    assert await client.delete_template(WABA_ID, "order_update") is True
    assert await client.list_templates(WABA_ID, name="order_update") == []
    await expect_error(client.delete_template(WABA_ID, "order_update"), 100, ErrorClass.permanent)
    receiver.wait(
        lambda hs: any(
            h.json["entry"][0]["changes"][0]["field"] == "message_template_status_update"
            for h in hs
        )
    )
    events = [
        h.json["entry"][0]["changes"][0]["value"]
        for h in receiver.hooks
        if h.json["entry"][0]["changes"][0]["field"] == "message_template_status_update"
    ]
    assert {"APPROVED", "REJECTED"} <= {e["event"] for e in events}


async def test_media_upload(emulator: Emulator, client: CloudAPIClient) -> None:
    media_id = await client.upload_media(PHONE_ID, b"\x89PNG fake", "image/png", "a.png")
    assert media_id.isdigit()
    emulator.inbound(**{"from": CUSTOMER, "text": "hi"})
    sent = await client.send_message(
        PHONE_ID, {"to": CUSTOMER, "type": "image", "image": {"id": media_id}}
    )
    assert sent.message_id.startswith("wamid.")


async def test_phone_number(emulator: Emulator, client: CloudAPIClient) -> None:
    node = await client.get_phone_number(PHONE_ID)
    assert node["id"] == PHONE_ID
    assert node["display_phone_number"] == "+1 555-078-3881"
    assert node["verified_name"] and node["quality_rating"] == "GREEN"


async def test_timeout_after_send_is_outcome_unknown(emulator: Emulator) -> None:
    emulator.configure(api_latency_ms=1500)
    emulator.inbound(**{"from": CUSTOMER, "text": "hi"})
    slow = CloudAPIClient(access_token=TOKEN, base_url=emulator.url, read_timeout=0.3)
    try:
        with pytest.raises(SendOutcomeUnknown):
            await slow.send_message(PHONE_ID, text(body="did it go?"))
    finally:
        await slow.close()
    # It did go: exactly why the caller must not resend blindly.
    assert [m["payload"]["text"]["body"] for m in emulator.sent(CUSTOMER)] == ["did it go?"]


async def test_nothing_listening_is_provider_unavailable() -> None:
    down = CloudAPIClient(access_token=TOKEN, base_url=f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(ProviderUnavailable):
            await down.send_message(PHONE_ID, text())
    finally:
        await down.close()


# -- many business numbers ------------------------------------------------------------------

PHONE_2 = "106540352249999"
WABA_2 = "102290129349999"


def register(emulator: Emulator, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    with emulator.control() as c:
        r = c.post("/_emulator/numbers", json=body)
    assert r.status_code == status, r.text
    return dict(r.json())


def second_number(emulator: Emulator) -> dict[str, Any]:
    return register(
        emulator,
        {
            "phone_number_id": PHONE_2,
            "waba_id": WABA_2,
            "display_phone_number": "+15550009999",
            "verified_name": "Second Shop",
        },
    )


def hook_values(receiver: Receiver, key: str) -> list[tuple[str, dict[str, Any]]]:
    """(entry id, value) of every received ``messages`` webhook carrying ``key``."""
    out = []
    for h in receiver.hooks:
        entry = h.json["entry"][0]
        value = entry["changes"][0]["value"]
        if key in value:
            out.append((entry["id"], value))
    return out


async def test_register_numbers(emulator: Emulator, client: CloudAPIClient) -> None:
    generated = register(emulator, {})
    assert set(generated) == {
        "phone_number_id",
        "waba_id",
        "display_phone_number",
        "verified_name",
        "quality_rating",
    }
    for key in ("phone_number_id", "waba_id"):
        assert generated[key].isdigit() and len(generated[key]) == 15
    assert generated["display_phone_number"].startswith("1555")
    assert len(generated["display_phone_number"]) == 11
    assert generated["display_phone_number"].isdigit()
    assert generated["verified_name"] == "aisoule sandbox"
    assert generated["quality_rating"] == "GREEN"
    assert generated["waba_id"] != WABA_ID
    second = second_number(emulator)
    assert second == {
        "phone_number_id": PHONE_2,
        "waba_id": WABA_2,
        "display_phone_number": "15550009999",
        "verified_name": "Second Shop",
        "quality_rating": "GREEN",
    }
    # Idempotent: the same phone_number_id answers the number as it is, whatever else is sent.
    again = register(emulator, {"phone_number_id": PHONE_2, "verified_name": "Other"}, 200)
    assert again == second
    assert register(emulator, {"phone_number_id": PHONE_ID}, 200)["waba_id"] == WABA_ID
    with emulator.control() as c:
        listed = c.get("/_emulator/numbers").json()["data"]
        for bad in (
            {"phone_number_id": "abc"},
            {"waba_id": 12},
            {"display_phone_number": "12"},
            {"verified_name": ""},
            {"colour": "blue"},
            {"waba_id": PHONE_2},  # a phone number id cannot also be a WABA id
            {"phone_number_id": WABA_2},
        ):
            r = c.post("/_emulator/numbers", json=bad)
            assert r.status_code == 422 and r.json()["error"], (bad, r.text)
        assert c.post("/_emulator/numbers", json=[1]).status_code == 422
    assert {n["phone_number_id"] for n in listed} == {
        PHONE_ID,
        PHONE_2,
        generated["phone_number_id"],
    }
    node = await client.get_phone_number(PHONE_2)
    assert node["id"] == PHONE_2 and node["verified_name"] == "Second Shop"
    assert node["display_phone_number"] == "+1 555-000-9999"
    assert (await client.get_phone_number(PHONE_ID))["display_phone_number"] == "+1 555-078-3881"
    with emulator.control() as c:
        c.post("/_emulator/reset").raise_for_status()
        after = c.get("/_emulator/numbers").json()["data"]
    assert [n["phone_number_id"] for n in after] == [PHONE_ID]  # the settings' number stays
    await expect_error(client.get_phone_number(PHONE_2), 100, ErrorClass.permanent)


async def test_send_from_a_second_number(
    emulator: Emulator, client: CloudAPIClient, receiver: Receiver
) -> None:
    second_number(emulator)
    emulator.configure(async_failures=False)
    hook = emulator.inbound(**{"from": CUSTOMER, "text": "hi", "phone_number_id": PHONE_2})
    assert hook["webhook"]["entry"][0]["id"] == WABA_2
    # The window is the second number's only: the first cannot write free-form to the customer.
    await expect_error(client.send_message(PHONE_ID, text()), 131047, ErrorClass.permanent)
    sent = await client.send_message(PHONE_2, text())
    assert [(m["id"], m["phone_number_id"]) for m in emulator.sent(CUSTOMER)] == [
        (sent.message_id, PHONE_2)
    ]
    # Marking read goes through the number the message was sent to.
    inbound_id = hook["message"]["id"]
    await expect_error(client.mark_read(PHONE_ID, inbound_id), 100, ErrorClass.permanent)
    assert await client.mark_read(PHONE_2, inbound_id) is True
    media_id = await client.upload_media(PHONE_2, b"\x89PNG fake", "image/png", "a.png")
    assert media_id.isdigit()
    receiver.wait(lambda hs: len(receiver.statuses()) >= 3 and hook_values(receiver, "messages"))
    statuses = hook_values(receiver, "statuses")
    # One conversation's webhooks are posted one after another: in order, whatever the load.
    assert [v["statuses"][0]["status"] for _, v in statuses] == ["sent", "delivered", "read"]
    for waba, value in statuses:
        assert waba == WABA_2
        assert value["metadata"] == {
            "display_phone_number": "15550009999",
            "phone_number_id": PHONE_2,
        }
        assert value["statuses"][0]["id"] == sent.message_id
    [(waba, value)] = hook_values(receiver, "messages")
    assert waba == WABA_2 and value["metadata"]["phone_number_id"] == PHONE_2
    assert value["messages"][0]["id"] == inbound_id
    # A button reply to the second number quotes what the second number sent.
    reply = emulator.inbound(
        **{
            "from": CUSTOMER,
            "type": "button_reply",
            "button_reply": {"id": "y", "title": "Yes"},
            "phone_number_id": PHONE_2,
        }
    )["message"]
    assert reply["context"] == {"from": "15550009999", "id": sent.message_id}
    # A STOP to the second number opts out of its marketing only.
    await approved_template(client, name="promo", category="MARKETING", waba_id=WABA_2)
    await approved_template(client, name="promo", category="MARKETING")
    emulator.inbound(**{"from": CUSTOMER, "text": "STOP", "phone_number_id": PHONE_2})
    promo = template_send("promo", ["A", "B"])
    await expect_error(client.send_message(PHONE_2, promo), 131050, ErrorClass.permanent)
    assert (await client.send_message(PHONE_ID, promo)).message_id
    with emulator.control() as c:
        r = c.post("/_emulator/inbound", json={"from": CUSTOMER, "phone_number_id": "999"})
    assert r.status_code == 422 and r.json()["error"]


async def test_templates_belong_to_their_waba(
    emulator: Emulator, client: CloudAPIClient, receiver: Receiver
) -> None:
    second_number(emulator)
    first = await approved_template(client)
    # The same name and language in another WABA is another template.
    other = await approved_template(client, waba_id=WABA_2)
    assert first["id"] != other["id"]
    await approved_template(client, name="second_only", waba_id=WABA_2)
    assert [t["id"] for t in await own_templates(client, WABA_ID)] == [first["id"]]
    assert {t["name"] for t in await client.list_templates(WABA_2)} == {
        "hello_world",  # every WABA has its own
        "order_update",
        "second_only",
    }
    # A number sends its own WABA's templates only.
    emulator.inbound(**{"from": CUSTOMER, "text": "hi"})
    await expect_error(
        client.send_message(PHONE_ID, template_send("second_only", ["A", "B"])),
        132001,
        ErrorClass.permanent,
        404,
    )
    assert (await client.send_message(PHONE_2, template_send("second_only", ["A", "B"]))).message_id
    # Deleting in one WABA never touches the other.
    assert await client.delete_template(WABA_2, "order_update") is True
    assert [t["id"] for t in await own_templates(client, WABA_ID)] == [first["id"]]
    assert [t["name"] for t in await own_templates(client, WABA_2)] == ["second_only"]
    await expect_error(client.delete_template(WABA_ID, "second_only"), 100, ErrorClass.permanent)
    # Template status webhooks come from the template's WABA.
    receiver.wait(
        lambda hs: (
            len(
                [
                    h
                    for h in hs
                    if h.json["entry"][0]["changes"][0]["field"] == "message_template_status_update"
                ]
            )
            >= 3
        )
    )
    by_template = {
        str(h.json["entry"][0]["changes"][0]["value"]["message_template_id"]): h.json["entry"][0][
            "id"
        ]
        for h in receiver.hooks
        if h.json["entry"][0]["changes"][0]["field"] == "message_template_status_update"
    }
    assert by_template[first["id"]] == WABA_ID
    assert by_template[other["id"]] == WABA_2


async def test_unknown_ids_are_code_100(emulator: Emulator, client: CloudAPIClient) -> None:
    second_number(emulator)
    emulator.inbound(**{"from": CUSTOMER, "text": "hi"})
    for unknown in ("999", WABA_2):  # a WABA id is not a phone number
        err = await expect_error(client.send_message(unknown, text()), 100, ErrorClass.permanent)
        assert err.error_subcode == 33
        await expect_error(client.get_phone_number(unknown), 100, ErrorClass.permanent)
        await expect_error(
            client.upload_media(unknown, b"x", "image/png", "a.png"), 100, ErrorClass.permanent
        )
    for unknown in ("999", PHONE_2):  # a phone number id is not a WABA
        err = await expect_error(client.list_templates(unknown), 100, ErrorClass.permanent)
        assert err.error_subcode == 33
        await expect_error(client.delete_template(unknown, "x"), 100, ErrorClass.permanent)


# -- Meta's answers, divergence by divergence (issue 8, item 7) -----------------------------


def graph(emulator: Emulator) -> httpx.Client:
    """A raw Graph client: the exact bytes and statuses, without our client's parsing."""
    return httpx.Client(
        base_url=emulator.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )


def assert_meta_error(r: httpx.Response, code: int, status: int = 400) -> dict[str, Any]:
    """Meta's error JSON: message, type, code, fbtrace_id (and error_data for WhatsApp codes)."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    assert err["type"] == "OAuthException"
    assert err["fbtrace_id"]
    if "error_data" in err:
        assert err["error_data"]["messaging_product"] == "whatsapp"
        assert err["error_data"]["details"]
    return dict(err)


def force_status(emulator: Emulator, template_id: str, status: str) -> None:
    with emulator.control() as c:
        r = c.post(f"/_emulator/templates/{template_id}/status", json={"status": status})
    assert r.status_code == 200, r.text


def template_events(receiver: Receiver, event: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(entry, value) of every template status webhook received with ``event``."""
    out = []
    for h in receiver.hooks:
        entry = h.json["entry"][0]
        change = entry["changes"][0]
        if (
            change["field"] == "message_template_status_update"
            and change["value"]["event"] == event
        ):
            out.append((entry, change["value"]))
    return out


async def test_paused_and_disabled_templates_answer_132015_and_132016(
    emulator: Emulator, client: CloudAPIClient
) -> None:
    tpl = await approved_template(client)
    send = template_send("order_update", ["Asha", "#1042"])
    force_status(emulator, tpl["id"], "PAUSED")
    err = await expect_error(client.send_message(PHONE_ID, send), 132015, ErrorClass.permanent)
    assert "Paused" in err.message
    force_status(emulator, tpl["id"], "DISABLED")
    err = await expect_error(client.send_message(PHONE_ID, send), 132016, ErrorClass.permanent)
    assert "Disabled" in err.message
    force_status(emulator, tpl["id"], "REJECTED")  # never approved: "does not exist", 404
    await expect_error(client.send_message(PHONE_ID, send), 132001, ErrorClass.permanent, 404)
    force_status(emulator, tpl["id"], "APPROVED")
    assert (await client.send_message(PHONE_ID, send)).message_status == "accepted"
    assert [m["type"] for m in emulator.sent(CUSTOMER)] == ["template"]  # nothing else went


async def test_values_beyond_metas_limits_are_131009(
    emulator: Emulator, client: CloudAPIClient
) -> None:
    emulator.inbound(**{"from": CUSTOMER, "text": "hi"})

    def buttons(*titles: str) -> dict[str, Any]:
        return {
            "to": CUSTOMER,
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "Pick one"},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": f"b{i}", "title": t}}
                        for i, t in enumerate(titles)
                    ]
                },
            },
        }

    def rows(n: int, title: str = "Row") -> dict[str, Any]:
        return {
            "to": CUSTOMER,
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "Menu"},
                "action": {
                    "button": "Choose",
                    "sections": [
                        {"title": "S", "rows": [{"id": f"r{i}", "title": title} for i in range(n)]}
                    ],
                },
            },
        }

    too_long_title = buttons("x" * 21)
    for bad, word in (
        (buttons("A", "B", "C", "D"), "buttons"),
        (too_long_title, "title"),
        (rows(11), "rows"),
        (rows(1, "y" * 25), "title"),
    ):
        err = await expect_error(client.send_message(PHONE_ID, bad), 131009, ErrorClass.permanent)
        assert word in (err.details or "").lower(), err.details
    # At the limits exactly, Meta sends them.
    assert (await client.send_message(PHONE_ID, buttons("A", "B", "x" * 20))).message_id
    assert (await client.send_message(PHONE_ID, rows(10, "y" * 24))).message_id
    assert len(emulator.sent(CUSTOMER)) == 2


async def test_contacts_catalog_and_product_messages_are_accepted(
    emulator: Emulator, client: CloudAPIClient
) -> None:
    emulator.inbound(**{"from": CUSTOMER, "text": "hi"})
    payloads: list[dict[str, Any]] = [
        {
            "type": "contacts",
            "contacts": [
                {
                    "name": {"formatted_name": "Asha Rao", "first_name": "Asha"},
                    "phones": [{"phone": "+15551234567", "type": "WORK", "wa_id": CUSTOMER}],
                }
            ],
        },
        {
            "type": "interactive",
            "interactive": {
                "type": "catalog_message",
                "body": {"text": "Browse our catalog"},
                "action": {
                    "name": "catalog_message",
                    "parameters": {"thumbnail_product_retailer_id": "sku-1"},
                },
            },
        },
        {
            "type": "interactive",
            "interactive": {
                "type": "product",
                "body": {"text": "This one"},
                "action": {"catalog_id": "194836987003835", "product_retailer_id": "sku-1"},
            },
        },
        {
            "type": "interactive",
            "interactive": {
                "type": "product_list",
                "header": {"type": "text", "text": "Our picks"},
                "body": {"text": "Have a look"},
                "action": {
                    "catalog_id": "194836987003835",
                    "sections": [
                        {
                            "title": "Shoes",
                            "product_items": [
                                {"product_retailer_id": "sku-1"},
                                {"product_retailer_id": "sku-2"},
                            ],
                        }
                    ],
                },
            },
        },
    ]
    with graph(emulator) as g:
        for p in payloads:
            r = g.post(
                f"/v23.0/{PHONE_ID}/messages",
                json={"messaging_product": "whatsapp", "to": CUSTOMER, **p},
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["contacts"] == [{"input": CUSTOMER, "wa_id": CUSTOMER}]
            assert body["messages"][0]["id"].startswith("wamid.")
        r = g.post(
            f"/v23.0/{PHONE_ID}/messages",
            json={
                "messaging_product": "whatsapp",
                "to": CUSTOMER,
                "type": "contacts",
                "contacts": [{"phones": [{"phone": "+1555"}]}],
            },
        )
        assert_meta_error(r, 131008)  # a contact card needs a name
    assert [m["type"] for m in emulator.sent(CUSTOMER)] == [
        "contacts",
        "interactive",
        "interactive",
        "interactive",
    ]


async def test_metas_authentication_template_sample(
    emulator: Emulator, client: CloudAPIClient
) -> None:
    """Meta's own samples: an authentication template with a copy-code button, and its send
    with the code in the body and in a ``button`` component of ``sub_type: url``."""
    await client.create_template(
        WABA_ID,
        {
            "name": "verification_code",
            "language": "en_US",
            "category": "AUTHENTICATION",
            "message_send_ttl_seconds": 60,
            "components": [
                {"type": "BODY", "add_security_recommendation": True},
                {"type": "FOOTER", "code_expiration_minutes": 5},
                {
                    "type": "BUTTONS",
                    "buttons": [{"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy Code"}],
                },
            ],
        },
    )
    for _ in range(100):
        rows = await client.list_templates(WABA_ID, name="verification_code")
        if rows[0]["status"] != "PENDING":
            break
        await asyncio.sleep(0.05)
    assert rows[0]["status"] == "APPROVED"
    body = next(c for c in rows[0]["components"] if c["type"] == "BODY")
    assert body["text"].startswith("*{{1}}* is your verification code.")
    code = "J$FpnYnP"
    send = {
        "to": CUSTOMER,
        "recipient_type": "individual",
        "type": "template",
        "template": {
            "name": "verification_code",
            "language": {"code": "en_US"},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": code}]},
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": "0",
                    "parameters": [{"type": "text", "text": code}],
                },
            ],
        },
    }
    sent = await client.send_message(PHONE_ID, send)
    assert sent.message_status == "accepted"
    send["template"]["components"].pop()  # the copy-code button needs the code too
    await expect_error(client.send_message(PHONE_ID, send), 132000, ErrorClass.permanent)


def test_media_get_and_delete(emulator: Emulator) -> None:
    data = b"\x89PNG\r\n\x1a\n fake image"
    with graph(emulator) as g:
        up = g.post(
            f"/v23.0/{PHONE_ID}/media",
            data={"messaging_product": "whatsapp", "type": "image/png"},
            files={"file": ("a.png", data, "image/png")},
        )
        assert up.status_code == 200 and set(up.json()) == {"id"}, up.text
        media_id = up.json()["id"]
        r = g.get(f"/v23.0/{media_id}")
        assert r.status_code == 200, r.text
        node = r.json()
        assert node == {
            "messaging_product": "whatsapp",
            "url": node["url"],
            "mime_type": "image/png",
            "sha256": hashlib.sha256(data).hexdigest(),
            "file_size": len(data),
            "id": media_id,
        }
        # The URL serves the file to the same bearer token, as Meta's media URLs do.
        download = g.get(node["url"])
        assert download.status_code == 200 and download.content == data
        assert download.headers["content-type"] == "image/png"
        assert_meta_error(httpx.get(node["url"]), 190, 401)
        assert g.get(f"/v23.0/{media_id}", params={"phone_number_id": PHONE_ID}).status_code == 200
        assert_meta_error(g.get(f"/v23.0/{media_id}", params={"phone_number_id": "999"}), 100)
        r = g.delete(f"/v23.0/{media_id}")
        assert r.status_code == 200 and r.json() == {"success": True}
        for gone in (g.get(f"/v23.0/{media_id}"), g.delete(f"/v23.0/{media_id}")):
            assert assert_meta_error(gone, 100)["error_subcode"] == 33
        # A type Meta does not take for upload: 131053, in Meta's shape.
        r = g.post(
            f"/v23.0/{PHONE_ID}/media",
            data={"messaging_product": "whatsapp"},
            files={"file": ("a.exe", b"MZ", "application/x-msdownload")},
        )
        assert_meta_error(r, 131053)


def test_graph_paths_without_a_version(emulator: Emulator) -> None:
    """Graph takes ``/{node}/{edge}`` without a version (the oldest available is used)."""
    emulator.inbound(**{"from": CUSTOMER, "text": "hi"})
    with graph(emulator) as g:
        r = g.post(
            f"/{PHONE_ID}/messages",
            json={"messaging_product": "whatsapp", **text()},
        )
        assert r.status_code == 200, r.text
        assert r.json()["messages"][0]["id"].startswith("wamid.")
        node = g.get(f"/{PHONE_ID}")
        assert node.status_code == 200 and node.json()["id"] == PHONE_ID
        listed = g.get(f"/{WABA_ID}/message_templates")
        assert listed.status_code == 200 and "data" in listed.json()
        media = g.post(
            f"/{PHONE_ID}/media",
            data={"messaging_product": "whatsapp"},
            files={"file": ("a.png", b"png", "image/png")},
        )
        assert media.status_code == 200 and media.json()["id"].isdigit()
        assert g.get(f"/{media.json()['id']}").json()["mime_type"] == "image/png"
    assert [m["type"] for m in emulator.sent(CUSTOMER)] == ["text"]


def test_metas_error_shape_on_every_path(emulator: Emulator) -> None:
    with graph(emulator) as g:
        err = assert_meta_error(g.get(f"/v23.0/{PHONE_ID}/nonsense"), 2500)
        assert err["message"] == "Unknown path components: /nonsense"
        assert assert_meta_error(g.get(f"/v23.0/{PHONE_ID}/a/b"), 2500)["message"].endswith("/a/b")
        assert_meta_error(g.put(f"/v23.0/{PHONE_ID}/messages", json={}), 100)  # FastAPI's 405
        assert_meta_error(g.patch("/v23.0/123"), 100)
        assert_meta_error(g.get(f"/v23.0/{PHONE_ID}/messages"), 100)  # a POST-only edge
        assert_meta_error(g.post(f"/v23.0/{PHONE_ID}/messages", content=b"{not json"), 100)
        assert_meta_error(g.post(f"/v23.0/{PHONE_ID}/media", json={}), 100)  # not multipart
        assert_meta_error(g.get("/v23.0/999"), 100)
    assert_meta_error(httpx.get(f"{emulator.url}/v23.0/{PHONE_ID}"), 190, 401)


async def test_webhook_bodies_are_escaped_as_metas(emulator: Emulator, receiver: Receiver) -> None:
    """Non-ASCII as lowercase ``\\uXXXX`` (surrogate pairs past the BMP) and ``/`` as ``\\/``:
    the signature is over those bytes, so a receiver must hash the raw body."""
    words = "äöå 1/2 👍"
    hook = emulator.inbound(**{"from": CUSTOMER, "name": "Jürgen", "text": words})
    [h] = receiver.wait(lambda hs: len(hs) >= 1)
    assert b'"body":"\\u00e4\\u00f6\\u00e5 1\\/2 \\ud83d\\udc4d"' in h.raw
    assert b'"name":"J\\u00fcrgen"' in h.raw
    assert h.raw.isascii() and b"/" not in h.raw.replace(b"\\/", b"")
    assert verify_sha256(h.raw, h.headers["x-hub-signature-256"], APP_SECRET)
    assert h.json == hook["webhook"]  # the same JSON, only written Meta's way
    assert h.json["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] == words


async def test_template_status_webhooks_carry_metas_fields(
    emulator: Emulator, client: CloudAPIClient, receiver: Receiver
) -> None:
    tpl = await approved_template(client, category="MARKETING", name="promo")
    force_status(emulator, tpl["id"], "PAUSED")
    force_status(emulator, tpl["id"], "DISABLED")
    receiver.wait(lambda hs: template_events(receiver, "DISABLED"))
    [(entry, approved)] = template_events(receiver, "APPROVED")
    assert isinstance(entry["time"], int) and entry["id"] == WABA_ID
    assert approved == {
        "event": "APPROVED",
        "message_template_id": int(tpl["id"]),
        "message_template_name": "promo",
        "message_template_language": "en_US",
        "reason": "NONE",
        "message_template_category": "MARKETING",
    }
    [(_, paused)] = template_events(receiver, "PAUSED")
    assert paused["other_info"]["title"] and paused["other_info"]["description"]
    [(_, disabled)] = template_events(receiver, "DISABLED")
    assert disabled["disable_info"]["disable_date"].isdigit()
    assert disabled["message_template_category"] == "MARKETING"


async def test_every_waba_has_metas_hello_world(emulator: Emulator, client: CloudAPIClient) -> None:
    second_number(emulator)
    for waba in (WABA_ID, WABA_2):
        [tpl] = await client.list_templates(waba, name="hello_world")
        assert (tpl["language"], tpl["status"], tpl["category"]) == ("en_US", "APPROVED", "UTILITY")
        assert tpl["components"] == [
            {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
            {
                "type": "BODY",
                "text": "Welcome and congratulations!! This message demonstrates your ability "
                "to send a WhatsApp message notification from the Cloud API, hosted by Meta. "
                "Thank you for taking the time to test with us.",
            },
            {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"},
        ]
    hello = {
        "to": CUSTOMER,
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    }
    assert (await client.send_message(PHONE_ID, hello)).message_status == "accepted"
    assert (await client.send_message(PHONE_2, hello)).message_status == "accepted"


def test_media_through_the_embedded_emulator(server: Server) -> None:
    """``aisoule serve`` mounts the emulator at /emulator: Meta's multipart upload and Meta's
    errors go through, not the server's own 415 and envelope."""
    base = f"{server.url}/emulator"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as g:
        phone = g.get("/_emulator/config").json()["phone_number_id"]
        up = g.post(
            f"/v23.0/{phone}/media",
            data={"messaging_product": "whatsapp"},
            files={"file": ("a.png", b"png bytes", "image/png")},
        )
        assert up.status_code == 200, up.text
        node = g.get(f"/v23.0/{up.json()['id']}").json()
        assert node["url"].startswith(f"{base}/_emulator/media/")
        assert g.get(node["url"]).content == b"png bytes"
        not_multipart = g.post(
            f"/v23.0/{phone}/media", content=b"x", headers={"Content-Type": "text/plain"}
        )
        assert_meta_error(not_multipart, 100)
        assert_meta_error(g.put(f"/v23.0/{phone}/messages", json={}), 100)
        assert_meta_error(g.get(f"/{phone}/nonsense"), 2500)
