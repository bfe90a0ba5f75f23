"""The emulator's fault injection (``/_emulator/faults``): each planned fault answers as Meta's
error table says (HTTP status, ``(#code) title``, ``error_data.details``, ``fbtrace_id``), on the
sends the plan names and no others; a timeout is a send the emulator accepts (its status webhooks
follow, echoing biz_opaque_callback_data) but answers after the client gave up; and the listings a
test counts duplicates and the pair rate with."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from aisoule.whatsapp.cloud.client import CloudAPIClient
from aisoule.whatsapp.emulator.meta import ERRORS
from aisoule.whatsapp.provider import MetaAPIError, SendOutcomeUnknown
from tests.whatsapp.conftest import PHONE_ID, TOKEN, Emulator, Receiver

pytestmark = pytest.mark.anyio

CUSTOMER = "919800011122"


def plan(emulator: Emulator, *rules: dict[str, Any], phone_number_id: str = PHONE_ID) -> Any:
    with emulator.control() as c:
        r = c.post(
            "/_emulator/faults", json={"phone_number_id": phone_number_id, "rules": list(rules)}
        )
        assert r.status_code == 200, r.text
        return r.json()


def control(emulator: Emulator, path: str, **params: str) -> Any:
    with emulator.control() as c:
        r = c.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()


def text(to: str = CUSTOMER, body: str = "hello", ref: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"to": to, "type": "text", "text": {"body": body}}
    if ref is not None:
        payload["biz_opaque_callback_data"] = ref
    return payload


def raw_send(emulator: Emulator, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{emulator.url}/v23.0/{PHONE_ID}/messages",
        json={"messaging_product": "whatsapp", **payload},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )


@pytest.fixture
def window(emulator: Emulator) -> Emulator:
    """The customer wrote in: free-form texts are allowed, so only the plan makes them fail."""
    emulator.configure(throughput_per_second=1000, pair_burst=45)
    emulator.inbound(**{"from": CUSTOMER, "text": "hi"})
    return emulator


@pytest.mark.parametrize(
    ("code", "meta_code", "status"),
    [
        (130429, 130429, 400),
        (131049, 131049, 400),
        (131056, 131056, 400),
        (500, 131000, 500),
        (503, 2, 503),
    ],
)
async def test_each_fault_answers_as_metas_error_table(
    window: Emulator, client: CloudAPIClient, code: int, meta_code: int, status: int
) -> None:
    plan(window, {"code": code, "mode": "sync", "times": 1})
    r = raw_send(window, text())
    assert r.status_code == status == ERRORS[meta_code][0]
    err = r.json()["error"]
    _, title, details = ERRORS[meta_code]
    assert err["code"] == meta_code
    assert err["message"] == f"(#{meta_code}) {title}"
    assert err["type"] == "OAuthException"
    assert err["error_data"] == {"messaging_product": "whatsapp", "details": details}
    assert isinstance(err["fbtrace_id"], str) and len(err["fbtrace_id"]) >= 20
    # The rule fired once ("times": 1): the next send is accepted, and through our client the
    # fault arrived as Meta's error with its fields.
    sent = await client.send_message(PHONE_ID, text())
    assert sent.message_id.startswith("wamid.")
    plan(window, {"code": code, "mode": "sync", "times": 1})
    with pytest.raises(MetaAPIError) as caught:
        await client.send_message(PHONE_ID, text())
    exc = caught.value
    assert (exc.http_status, exc.code, exc.details) == (status, meta_code, details)
    assert exc.fbtrace_id
    attempts = control(window, "/_emulator/attempts", phone_number_id=PHONE_ID)["data"]
    assert [a["answer"] for a in attempts] == [meta_code, "accepted", meta_code]


async def test_every_nth_send_is_faulted_deterministically(
    window: Emulator, client: CloudAPIClient
) -> None:
    plan(window, {"code": 130429, "every": 3})
    answers = []
    for n in range(7):
        try:
            await client.send_message(PHONE_ID, text(body=f"m{n}"))
            answers.append("ok")
        except MetaAPIError as exc:
            answers.append(str(exc.code))
    assert answers == ["ok", "ok", "130429", "ok", "ok", "130429", "ok"]
    rules = control(window, "/_emulator/faults")["data"][PHONE_ID]
    assert rules[0]["seen"] == 7 and rules[0]["fired"] == 2


async def test_a_seeded_probability_repeats_itself(
    window: Emulator, client: CloudAPIClient
) -> None:
    async def run() -> list[bool]:
        plan(window, {"code": 131000, "probability": 0.5, "seed": 42})
        out = []
        for _ in range(20):
            try:
                await client.send_message(PHONE_ID, text())
                out.append(True)
            except MetaAPIError:
                out.append(False)
        return out

    first, second = await run(), await run()
    assert first == second and True in first and False in first


async def test_a_rule_for_one_recipient_spares_the_others(
    window: Emulator, client: CloudAPIClient
) -> None:
    other = "919800099988"
    window.inbound(**{"from": other, "text": "hi"})
    plan(window, {"code": 131056, "to": "+" + CUSTOMER})
    await client.send_message(PHONE_ID, text(to=other))
    with pytest.raises(MetaAPIError) as caught:
        await client.send_message(PHONE_ID, text())
    assert caught.value.code == 131056


async def test_marketing_limit_is_reported_in_a_failed_status_as_meta_does(
    window: Emulator, client: CloudAPIClient, receiver: Receiver
) -> None:
    plan(window, {"code": 131049})  # Meta's usual channel for 131049: accepted, then "failed"
    sent = await client.send_message(PHONE_ID, text(ref="r1.0"))
    hooks = receiver.wait(lambda _: any(s["id"] == sent.message_id for s in receiver.statuses()))
    assert hooks
    (failed,) = [s for s in receiver.statuses() if s["id"] == sent.message_id]
    assert failed["status"] == "failed"
    assert failed["biz_opaque_callback_data"] == "r1.0"
    (error,) = failed["errors"]
    _, title, details = ERRORS[131049]
    assert error["code"] == 131049 and error["title"] == title
    assert error["error_data"] == {"details": details}


async def test_a_timeout_is_accepted_and_its_statuses_follow(
    window: Emulator, receiver: Receiver
) -> None:
    plan(window, {"code": "timeout", "delay_ms": 1500, "times": 1})
    impatient = CloudAPIClient(access_token=TOKEN, base_url=window.url, read_timeout=0.3)
    try:
        with pytest.raises(SendOutcomeUnknown):
            await impatient.send_message(PHONE_ID, text(ref="r7.0"))
    finally:
        await impatient.close()
    accepted = control(window, "/_emulator/accepted", phone_number_id=PHONE_ID)
    (row,) = accepted["data"]
    assert row["timed_out"] is True and row["biz_opaque_callback_data"] == "r7.0"
    receiver.wait(
        lambda _: {s["status"] for s in receiver.statuses()} >= {"sent", "delivered", "read"}
    )
    statuses = receiver.statuses()
    assert {s["id"] for s in statuses} == {row["id"]}
    assert {s["biz_opaque_callback_data"] for s in statuses} == {"r7.0"}
    attempts = control(window, "/_emulator/attempts")["data"]
    assert [a["answer"] for a in attempts] == ["timeout"]


async def test_duplicates_and_pair_times_are_listed(
    window: Emulator, client: CloudAPIClient
) -> None:
    for ref in ("a.0", "b.0", "a.0"):
        await client.send_message(PHONE_ID, text(ref=ref))
    accepted = control(window, "/_emulator/accepted", phone_number_id=PHONE_ID)
    assert [r["biz_opaque_callback_data"] for r in accepted["data"]] == ["a.0", "b.0", "a.0"]
    assert accepted["duplicates"] == [
        {"phone_number_id": PHONE_ID, "to": CUSTOMER, "biz_opaque_callback_data": "a.0", "count": 2}
    ]
    pairs = control(window, "/_emulator/pairs", phone_number_id=PHONE_ID)
    (pair,) = pairs["data"]
    assert pair["to"] == CUSTOMER and pair["count"] == 3 and len(pair["times"]) == 3
    assert pair["min_gap_seconds"] >= 0 and pairs["pair_rate_refusals"] == 0
    # The emulator's own pair rate refuses with 131056, and the listing counts it.
    window.configure(pair_burst=1, pair_period_seconds=60)
    await client.send_message(PHONE_ID, text())  # the one token the smaller bucket holds
    with pytest.raises(MetaAPIError):
        await client.send_message(PHONE_ID, text())
    assert control(window, "/_emulator/pairs")["pair_rate_refusals"] >= 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rules": [{"code": 999}]}, "rules[0].code"),
        ({"rules": [{"code": "slow"}]}, "rules[0].code"),
        ({"rules": [{"code": 130429, "every": 0}]}, "rules[0].every"),
        ({"rules": [{"code": 130429, "probability": 2}]}, "rules[0].probability"),
        ({"rules": [{"code": 130429, "mode": "later"}]}, "rules[0].mode"),
        ({"rules": [{"code": 130429, "colour": "red"}]}, "rules[0]: unknown fields: colour"),
        ({"rules": {"code": 130429}}, "rules"),
        ({"phone_number_id": "1", "rules": []}, "phone_number_id"),
    ],
)
def test_a_bad_plan_is_refused_naming_the_field(
    emulator: Emulator, body: dict[str, Any], field: str
) -> None:
    with emulator.control() as c:
        r = c.post("/_emulator/faults", json=body)
    assert r.status_code == 422 and field in r.json()["error"], r.text


async def test_a_plan_is_cleared_by_delete_and_by_reset(
    window: Emulator, client: CloudAPIClient
) -> None:
    plan(window, {"code": 130429})
    with window.control() as c:
        assert c.delete("/_emulator/faults").status_code == 200
    await client.send_message(PHONE_ID, text())
    plan(window, {"code": 130429})
    with window.control() as c:
        c.post("/_emulator/reset").raise_for_status()
        assert c.get("/_emulator/faults").json()["data"] == {}
