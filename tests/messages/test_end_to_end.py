"""The issue's "done when", over real HTTP in the embedded default: a customer writes to the
workspace's sandbox number, we answer with a text and a template, the statuses arrive by signed
webhook from the emulator and end at ``read``; the customer replies; STOP opts them out.
Then the same with the production shape: tasks on Redis Streams, run by `aisoule worker`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import ALL_SCOPES, signup
from tests.servers import AISOULE, Server, make_server, pg_url, sibling_postgres
from tests.waiting import wait_for

CUSTOMER = "919812345678"


def sandbox(api: httpx.Client) -> dict[str, Any]:
    accounts = api.get("/api/accounts").json()["data"]["accounts"]
    return next(a for a in accounts if a["provider"] == "emulator")


def customer_writes(
    server: Server, phone_number_id: str, text: str, name: str = "Priya", customer: str = CUSTOMER
) -> None:
    r = httpx.post(
        f"{server.url}/emulator/_emulator/inbound",
        json={"phone_number_id": phone_number_id, "from": customer, "name": name, "text": text},
        timeout=10,
    )
    assert r.status_code == 200, r.text


def inbound_texts(api: httpx.Client) -> list[str]:
    r = api.get("/api/messages", params={"direction": "inbound", "per_page": 100})
    return [m["preview"] for m in r.json()["data"]["messages"]]


def message(api: httpx.Client, message_id: str) -> dict[str, Any]:
    r = api.get(f"/api/messages/{message_id}")
    assert r.status_code == 200, r.text
    return dict(r.json()["data"]["message"])


def read_with_history(api: httpx.Client, message_id: str) -> dict[str, Any]:
    msg = wait_for(
        lambda: (m := message(api, message_id))["status"] == "read" and m,
        f"message {message_id} to be read",
    )
    statuses = [s["status"] for s in msg["statuses"]]
    assert statuses[0] == "queued"
    for expected in ("accepted", "sent", "delivered", "read"):
        assert expected in statuses, statuses
    return dict(msg)


def conversation(server: Server, api: httpx.Client) -> None:
    number = sandbox(api)["phone_number_id"]
    send = {"to": "+" + CUSTOMER, "type": "text", "text": {"body": "Hello Priya!"}}

    # Before the customer ever wrote: refused, and Meta never saw it.
    r = api.post("/api/messages/send", json=send)
    assert r.status_code == 422 and r.json()["code"] == "outside_24h_window", r.text

    customer_writes(server, number, "Hi, is my order shipped?")
    wait_for(lambda: "Hi, is my order shipped?" in inbound_texts(api), "the inbound message")
    contact = api.get("/api/contacts", params={"q": CUSTOMER}).json()["data"]["contacts"][0]
    assert contact["name"] == "Priya"

    r = api.post("/api/messages/send", json=send)
    assert r.status_code == 202, r.text
    queued = r.json()["data"]["message"]
    assert queued["status"] == "queued"
    msg = read_with_history(api, queued["id"])
    assert msg["wamid"].startswith("wamid.")
    assert msg["content"]["text"]["body"] == "Hello Priya!"
    assert api.get(f"/api/contacts/{msg['contact_id']}").json()["data"]["contact"] == contact

    customer_writes(server, number, "Thanks!")
    wait_for(lambda: "Thanks!" in inbound_texts(api), "the customer's reply")
    listed = api.get("/api/messages", params={"contact": "+" + CUSTOMER}).json()["data"]
    assert listed["total"] == 3

    customer_writes(server, number, "stop")
    wait_for(
        lambda: api.post("/api/messages/send", json=send).json().get("code") == "contact_opted_out",
        "the STOP to opt the contact out",
    )


def test_conversation_in_the_embedded_default(server: Server, api: httpx.Client) -> None:
    conversation(server, api)


def test_template_send_reaches_read(server: Server, api: httpx.Client) -> None:
    body = {
        "name": "order_update",
        "language": "en_US",
        "category": "UTILITY",
        "components": [
            {
                "type": "BODY",
                "text": "Hi {{1}}, your order {{2}} has shipped.",
                "example": {"body_text": [["Priya", "#1042"]]},
            }
        ],
    }
    r = api.post("/api/templates", json=body)
    assert r.status_code == 201, r.text
    tpl_id = r.json()["data"]["template"]["id"]
    wait_for(
        lambda: (
            api.get(f"/api/templates/{tpl_id}").json()["data"]["template"]["status"] == "APPROVED"
        ),
        "the approval webhook",
    )
    send: dict[str, Any] = {
        "to": "+" + CUSTOMER,
        "type": "template",
        "template": {"name": "order_update", "language": "en_US", "parameters": ["Priya"]},
    }
    r = api.post("/api/messages/send", json=send)
    assert r.status_code == 422 and r.json()["code"] == "template_parameters", r.text
    send["template"]["parameters"] = ["Priya", "#1042"]
    r = api.post("/api/messages/send", json=send)
    assert r.status_code == 202, r.text
    msg = read_with_history(api, r.json()["data"]["message"]["id"])
    assert msg["preview"] == "Hi Priya, your order #1042 has shipped."


@pytest.fixture
def external(tmp_path: Path) -> Any:
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0").ping()
    except redis.RedisError as exc:  # a failure, never a skip
        pytest.fail(f"Redis is not reachable at 127.0.0.1:6379: {exc!r}", pytrace=False)
    url = sibling_postgres(pg_url(), "workers")
    env = {
        "AISOULE_WORKER_MODE": "external",
        "AISOULE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "AISOULE_DATABASE_URL": url,
        "AISOULE_RECONCILE_SECONDS": "1",
    }
    srv = make_server("postgresql", tmp_path, **env)
    srv.cli("migrate")
    srv.start()
    worker_env = {**srv.env, "AISOULE_PORT": str(srv.port)}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [*AISOULE, "worker"], env=worker_env, cwd=srv.data_dir, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield srv
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
        srv.stop()


def test_external_workers_on_redis_streams(external: Server) -> None:
    session, _, _, _ = signup(external)
    r = session.post("/api/api-keys", json={"name": "k", "scopes": ALL_SCOPES})
    key = r.json()["data"]["api_key"]["key"]
    with httpx.Client(base_url=external.url, headers={"X-API-Key": key}, timeout=30) as api:
        conversation(external, api)


def test_sends_are_paced_to_the_numbers_throughput(server: Server, api: httpx.Client) -> None:
    """With the emulator (Meta) allowing 2 messages/s for the number and the account set to 2/s,
    six messages sent at once (to six customers, so Meta's pair rate of one message per person
    every 6 s plays no part) all go through on their first attempt: no 130429."""
    account = sandbox(api)
    number = account["phone_number_id"]
    emulator = f"{server.url}/emulator/_emulator/config"
    before = httpx.get(emulator).json()["throughput_per_second"]
    r = api.put(f"/api/accounts/{account['id']}", json={"throughput": 2})
    assert r.status_code == 200, r.text
    assert httpx.post(emulator, json={"throughput_per_second": 2}).status_code == 200
    customers = [f"9198123460{i:02d}" for i in range(6)]
    try:
        for i, customer in enumerate(customers):  # each opens their 24-hour window
            customer_writes(server, number, f"Send me part {i}", customer=customer)
        wait_for(
            lambda: {f"Send me part {i}" for i in range(6)} <= set(inbound_texts(api)),
            "the inbound messages",
        )
        ids = []
        for i, customer in enumerate(customers):
            r = api.post(
                "/api/messages/send",
                json={"to": "+" + customer, "text": {"body": f"part {i}"}},
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["data"]["message"]["id"])
        for message_id in ids:
            msg = wait_for(
                lambda m=message_id: (x := message(api, m))["status"] == "read" and x,
                "every part to be read",
            )
            assert msg["error"] is None and msg["attempts"] == 1, msg
    finally:
        httpx.post(emulator, json={"throughput_per_second": before})
