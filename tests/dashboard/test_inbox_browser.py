"""The team inbox in two real browsers (Debian's Chromium through Playwright): two people of one
workspace (the owner signs up, the second joins through the invitation link) answer a customer
who writes through the emulator, without reloading a page:

the conversation appears in both lists → A takes it → B sees it taken and cannot reply (the
setting "only the assignee may reply" is on) → A replies and the ticks reach read, and a double
post of one composed message sends once → a private note reaches B and never the emulator →
outside the 24-hour window the composer offers approved templates only, prefilled from the
contact → the live connection is killed mid-stream (a TCP proxy between the browsers and the
server drops every connection; the reconnects are refused until events were missed) and the
browser gets the missed events on reconnect, none twice.

Every new page is checked with axe-core (no serious or critical violation) and at 390x844 (no
horizontal scroll), and screenshotted into test-results/screenshots/dashboard/inbox-*.png."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    expect,
)
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from aisoule.config import normalize_database_url
from aisoule.kit.time import utcnow
from aisoule.models import Conversation
from tests.browser import AXE, launch, require
from tests.inbox.helpers import customer_writes, new_customer, wait_for
from tests.servers import ROOT, Server, make_server

SHOTS = ROOT / "test-results" / "screenshots" / "dashboard"
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
LIVE_MS = 5_000  # the page updates within 1 s; the budget allows for a loaded 2-core machine
PASSWORD = "correct horse battery staple"

require()


class Proxy:
    """A TCP proxy in front of the server: ``drop()`` cuts every open connection, as a flaky
    network or a restarted load balancer does, mid-stream."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        with self.lock:
            conns, self.open = self.open, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.listener.close()
        self.drop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(
        "sqlite",
        tmp_path_factory.mktemp("inbox-browser"),
        AISOULE_EMULATOR_TEMPLATE_APPROVAL_SECONDS="1",
    )
    srv.cli("migrate")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def proxy(server: Server) -> Iterator[Proxy]:
    p = Proxy(server.port)
    yield p
    p.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch()


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _pattern(path: str) -> str:
    return re.sub(r"/\d+(?=/|$)", "/{id}", _UUID.sub("{id}", path))


class Person:
    """One browser context: a person, their page, what it logged, the pages checked."""

    def __init__(self, browser: Browser, base_url: str, name: str) -> None:
        self.context: BrowserContext = browser.new_context(viewport=DESKTOP, base_url=base_url)
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.name = name
        self.problems: list[str] = []
        self.seen: set[str] = set()
        self.page.on("pageerror", lambda e: self.problems.append(f"{self.page.url}: {e}"))
        self.page.on("console", self._console)

    def _console(self, message: object) -> None:
        text = getattr(message, "text", "")
        if getattr(message, "type", "") != "error":
            return
        # Made on purpose: a refused form (422), the events stream cut by the test.
        if "status of 422" in text or "net::ERR" in text or "EventSource" in text:
            return
        self.problems.append(f"{self.page.url}: {text}")

    def check(self, name: str) -> None:
        """axe-core, no leaked template syntax, no horizontal scroll at 390 px, screenshots.
        (No "networkidle" here: the live connection stays open by design.)"""
        page = self.page
        page.wait_for_load_state("load")
        self.seen.add(_pattern(urlsplit(page.url).path))
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.evaluate(AXE.read_text())
        result = page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"
        )
        bad = [v for v in result if v["impact"] in ("serious", "critical")]
        assert bad == [], f"{name}: accessibility violations {json.dumps(bad, indent=1)}"
        text = page.inner_text("body")
        for leak in ("<built-in method", " object at 0x", "None</", "Undefined", "{{", "{%"):
            assert leak not in text, f"{name}: the page shows {leak!r}"
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"inbox-{name}.png"), full_page=True)
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(50)  # one layout at the new size
        overflow = page.evaluate(
            "() => ({doc: document.documentElement.scrollWidth, view: document.documentElement.clientWidth,"
            " wide: [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right"
            " > document.documentElement.clientWidth + 1 && getComputedStyle(e).position !== 'absolute')"
            ".slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id)})"
        )
        assert overflow["doc"] <= overflow["view"], f"{name}: horizontal scroll at 390px {overflow}"
        page.screenshot(path=str(SHOTS / f"inbox-{name}-phone.png"), full_page=True)
        page.set_viewport_size(DESKTOP)

    def live(self) -> None:
        expect(self.page.locator("#live-status")).to_have_attribute("data-state", "live")

    def mark(self) -> None:
        """A flag that survives only as long as the page is not reloaded."""
        self.page.evaluate("window.__notReloaded = true")

    def not_reloaded(self) -> bool:
        return bool(self.page.evaluate("window.__notReloaded === true"))

    def csrf(self) -> str:
        return next(c["value"] for c in self.context.cookies() if c["name"] == "csrf_token")

    def api(self, method: str, path: str, body: dict[str, object] | None = None) -> dict[str, Any]:
        r = self.page.request.fetch(
            path, method=method, data=body, headers={"X-CSRF-Token": self.csrf()}
        )
        assert r.ok, (path, r.status, r.text())
        return dict(r.json())


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

    # Playwright's sync API runs an event loop in this thread: the update runs in another.
    failed: list[BaseException] = []

    def in_thread() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # re-raised below, in the test's thread
            failed.append(exc)

    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join(30)
    if failed:
        raise failed[0]


