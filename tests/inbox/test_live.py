"""The live channel over real HTTP: events arrive within a deadline, a stream killed mid-way is
resumed with Last-Event-ID getting exactly what it missed, once; and across two server
processes on one PostgreSQL database (LISTEN/NOTIFY)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Workspace
from tests.inbox.helpers import customer_writes, invite, sandbox_number, sse, start_conversation
from tests.servers import Server, make_server


def _note(client: httpx.Client, cid: str, body: str) -> None:
    r = client.post(f"/api/conversations/{cid}/notes", json={"body": body})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("watched", [False, True], ids=["alone", "watched"])
def test_events_arrive_and_a_reconnect_replays_what_was_missed_once(
    ws: Workspace, watched: bool
) -> None:
    """``watched``: another stream of the workspace stays open throughout, so the server
    process's shared reader lives on and the reconnect is served from the events it keeps;
    alone, the reconnect reads them from the database."""
    agent = invite(ws)
    customer, conv = start_conversation(ws)
    cid = conv["id"]
    with contextlib.ExitStack() as keep:
        watcher = keep.enter_context(sse(ws.session)) if watched else None
        _missed_and_replayed(ws, agent, customer, cid)
        if watcher is not None:  # it saw everything, each once, in order
            got = watcher.until(
                lambda e: (
                    e.get("event") == "conversation.updated"
                    and json.loads(e["data"])["status"] == "pending"
                ),
                timeout=5,
            )
            ids = [int(e["id"]) for e in got]
            assert ids == list(range(ids[0], ids[0] + len(ids)))


def _missed_and_replayed(ws: Workspace, agent: Any, customer: str, cid: str) -> None:
    with sse(agent.client) as stream:
        customer_writes(ws.server, sandbox_number(ws), customer, "Are you there?")
        got = stream.until(lambda e: e.get("event") == "message.created", timeout=5)
        created = json.loads(got[-1]["data"])
        assert created["conversation_id"] == cid and created["direction"] == "inbound"
        assert ws.session.post(f"/api/conversations/{cid}/claim").status_code == 200
        got = stream.until(lambda e: e.get("event") == "conversation.updated", timeout=5)
        assert json.loads(got[-1]["data"])["change"] == "assignee"
        _note(ws.session, cid, "first")
        got = stream.until(lambda e: e.get("event") == "note.created", timeout=5)
        last_seen = got[-1]["id"]
        seen = [e["id"] for e in stream.events.queue]  # anything already queued after it
    # Killed mid-stream: these happen while nobody listens.
    missed = [f"missed {i}" for i in range(5)]
    for body in missed:
        _note(ws.session, cid, body)
    assert (
        ws.session.put(f"/api/conversations/{cid}/status", json={"status": "pending"}).status_code
        == 200
    )
    with sse(agent.client, last_event_id=last_seen) as stream:
        replay = stream.until(
            lambda e: (
                e.get("event") == "conversation.updated"
                and json.loads(e["data"])["status"] == "pending"
            ),
            timeout=5,
        )
    ids = [int(e["id"]) for e in replay]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # in order, none twice
    assert ids[0] == int(last_seen) + 1  # nothing skipped
    assert not set(map(str, ids)) & set(seen)
    assert [e["event"] for e in replay] == ["note.created"] * 5 + ["conversation.updated"]

    # Another workspace's stream sees none of it.
    stranger = invite(ws)  # same workspace: sees it; a key of another workspace would not
    with sse(stranger.client, last_event_id=str(int(last_seen))) as stream:
        assert stream.next(timeout=5)["id"] == str(int(last_seen) + 1)


def test_a_stream_is_scoped_to_its_workspace_and_needs_credentials(
    make_workspace: object, server: Server
) -> None:
    a, b = make_workspace(), make_workspace()  # type: ignore[operator]
    _, conv = start_conversation(a)
    with sse(b.client()) as stream:  # an API key of workspace b
        _note(a.session, conv["id"], "a secret of a")
        _, mine = start_conversation(b)
        event = stream.until(lambda e: e.get("event") == "message.created", timeout=10)[-1]
        assert json.loads(event["data"])["conversation_id"] == mine["id"]
        assert all(e.get("event") != "note.created" for e in [event])
    r = httpx.get(f"{server.url}/api/events", timeout=10)
    assert r.status_code == 401
    with b.client() as key_client:
        r = key_client.get("/api/events", headers={"Last-Event-ID": "abc"})
        assert r.status_code == 422 and "Last-Event-ID" in r.text


@pytest.fixture
def second_server(server: Server, tmp_path: Path) -> Iterator[Server]:
    """Another `aisoule serve` on the same PostgreSQL database (another process)."""
    if server.backend != "postgresql":
        pytest.skip("several server processes share a PostgreSQL database")
    srv = make_server("postgresql", tmp_path, database_url=server.database_url)
    srv.start()
    yield srv
    srv.stop()


def test_events_reach_another_server_process(ws: Workspace, second_server: Server) -> None:
    """A note written through one `aisoule serve` reaches a stream held by another (NOTIFY)."""
    _, conv = start_conversation(ws)
    with httpx.Client(base_url=second_server.url, cookies=ws.session.cookies, timeout=30) as other:
        other.headers["X-CSRF-Token"] = ws.session.headers["X-CSRF-Token"]
        with sse(other) as stream:
            body = f"across processes {uuid.uuid4().hex}"
            _note(ws.session, conv["id"], body)
            event = stream.until(lambda e: e.get("event") == "note.created", timeout=3)[-1]
            assert json.loads(event["data"])["conversation_id"] == conv["id"]
