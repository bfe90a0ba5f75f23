"""The dashboard over plain HTTP, on SQLite and PostgreSQL: every form refuses a missing or wrong
CSRF token, every page and action answers 404 for another workspace's ids, the contacts table
pages by keyset with its filters, and the forgotten-password command works."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from aisoule.dashboard.pages import ROUTERS
from tests.campaigns.helpers import approved_template
from tests.conftest import Workspace
from tests.inbox.helpers import invite, start_conversation
from tests.servers import Server

PAGE = {"Accept": "text/html"}


def dashboard_client(server: Server, email: str, password: str) -> tuple[httpx.Client, str]:
    """A browser-like client logged in through the login form: (client, its CSRF token)."""
    c = httpx.Client(base_url=server.url, timeout=30, headers=PAGE)
    assert c.get("/login").status_code == 200
    r = c.post(
        "/login",
        data={"csrf_token": c.cookies["aisoule_form"], "email": email, "password": password},
    )
    assert r.status_code == 303, r.text
    return c, c.cookies["csrf_token"]


def _ids(ws: Workspace) -> dict[str, str]:
    """One id of each kind in the workspace: a contact, a key, a number, a template, a
    campaign (a draft)."""
    with ws.client() as api:
        contact = api.post("/api/contacts", json={"phone_number": "+919800000001"}).json()
        account = api.get("/api/accounts").json()["data"]["accounts"][0]
        tpl = api.post(
            "/api/templates",
            json={
                "name": "iso_check",
                "language": "en_US",
                "category": "UTILITY",
                "components": [{"type": "BODY", "text": "Hello"}],
            },
        )
        assert tpl.status_code == 201, tpl.text
        campaign = api.post(
            "/api/campaigns",
            json={
                "name": "iso campaign",
                "template": {"name": "iso_check", "language": "en_US"},
                "audience": {"all": True},
            },
        )
        assert campaign.status_code == 201, campaign.text
        canned = api.post(
            "/api/canned-responses", json={"short_code": "iso", "content": "Hello from iso"}
        )
        assert canned.status_code == 201, canned.text
    _, conv = start_conversation(ws)
    invitation = ws.session.post(
        "/api/invitations", json={"email": f"iso-{uuid.uuid4().hex[:8]}@example.com"}
    )
    assert invitation.status_code == 201, invitation.text
    owner = ws.session.get("/api/members").json()["data"]["members"][0]
    return {
        "campaign": campaign.json()["data"]["campaign"]["id"],
        "contact": contact["data"]["contact"]["id"],
        "key": ws.key_id,
        "account": account["id"],
        "template": tpl.json()["data"]["template"]["id"],
        "conversation": conv["id"],
        "canned": canned.json()["data"]["canned_response"]["id"],
        "invitation": invitation.json()["data"]["invitation"]["id"],
        "member": owner["user_id"],
    }


# Every dashboard route with an id in its path, and how to fill it (a new route must be here).
ID_PAGES: dict[tuple[str, str], str] = {
    ("GET", "/contacts/{contact_id}"): "contact",
    ("GET", "/contacts/{contact_id}/messages"): "contact",
    ("POST", "/contacts/{contact_id}"): "contact",
    ("POST", "/contacts/{contact_id}/delete"): "contact",
    ("POST", "/contacts/{contact_id}/send"): "contact",
    ("POST", "/contacts/{contact_id}/simulate"): "contact",
    ("GET", "/settings/api-keys/{key_id}"): "key",
    ("POST", "/settings/api-keys/{key_id}/revoke"): "key",
    ("GET", "/numbers/{account_id}"): "account",
    ("POST", "/numbers/{account_id}/simulate"): "account",
    ("GET", "/templates/{template_id}"): "template",
    ("POST", "/templates/{template_id}/delete"): "template",
    ("GET", "/campaigns/{campaign_id}"): "campaign",
    ("GET", "/campaigns/{campaign_id}/chart"): "campaign",
    ("GET", "/campaigns/{campaign_id}/recipients"): "campaign",
    ("POST", "/campaigns/{campaign_id}/start"): "campaign",
    ("POST", "/campaigns/{campaign_id}/pause"): "campaign",
    ("POST", "/campaigns/{campaign_id}/resume"): "campaign",
    ("POST", "/campaigns/{campaign_id}/cancel"): "campaign",
    ("POST", "/campaigns/{campaign_id}/resend-unknown"): "campaign",
    ("POST", "/campaigns/{campaign_id}/delete"): "campaign",
    ("GET", "/campaigns/{campaign_id}/edit"): "campaign",
    ("POST", "/campaigns/{campaign_id}/edit"): "campaign",
    ("GET", "/inbox/{conversation_id}"): "conversation",
    ("GET", "/inbox/{conversation_id}/pane"): "conversation",
    ("GET", "/inbox/{conversation_id}/composer"): "conversation",
    ("POST", "/inbox/{conversation_id}/read"): "conversation",
    ("POST", "/inbox/{conversation_id}/claim"): "conversation",
    ("POST", "/inbox/{conversation_id}/assign"): "conversation",
    ("POST", "/inbox/{conversation_id}/status"): "conversation",
    ("POST", "/inbox/{conversation_id}/labels"): "conversation",
    ("POST", "/inbox/{conversation_id}/reply"): "conversation",
    ("POST", "/inbox/{conversation_id}/notes"): "conversation",
    ("POST", "/canned-responses/{canned_id}"): "canned",
    ("POST", "/canned-responses/{canned_id}/delete"): "canned",
    ("POST", "/team/invitations/{invitation_id}/revoke"): "invitation",
    ("POST", "/team/members/{user_id}"): "member",
    ("POST", "/team/members/{user_id}/remove"): "member",
}


def _routes() -> list[tuple[str, str]]:
    out = []
    for router in ROUTERS:
        for route in router.routes:
            for method in getattr(route, "methods", ()):
                out.append((method, getattr(route, "path", "")))
    return out


def test_every_id_route_is_checked() -> None:
    with_ids = {r for r in _routes() if "{" in r[1]}
    assert with_ids == set(ID_PAGES), sorted(with_ids ^ set(ID_PAGES))


def test_another_workspaces_ids_answer_404(make_workspace: Any, server: Server) -> None:
    mine, theirs = make_workspace(), make_workspace()
    victim = _ids(theirs)
    client, csrf = dashboard_client(server, mine.email, mine.password)
    try:
        for (method, path), kind in ID_PAGES.items():
            url = re.sub(r"\{\w+\}", victim[kind], path)
            if method == "GET":
                r = client.get(url)
            else:
                r = client.post(
                    url,
                    data={
                        "csrf_token": csrf,
                        "text": "x",
                        "inbound_text": "x",
                        "phone": "+14155550100",
                        "note": "x",
                        "status": "pending",
                        "add": "x",
                        "role": "agent",
                        "short_code": "x",
                        "content": "x",
                    },
                )
            assert r.status_code == 404, (method, url, r.status_code)
            assert "text/html" in r.headers["content-type"]
            assert "Not found" in r.text
    finally:
        client.close()
    # Nothing of theirs was touched.
    with theirs.client() as api:
        assert api.get(f"/api/contacts/{victim['contact']}").status_code == 200
        assert api.get(f"/api/templates/{victim['template']}").status_code == 200
        campaign = api.get(f"/api/campaigns/{victim['campaign']}")
        assert campaign.status_code == 200 and campaign.json()["data"]["campaign"]["status"] == (
            "draft"
        )
        assert api.get("/api/contacts").status_code == 200  # their key still works


def _posts(ids: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """Every form of the dashboard, filled as a user would (only the token is wrong)."""
    out: list[tuple[str, dict[str, Any]]] = [
        ("/logout", {}),
        ("/workspaces/switch", {"workspace_id": str(uuid.uuid4())}),
        ("/workspaces", {"workspace_name": "Another"}),
        ("/settings/api-keys", {"name": "k"}),
        ("/contacts", {"phone_number": "+919800000002"}),
        ("/contacts-bulk", {"action": "delete", "ids": ids["contact"]}),
        ("/numbers", {"phone_number_id": "1", "waba_id": "2", "access_token": "t"}),
        ("/templates", {"name": "x", "language": "en_US", "body": "Hi"}),
        ("/templates/sync", {}),
        ("/campaigns", {"name": "c", "template_id": ids["template"], "audience_all": "1"}),
        ("/campaigns/preview", {"template_id": ids["template"], "audience_all": "1"}),
        ("/team/invitations", {"email": "someone@example.com", "role": "agent"}),
        ("/team/me", {"available": "no"}),
        ("/team/settings", {"only_assignee_replies": "on"}),
        ("/canned-responses", {"short_code": "x", "content": "x"}),
    ]
    for (method, path), kind in ID_PAGES.items():
        if method == "POST":
            out.append((re.sub(r"\{\w+\}", ids[kind], path), {"text": "x"}))
    return out


def test_every_form_refuses_a_missing_or_wrong_csrf_token(ws: Workspace, server: Server) -> None:
    ids = _ids(ws)
    client, csrf = dashboard_client(server, ws.email, ws.password)
    posted = set()
    try:
        for url, data in _posts(ids):
            for token in (None, "wrong" + csrf[5:]):
                body = dict(data) | ({"csrf_token": token} if token else {})
                r = client.post(url, data=body)
                assert r.status_code == 403, (url, token, r.status_code)
                assert "CSRF" in r.text
            posted.add(re.sub(r"/\d+(?=/|$)", "/{id}", re.sub(r"[0-9a-f-]{36}", "{id}", url)))
        # The anonymous forms: a double-submit token (cookie + field).
        anon = httpx.Client(base_url=server.url, timeout=30, headers=PAGE)
        with anon:
            anon.get("/login")
            for url in ("/login", "/signup", "/invitations/accept"):
                r = anon.post(url, data={"email": ws.email, "password": ws.password})
                assert r.status_code == 403, url
                r = anon.post(
                    url, data={"csrf_token": "forged", "email": ws.email, "password": ws.password}
                )
                assert r.status_code == 403, url
        assert client.get("/contacts").status_code == 200  # still logged in: nothing happened
    finally:
        client.close()
    every_post = {re.sub(r"\{\w+\}", "{id}", p) for m, p in _routes() if m == "POST"} - {
        "/login",
        "/signup",
        "/invitations/accept",
    }
    assert every_post <= posted, sorted(every_post - posted)
    with ws.client() as api:
        assert api.get(f"/api/contacts/{ids['contact']}").status_code == 200
        assert api.get(f"/api/campaigns/{ids['campaign']}").status_code == 200
        assert api.get("/api/campaigns").json()["data"]["total"] == 1  # the form made none


def test_contacts_page_keyset_pages_and_filters(ws: Workspace, server: Server) -> None:
    with ws.client(bearer=True) as v1:
        for i in range(120):
            body = {
                "phone": f"9198{i:08d}",
                "first_name": f"P{i:03d}",
                "tags": ["even"] if i % 2 == 0 else [],
                "custom_fields": {"city": "Pune" if i < 5 else "Goa"},
            }
            assert v1.post("/v1/contacts", json=body).status_code in (200, 201)
    client, _ = dashboard_client(server, ws.email, ws.password)
    try:
        seen: list[str] = []
        url = "/contacts"
        while url:
            r = client.get(url)
            assert r.status_code == 200
            seen += re.findall(r">(P\d{3})</a>", r.text)
            nxt = re.search(r'href="(/contacts\?[^"]*after=\d+)"', r.text)
            url = nxt.group(1).replace("&amp;", "&") if nxt else ""
        assert seen == [f"P{i:03d}" for i in range(120)]
        assert "120 contacts" in client.get("/contacts").text
        # Forward twice, back once: the second page again.
        first = client.get("/contacts").text
        after = re.search(r'after=(\d+)"', first).group(1)
        second = client.get(f"/contacts?after={after}").text
        after = re.search(r'after=(\d+)"', second).group(1)
        third = client.get(f"/contacts?after={after}").text
        assert re.findall(r">(P\d{3})</a>", third) == [f"P{i:03d}" for i in range(100, 120)]
        before = re.search(r'before=(\d+)"', third).group(1)
        back = client.get(f"/contacts?before={before}").text
        assert re.findall(r">(P\d{3})</a>", back) == [f"P{i:03d}" for i in range(50, 100)]
        assert "after=" in back and "before=" in back
        tagged = client.get("/contacts?tag=even").text
        assert "60 contacts" in tagged
        pune = client.get("/contacts?field=city&value=Pune").text
        assert re.findall(r">(P\d{3})</a>", pune) == [f"P{i:03d}" for i in range(5)]
        assert re.findall(r">(P\d{3})</a>", client.get("/contacts?q=P119").text) == ["P119"]
        bad = client.get("/contacts?stage=Nope")
        assert bad.status_code == 200 and 'data-field="stage"' in bad.text
    finally:
        client.close()


def test_a_forgotten_password_is_reset_by_the_operator(ws: Workspace, server: Server) -> None:
    client, _ = dashboard_client(server, ws.email, ws.password)
    done = server.cli(
        "user", "reset-password", "--email", ws.email, "--password", "a brand new password"
    )
    assert "new password set" in done.stdout
    assert client.get("/contacts").status_code == 303  # logged out everywhere
    client.close()
    again, _ = dashboard_client(server, ws.email, "a brand new password")
    again.close()
    r = httpx.post(
        server.url + "/api/auth/login", json={"email": ws.email, "password": ws.password}
    )
    assert r.status_code == 401


@pytest.mark.parametrize("path", ["/", "/contacts", "/settings/api-keys"])
def test_pages_ask_for_a_login(anon: httpx.Client, path: str) -> None:
    r = anon.get(path, headers=PAGE)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_campaign_forms_name_fields_and_the_chart_counts(ws: Workspace, server: Server) -> None:
    """The wizard's posts over plain HTTP: errors at the input the service names, a live
    preview, a start over the form, and the chart's series from the status history (its
    per-bucket query runs on both databases)."""
    with ws.client() as api:
        approved_template(
            api,
            {
                "name": "pages_offer",
                "language": "en_US",
                "category": "MARKETING",
                "components": [
                    {
                        "type": "BODY",
                        "text": "Hi {{1}}, code {{2}}",
                        "example": {"body_text": [["Priya", "X"]]},
                    }
                ],
            },
        )
        for i in range(2):
            body = {"phone_number": f"+9198700000{i:02d}", "name": f"P{i}", "tags": ["pg"]}
            assert api.post("/api/contacts", json=body).status_code == 201
        tid = api.get("/api/templates").json()["data"]["templates"][0]["id"]
    client, csrf = dashboard_client(server, ws.email, ws.password)
    form = {
        "csrf_token": csrf,
        "name": "Pages",
        "template_id": tid,
        "tags": "pg",
        "p.body[0].source": "first_name",
        "p.body[1].source": "value",
        "p.body[1].value": "",
        "when": "now",
    }
    try:
        r = client.post("/campaigns", data=form)
        assert r.status_code == 422
        assert re.search(r'data-field="parameters.body\[1\]">must not be empty', r.text), r.text
        r = client.post("/campaigns/preview", data=form)
        assert "<strong>Body variable 2</strong>: must not be empty" in r.text, r.text
        r = client.post(
            "/campaigns/preview", data=form | {"tags": "nobody", "p.body[1].value": "C"}
        )
        assert 'data-problem="audience_empty"' in r.text
        r = client.post("/campaigns/preview", data=form | {"p.body[1].value": "C1"})
        assert re.search(r'<span class="n">2</span> contacts match', r.text), r.text
        assert "Hi P0, code C1" in r.text
        r = client.post(
            "/campaigns", data=form | {"when": "later", "scheduled_local": "2001-01-01T10:00"}
        )
        assert 'data-field="scheduled_local">must be in the future' in r.text
        # A schedule is the reader's wall-clock time in their zone (the page sends its name).
        local = (datetime.now(UTC) + timedelta(days=2)).astimezone(ZoneInfo("Asia/Kolkata"))
        r = client.post(
            "/campaigns",
            data=form
            | {
                "p.body[1].value": "C1",
                "when": "later",
                "scheduled_local": local.strftime("%Y-%m-%dT%H:%M"),
                "tz": "Asia/Kolkata",
            },
        )
        assert r.status_code == 303, r.text
        with ws.client() as api:
            later = api.get(f"/api/campaigns/{r.headers['location'].rsplit('/', 1)[1]}")
            c = later.json()["data"]["campaign"]
        assert c["status"] == "scheduled"
        assert c["scheduled_at"] == local.replace(second=0, microsecond=0).astimezone(UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ), c["scheduled_at"]
        # Editing it: the wizard filled from the campaign, saved through the service's update.
        edit = f"/campaigns/{c['id']}/edit"
        filled = client.get(edit).text
        assert 'value="Pages"' in filled and 'name="p.body[1].value" type="text" value="C1"' in filled
        assert f'data-utc="{c["scheduled_at"].replace("Z", "+00:00")}"' in filled
        assert '<p class="wa-body">Hi [first name], code C1</p>' in filled  # the mapping
        r = client.post(edit, data=form | {"name": " ", "p.body[1].value": "C2", "when": "draft"})
        assert r.status_code == 422 and 'data-field="name"' in r.text, r.text
        r = client.post(edit, data=form | {"name": "Pages 2", "p.body[1].value": "C2", "when": "draft"})
        assert r.status_code == 303, r.text
        with ws.client() as api:
            c = api.get(f"/api/campaigns/{c['id']}").json()["data"]["campaign"]
        assert (c["name"], c["status"], c["scheduled_at"]) == ("Pages 2", "draft", None), c
        assert c["parameters"]["body"][1] == {"value": "C2"}, c["parameters"]
        r = client.post("/campaigns", data=form | {"p.body[1].value": "C1"})
        assert r.status_code == 303, r.text
        url = r.headers["location"]
        with ws.client() as api:
            cid = url.rsplit("/", 1)[1]

            def done() -> bool:
                c = api.get(f"/api/campaigns/{cid}").json()["data"]["campaign"]
                return c["status"] == "completed" and c["stats"]["read"] == 2

            deadline = time.monotonic() + 30
            while not done():
                assert time.monotonic() < deadline, "the campaign never completed"
                time.sleep(0.2)
        assert client.get(f"{url}/edit").status_code == 409  # completed: no longer editable
        chart = client.get(f"{url}/chart").text
        assert "2 sent, 2 delivered, 2 read, 0 failed" in chart, chart
        page = client.get(url).text
        assert 'data-status="completed"' in page and 'data-bucket="read"' in page
        read = client.get(
            f"{url}/recipients?status=read",
            headers={"HX-Request": "true", "HX-Target": "recipients"},
        )
        assert read.text.count('<tr data-status="read">') == 2
        assert 'data-campaign="Pages"' in client.get("/campaigns?status=completed").text
        assert "No completed campaigns" not in client.get("/campaigns?status=completed").text
    finally:
        client.close()


def test_an_agent_sees_and_reaches_only_what_the_role_allows(ws: Workspace) -> None:
    agent = invite(ws, "agent")
    c = agent.client
    c.headers["Accept"] = "text/html"
    home = c.get("/")
    assert home.status_code == 200
    assert 'href="/inbox"' in home.text and 'href="/team"' in home.text
    assert 'href="/settings/api-keys"' not in home.text
    assert "Audit log" not in home.text
    numbers = c.get("/numbers").text
    assert "Connect a real number" not in numbers
    assert "Invite someone" not in c.get("/team").text
    for method, url, data in [
        ("GET", "/settings/api-keys", {}),
        ("POST", "/settings/api-keys", {"name": "k"}),
        ("POST", "/numbers", {"phone_number_id": "1", "waba_id": "2", "access_token": "t"}),
        ("GET", "/templates/new", {}),
        ("POST", "/templates", {"name": "x", "language": "en_US", "body": "Hi"}),
        ("POST", "/team/invitations", {"email": "x@example.com", "role": "agent"}),
        ("POST", "/team/settings", {"only_assignee_replies": "on"}),
        ("POST", f"/team/members/{agent.user_id}", {"role": "admin"}),
        ("GET", "/settings/audit-log", {}),
    ]:
        r = c.get(url) if method == "GET" else c.post(url, data=data)
        assert r.status_code == 403, (method, url, r.status_code)
    # What an agent may: the inbox, canned responses, their own availability.
    assert c.get("/inbox").status_code == 200
    assert c.get("/canned-responses").status_code == 200
    assert c.post("/team/me", data={"available": "no"}).status_code == 303
    members = ws.session.get("/api/members").json()["data"]["members"]
    assert next(m for m in members if m["user_id"] == agent.user_id)["available"] is False
    assert ws.session.get("/api/invitations").status_code == 200
    c.close()


def test_the_inbox_pages_over_plain_http(ws: Workspace) -> None:
    """What the browser test does not: a refused claim names the holder, a takeover with its
    reason, a snooze in the member's time zone, label removal, refusals next to the forms."""
    agent = invite(ws, "agent")
    _, conv = start_conversation(ws, "Order #77 please")
    cid = conv["id"]
    c, csrf = dashboard_client(ws.server, ws.email, ws.password)
    hx = {"HX-Request": "true"}

    def post(path: str, **data: str) -> httpx.Response:
        return c.post(f"/inbox/{cid}/{path}", data={"csrf_token": csrf, **data}, headers=hx)

    try:
        page = c.get("/inbox").text
        assert f'data-conversation-id="{cid}"' in page and 'data-unread="1"' in page
        assert post("read").status_code == 204
        assert 'data-unread="1"' not in c.get("/inbox").text  # the owner's count; not the agent's
        assert (
            agent.client.get("/api/conversations").json()["data"]["conversations"][0]["unread"] == 1
        )
        assert agent.client.post(f"/api/conversations/{cid}/claim").status_code == 200
        r = post("claim")
        assert r.status_code == 422 and "Already assigned to" in r.text, r.text
        owner = next(
            m
            for m in ws.session.get("/api/members").json()["data"]["members"]
            if m["role"] == "owner"
        )
        r = post("assign", assignee_id=owner["user_id"], reason="VIP customer")
        assert r.status_code == 200, r.text
        assert "reassigned it from" in r.text and "VIP customer" in r.text
        assert "Assigned to <strong>you</strong>" in r.text
        r = post("status", status="snoozed", snoozed_until="2099-01-02T09:30", tz="Asia/Kolkata")
        assert r.status_code == 200, r.text
        got = ws.session.get(f"/api/conversations/{cid}").json()["data"]["conversation"]
        assert got["status"] == "snoozed" and got["snoozed_until"] == "2099-01-02T04:00:00Z"
        r = post("status", status="snoozed")
        assert r.status_code == 422 and 'data-field="snoozed_until"' in r.text, r.text
        assert post("labels", add="Refund, late").status_code == 200
        r = post("labels", remove="refund")
        assert r.status_code == 200
        labels = ws.session.get(f"/api/conversations/{cid}").json()["data"]["conversation"]
        assert labels["labels"] == ["late"]
        r = post("notes", note="   ")
        assert r.status_code == 422 and "Write the note first" in r.text
        r = post("reply", mode="text", text="/no-such-code", idempotency_key=str(uuid.uuid4()))
        assert r.status_code == 422 and "no canned response" in r.text, r.text
        r = c.get("/inbox?assignee_id=not-an-id")
        assert r.status_code == 200 and 'data-field="assignee_id"' in r.text
        assert f'data-conversation-id="{cid}"' in c.get("/inbox?view=mine").text
        assert f'data-conversation-id="{cid}"' not in c.get("/inbox?view=unassigned").text
        assert f'data-conversation-id="{cid}"' in c.get("/inbox?q=order+%2377").text
    finally:
        c.close()
        agent.client.close()