def _sent(server: Server) -> list[dict[str, object]]:
    r = httpx.get(f"{server.url}/emulator/_emulator/messages", timeout=10)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def test_two_agents_answer_a_customer_together_live(
    browser: Browser, server: Server, proxy: Proxy
) -> None:
    a = Person(browser, proxy.url, "A")
    b = Person(browser, proxy.url, "B")
    pa, pb = a.page, b.page

    # -- A signs up; turns "only the assignee may reply" on; invites B -----------------------
    pa.goto("/signup")
    pa.get_by_label("Your name").fill("Asha Rao")
    pa.get_by_label("Work email").fill("asha@example.com")
    pa.get_by_label("Password").fill(PASSWORD)
    pa.get_by_label("Workspace name").fill("Asha's Shop")
    pa.get_by_role("button", name="Create workspace").click()
    expect(pa.get_by_role("heading", name="Get started")).to_be_visible()
    pa.get_by_role("navigation", name="Main").get_by_role("link", name="Team").click()
    pa.get_by_label("Only the assignee may reply").check()
    pa.get_by_role("button", name="Save settings").click()
    expect(pa.get_by_text("Inbox settings saved.")).to_be_visible()
    pa.get_by_label("Email", exact=True).fill("bala@example.com")
    pa.get_by_label("Role").first.select_option("agent")
    pa.get_by_role("button", name="Invite").click()
    expect(pa.get_by_text("it is shown only once")).to_be_visible()
    link = pa.locator("#invite-link").input_value()
    assert "/invitations/accept#inv_" in link
    expect(pa.locator("tr[data-invitation='bala@example.com']")).to_contain_text("pending")
    a.check("team")
    pa.goto("/team")  # (not a reload: that would post the invitation again)
    assert link not in pa.content()  # shown once

    # -- B accepts the invitation in their own browser ---------------------------------------
    pb.goto("/invitations/accept#" + link.split("#", 1)[1])
    b.check("invitation-accept")
    pb.get_by_label("Your name").fill("Bala Iyer")
    pb.get_by_label("Password").fill("another good password")
    pb.get_by_role("button", name="Join the workspace").click()
    expect(pb).to_have_url(re.compile(r"/inbox$"))
    nav_b = pb.get_by_role("navigation", name="Main")
    expect(nav_b.get_by_role("link", name="Inbox")).to_be_visible()
    expect(nav_b.get_by_role("link", name=re.compile("API Keys"))).to_have_count(0)

    # -- both on the inbox; a customer writes through the emulator ---------------------------
    pa.goto("/inbox")
    a.live()
    b.live()
    a.check("inbox-empty")
    a.mark()
    b.mark()
    accounts = a.api("GET", "/api/accounts")["data"]["accounts"]
    number = str(next(x for x in accounts if x["provider"] == "emulator")["phone_number_id"])
    customer = new_customer()
    customer_writes(server, number, customer, "Hi, where is my order #1042?")
    for p in (pa, pb):
        row = p.locator("li.conv", has_text="Priya")
        expect(row).to_be_visible(timeout=LIVE_MS)
        expect(row.locator(".unread-count")).to_have_text(re.compile("^1"))
        expect(row).to_contain_text("Unassigned")
    assert a.not_reloaded() and b.not_reloaded()
    cid = pa.locator("li.conv").first.get_attribute("data-conversation-id")
    assert cid

    # -- both open it; opening marks the customer's message read -----------------------------
    pa.locator("li.conv", has_text="Priya").get_by_role("link").click()
    pb.locator("li.conv", has_text="Priya").get_by_role("link").click()
    expect(pa.locator("#pane-title")).to_have_text("Priya")
    for p in (pa, pb):
        expect(p.locator("li.conv.current .unread-count")).to_have_count(0, timeout=LIVE_MS)
    wait_for(
        lambda: httpx.get(f"{server.url}/emulator/_emulator/reads", timeout=10).json()["data"],
        "the read mark at the emulator",
    )
    a.live()
    b.live()
    a.mark()
    b.mark()

    # -- A takes it: B sees who has it and cannot reply ---------------------------------------
    pa.get_by_role("button", name="Take it").click()
    expect(pa.locator("#assignee-text")).to_contain_text("Assigned to you")
    expect(pb.locator("#assignee-text")).to_contain_text("Taken by Asha Rao", timeout=LIVE_MS)
    expect(pb.locator("#reply-blocked")).to_contain_text("Asha Rao", timeout=LIVE_MS)
    expect(pb.locator("#reply-form")).to_have_count(0)
    expect(pb.locator("li.event", has_text="Asha Rao took it")).to_be_visible()
    b.check("conversation-taken")
    # The route refuses it too, not only the page (the service's rule).
    r = pb.request.post(
        f"/inbox/{cid}/reply",
        form={"csrf_token": b.csrf(), "mode": "text", "text": "Me too!"},
        headers={"HX-Request": "true"},
    )
    assert r.status == 422 and "Only the assignee" in r.text()

    # -- A replies: the ticks move to read, in both browsers ----------------------------------
    pa.get_by_label("Reply", exact=True).fill("Hello Priya! It ships today.")
    pa.get_by_role("button", name="Send", exact=True).click()
    expect(pa.get_by_label("Reply", exact=True)).to_have_value("")
    for p in (pa, pb):
        bubble = p.locator(".bubble.outbound", has_text="It ships today")
        expect(bubble).to_have_count(1, timeout=LIVE_MS)
        expect(bubble).to_have_attribute("data-status", "read", timeout=15_000)
        expect(bubble.locator(".ticks.read")).to_have_count(1)
    a.check("conversation")

    # A double click or a retry: one composed message (one Idempotency-Key), sent once.
    # (As the composer's form does: the key of one composed message, sent twice.)
    assert re.fullmatch(r"[0-9a-f-]{36}", pa.locator("[data-idempotency-key]").input_value())
    key = str(uuid.uuid4())
    for _ in range(2):
        r = pa.request.post(
            f"/inbox/{cid}/reply",
            form={
                "csrf_token": a.csrf(),
                "mode": "text",
                "text": "Sent once, whatever happens",
                "idempotency_key": key,
            },
            headers={"HX-Request": "true"},
        )
        assert r.status == 200, r.text()
    wait_for(
        lambda: any("Sent once" in json.dumps(m) for m in _sent(server)), "the message at Meta"
    )
    assert sum("Sent once" in json.dumps(m) for m in _sent(server)) == 1
    expect(pb.locator(".bubble.outbound", has_text="Sent once")).to_have_count(1, timeout=LIVE_MS)

    # A reply to a specific message quotes it (Meta's context).
    pa.locator(".bubble.inbound").first.get_by_role("button", name=re.compile("Reply")).click()
    expect(pa.locator("#replying")).to_contain_text("where is my order")
    pa.get_by_label("Reply", exact=True).fill("About #1042: tomorrow.")
    pa.get_by_role("button", name="Send", exact=True).click()
    quoted = pa.locator(".bubble.outbound", has_text="tomorrow")
    expect(quoted.locator(".quote")).to_contain_text("where is my order", timeout=LIVE_MS)

    # -- a private note: B sees it; the customer never does -----------------------------------
    secret = f"Customer sounds upset {uuid.uuid4().hex[:6]}"
    pa.get_by_label(re.compile("Private note")).fill(secret)
    pa.get_by_role("button", name="Add note").click()
    expect(pb.locator("li.note", has_text=secret)).to_be_visible(timeout=LIVE_MS)
    expect(pb.locator("li.note", has_text=secret)).to_contain_text("Asha Rao")
    assert secret not in json.dumps(_sent(server))

    # -- labels and status, with who and why on the timeline ----------------------------------
    pa.get_by_label("Add labels").fill("vip, Delivery")
    pa.get_by_role("button", name="Add", exact=True).click()
    expect(pb.locator(".labels")).to_contain_text("delivery", timeout=LIVE_MS)
    pa.get_by_label("Set status").select_option("pending")
    pa.get_by_text("Snooze until, or say why").click()
    pa.locator("input[name=reason][id^=st-why]").fill("waiting for the courier")
    pa.get_by_role("button", name="Change status").click()
    expect(pb.locator("li.event", has_text="waiting for the courier")).to_contain_text(
        "Asha Rao changed the status from open to pending", timeout=LIVE_MS
    )
    assert a.not_reloaded() and b.not_reloaded()

    # -- the list: views, filters and search --------------------------------------------------
    pb.goto("/inbox?view=mine")
    expect(pb.locator("li.conv")).to_have_count(0)
    pb.goto("/inbox?view=all&label=vip")
    expect(pb.locator("li.conv")).to_have_count(1)
    pb.goto("/inbox?q=where+is+my+order")
    expect(pb.locator("li.conv")).to_have_count(1)
    b.check("inbox-search")
    pb.goto("/inbox?q=nothing+like+this")
    expect(pb.locator("li.conv")).to_have_count(0)
    pb.goto(f"/inbox/{cid}")
    b.live()

    # -- the live connection killed mid-stream: the missed events arrive once -----------------
    before = pb.evaluate("window.aisouleLive.log.length")
    pb.route("**/api/events**", lambda route: route.abort())  # reconnects fail for now
    proxy.drop()
    expect(pb.locator("#live-status")).to_have_attribute("data-state", "down")
    expect(pb.locator("#live-status")).to_contain_text("refreshes every 5 seconds")
    b.check("live-down")
    customer_writes(server, number, customer, "Hello? Anyone there?")
    a.api("POST", f"/api/conversations/{cid}/notes", {"body": "Missed note while B was offline"})
    # Meanwhile the page polls: the new message shows up without the stream (within ~5 s).
    expect(pb.locator(".bubble.inbound", has_text="Anyone there")).to_have_count(1, timeout=15_000)
    assert pb.evaluate("window.aisouleLive.state") == "down"
    pb.unroute("**/api/events**")
    b.live()
    expect(pb.locator(".bubble.inbound", has_text="Anyone there")).to_have_count(1, timeout=LIVE_MS)
    expect(pb.locator("li.note", has_text="Missed note")).to_have_count(1, timeout=LIVE_MS)
    wait_for(
        lambda: pb.evaluate("window.aisouleLive.log.length") >= before + 2,
        "the events missed while the stream was down, replayed",
    )
    log = pb.evaluate("window.aisouleLive.log")
    assert pb.evaluate("window.aisouleLive.dupes") == 0
    assert len(log) > before
    assert log == list(range(log[0], log[0] + len(log))), log  # each event once, none missing
    assert pb.evaluate("window.aisouleLive.connects") >= 2

    # -- outside the 24-hour window: approved templates only, prefilled -----------------------
    a.api(
        "POST",
        "/api/templates",
        {
            "name": "order_followup",
            "language": "en_US",
            "category": "UTILITY",
            "components": [
                {
                    "type": "BODY",
                    "text": "Hi {{1}}, your order {{2}} is on its way.",
                    "example": {"body_text": [["Priya", "#1042"]]},
                }
            ],
        },
    )
    wait_for(
        lambda: any(
            t["status"] == "APPROVED"
            for t in a.api("GET", "/api/templates")["data"]["templates"]
            if t["name"] == "order_followup"
        ),
        "the template's approval",
    )
    _age_window(server, cid, 25)
    pa.goto(f"/inbox/{cid}")
    expect(pa.locator("#window-closed")).to_be_visible()
    expect(pa.locator("#reply-text")).to_have_count(0)
    expect(pa.get_by_label("Approved template")).to_have_value("order_followup|en_US")
    fieldset = pa.locator("fieldset[data-template='order_followup|en_US']")
    expect(fieldset.get_by_label("Variable 1")).to_have_value("Priya")
    fieldset.get_by_label("Variable 2").fill("#1042")
    a.check("conversation-window-closed")
    pa.get_by_role("button", name="Send template").click()
    expect(pb.locator(".bubble.outbound", has_text="your order #1042 is on its way")).to_have_count(
        1, timeout=LIVE_MS
    )

    # -- canned responses: saved on their page, sent by short code ----------------------------
    pb.goto("/canned-responses")
    pb.get_by_label("Short code").fill("thanks")
    pb.get_by_label("Text").fill("Thank you for writing to Asha's Shop!")
    pb.get_by_role("button", name="Save canned response").click()
    expect(pb.locator("li.canned[data-code=thanks]")).to_be_visible()
    b.check("canned")
    customer_writes(server, number, customer, "Thanks!")
    pa.goto(f"/inbox/{cid}")
    expect(pa.locator("#reply-text")).to_be_visible()  # their message opened the window again
    pa.get_by_label("Reply", exact=True).fill("/thanks")
    pa.get_by_role("button", name="Send", exact=True).click()
    expect(pa.locator(".bubble.outbound", has_text="Thank you for writing")).to_have_count(
        1, timeout=LIVE_MS
    )

    # -- B's team page: no management; A's nav has it all ------------------------------------
    pb.goto("/team")
    expect(pb.get_by_text("Invite someone")).to_have_count(0)
    b.check("team-agent")
    assert pb.request.get("/settings/api-keys").status == 403

    for person in (a, b):
        assert person.problems == [], "\n".join(person.problems)
    seen = a.seen | b.seen
    pages = {"/inbox", "/inbox/{id}", "/team", "/canned-responses", "/invitations/accept"}
    assert pages <= seen, f"pages never checked: {sorted(pages - seen)}"
    a.context.close()
    b.context.close()
