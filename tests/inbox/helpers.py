"""What the inbox tests share: members by invitation, a customer writing through the emulator,
polling with a deadline, and reading a Server-Sent Events stream."""

from __future__ import annotations

import itertools
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests import waiting
from tests.conftest import Workspace
from tests.servers import Server

PASSWORD = "agent password 12345"
_phones = itertools.count(1)


def wait_for(fn: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    return waiting.wait_for(fn, what, timeout, interval=0.05)


@dataclass
class Member:
    user_id: str
    email: str
    client: httpx.Client  # cookie session with X-CSRF-Token


def invite(ws: Workspace, role: str = "agent", *, inviter: httpx.Client | None = None) -> Member:
    """A new member of ``ws`` with ``role``, logged in (invited by the owner, accepted)."""
    email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
    r = (inviter or ws.session).post("/api/invitations", json={"email": email, "role": role})
    assert r.status_code == 201, r.text
    token = r.json()["data"]["token"]
    client = httpx.Client(base_url=ws.server.url, timeout=30)
    r = client.post(
        "/api/auth/accept-invitation",
        json={"token": token, "name": f"Agent {email[:8]}", "password": PASSWORD},
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    client.headers["X-CSRF-Token"] = data["csrf_token"]
    assert data["user"]["role"] == role
    return Member(data["user"]["id"], email, client)


def sandbox_number(ws: Workspace) -> str:
    accounts = ws.session.get("/api/accounts").json()["data"]["accounts"]
    return str(next(a for a in accounts if a["provider"] == "emulator")["phone_number_id"])


def new_customer() -> str:
    return f"9197{next(_phones):04d}{uuid.uuid4().int % 10000:04d}"


def customer_writes(server: Server, number: str, customer: str, text: str) -> dict[str, Any]:
    r = httpx.post(
        f"{server.url}/emulator/_emulator/inbound",
        json={"phone_number_id": number, "from": customer, "name": "Priya", "text": text},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return dict(r.json()["message"])


def conversations(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    r = client.get("/api/conversations", params={"per_page": 100, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["data"]["conversations"])


def conversation_of(client: httpx.Client, customer: str) -> dict[str, Any] | None:
    for c in conversations(client):
        if c["contact"] and c["contact"]["phone"] == "+" + customer:
            return c
    return None


def wait_conversation(client: httpx.Client, customer: str, **match: Any) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        c = conversation_of(client, customer)
        if c is not None and all(c.get(k) == v for k, v in match.items()):
            return c
        return None

    return dict(wait_for(found, f"the conversation with {customer} ({match})"))


def start_conversation(
    ws: Workspace, text: str = "Hello, is my order shipped?"
) -> tuple[str, dict[str, Any]]:
    customer = new_customer()
    customer_writes(ws.server, sandbox_number(ws), customer, text)
    return customer, wait_conversation(ws.session, customer)


@dataclass
class Stream:
    """A Server-Sent Events connection read by a thread: events arrive in ``events``."""

    response: httpx.Response
    events: queue.Queue[dict[str, str]] = field(default_factory=queue.Queue)
    comments: list[str] = field(default_factory=list)

    def next(self, timeout: float = 10.0) -> dict[str, str]:
        return self.events.get(timeout=timeout)

    def until(
        self, pred: Callable[[dict[str, str]], bool], timeout: float = 10.0
    ) -> list[dict[str, str]]:
        """Events up to and including the first matching ``pred``, within ``timeout``."""
        got: list[dict[str, str]] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching event within {timeout} s; got {got}")
            event = self.events.get(timeout=left)
            got.append(event)
            if pred(event):
                return got


def _read(stream: Stream) -> None:
    event: dict[str, str] = {}
    try:
        for line in stream.response.iter_lines():
            if not line:
                if "data" in event or "event" in event:
                    stream.events.put(event)
                event = {}
            elif line.startswith(":"):
                stream.comments.append(line[1:].strip())
            else:
                name, _, value = line.partition(":")
                event[name] = value[1:] if value.startswith(" ") else value
    except (httpx.HTTPError, RuntimeError, ValueError):
        pass  # closed


@contextmanager
def sse(client: httpx.Client, last_event_id: str | None = None) -> Iterator[Stream]:
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    with client.stream(
        "GET", "/api/events", headers=headers, timeout=httpx.Timeout(30, read=60)
    ) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        stream = Stream(r)
        reader = threading.Thread(target=_read, args=(stream,), daemon=True)
        reader.start()
        wait_for(lambda: any(c.startswith("live from") for c in stream.comments), "the stream")
        try:
            yield stream
        finally:
            r.close()
