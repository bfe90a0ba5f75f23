"""Media in the inbox over real HTTP against the bundled emulator: a file uploaded to Meta's
media API and sent by its id, Meta's limits refused before Meta sees them, and the customer's
file downloaded through Meta's two steps (GET /{media-id}, then its URL)."""

from __future__ import annotations

import httpx

from tests.conftest import Workspace
from tests.inbox.helpers import invite, new_customer, sandbox_number, start_conversation, wait_for

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # what it holds is Meta's business, not ours


def test_a_file_is_uploaded_to_meta_and_sent_by_its_id(ws: Workspace) -> None:
    agent = invite(ws)
    _, conv = start_conversation(ws)
    cid = conv["id"]
    r = agent.client.post(
        f"/api/conversations/{cid}/media", files={"file": ("receipt.png", PNG, "image/png")}
    )
    assert r.status_code == 201, r.text
    uploaded = r.json()["data"]["media"]
    assert uploaded["type"] == "image" and uploaded["size"] == len(PNG)
    assert uploaded["mime_type"] == "image/png" and uploaded["id"]
    r = agent.client.post(
        f"/api/conversations/{cid}/reply",
        json={"type": "image", "image": {"id": uploaded["id"], "caption": "Your receipt"}},
    )
    assert r.status_code == 202, r.text
    message_id = r.json()["data"]["message"]["id"]

    def at_meta() -> list[dict[str, object]]:
        got = httpx.get(f"{ws.server.url}/emulator/_emulator/messages", timeout=10).json()
        return [m for m in got["data"] if uploaded["id"] in str(m)]

    wait_for(at_meta, "the image message at Meta")
    # The file we sent is read back from Meta the same way the customer's are.
    r = agent.client.get(f"/api/conversations/{cid}/messages/{message_id}/media")
    assert r.status_code == 200, r.text
    assert r.content == PNG and r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"].startswith("inline")

    # Meta's limits, before Meta is asked: nothing is uploaded.
    big = agent.client.post(
        f"/api/conversations/{cid}/media",
        files={"file": ("huge.jpg", b"\xff" * (5 * 1024 * 1024 + 1), "image/jpeg")},
    )
    assert big.status_code == 422, big.text
    assert big.json()["message"].startswith("file: ") and "5 MB" in big.json()["message"]
    gif = agent.client.post(
        f"/api/conversations/{cid}/media", files={"file": ("a.gif", b"GIF89a", "image/gif")}
    )
    assert gif.status_code == 422 and "image/gif" in gif.json()["message"], gif.text
    assert agent.client.post(f"/api/conversations/{cid}/media").status_code == 422
    # A document keeps its name and is served as an attachment.
    r = agent.client.post(
        f"/api/conversations/{cid}/media",
        files={"file": ("Invoice 7.pdf", b"%PDF-1.4 test", "application/pdf")},
    )
    assert r.status_code == 201 and r.json()["data"]["media"]["type"] == "document", r.text


def test_the_customers_photo_is_downloaded_from_meta_and_scoped(
    ws: Workspace, make_workspace: object
) -> None:
    agent = invite(ws)
    customer = new_customer()
    r = httpx.post(
        f"{ws.server.url}/emulator/_emulator/inbound",
        json={
            "phone_number_id": sandbox_number(ws),
            "from": customer,
            "name": "Priya",
            "type": "image",
            "media": {"mime_type": "image/jpeg", "caption": "the broken lid"},
        },
        timeout=10,
    )
    assert r.status_code == 200, r.text

    def the_photo() -> tuple[str, str] | None:
        rows = agent.client.get("/api/conversations").json()["data"]["conversations"]
        conv = next((c for c in rows if c["contact"]["phone"] == f"+{customer}"), None)
        if conv is None:
            return None
        got = agent.client.get(f"/api/conversations/{conv['id']}/messages").json()["data"]
        images = [m for m in got["messages"] if m["type"] == "image"]
        return (conv["id"], images[0]["id"]) if images else None

    cid, mid = wait_for(the_photo, "the customer's photo in the inbox")
    r = agent.client.get(f"/api/conversations/{cid}/messages/{mid}/media")
    assert r.status_code == 200, r.text
    assert r.content == f"emulated image {customer}".encode()
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-content-type-options"] == "nosniff"

    # The inbox's pane shows it (the browser then fetches it as above).
    pane = agent.client.get(f"/inbox/{cid}/pane")
    assert pane.status_code == 200, pane.text
    assert f'src="/api/conversations/{cid}/messages/{mid}/media"' in pane.text
    assert 'alt="Image: the broken lid"' in pane.text

    # Another conversation's id with this message, or another workspace: 404.
    _, other = start_conversation(ws)
    assert (
        agent.client.get(f"/api/conversations/{other['id']}/messages/{mid}/media").status_code
        == 404
    )
    stranger = make_workspace()  # type: ignore[operator]
    assert (
        stranger.client().get(f"/api/conversations/{cid}/messages/{mid}/media").status_code == 404
    )
