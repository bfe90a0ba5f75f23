"""The dashboard in a real browser (Debian's Chromium through Playwright), end to end: sign up →
create a key, see it once, use it over HTTP, revoke it → add and edit a contact → a sandbox
conversation whose reply reaches "read" → a template approved. Every page on the way is checked
with axe-core (no serious or critical violation) and at 390x844 (no horizontal scroll), and
screenshotted into test-results/screenshots/dashboard/ (gitignored) for a person to look at.

One server and one browser for the module: the flow is one user's first session, in order."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import date, timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import AXE, launch, require
from tests.servers import ROOT, Server, make_server

SHOTS = ROOT / "test-results" / "screenshots" / "dashboard"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
EXPECTED = (
    "Failed to load resource: the server responded with a status of 422",
    "Failed to load resource: the server responded with a status of 404",
)

require()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(
        "sqlite",
        tmp_path_factory.mktemp("dashboard"),
        AISOULE_EMULATOR_TEMPLATE_APPROVAL_SECONDS="1",
    )
    srv.cli("migrate")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch()


class Checked:
    """Pages checked so far (their route patterns), and the problems the browser logged."""

    def __init__(self, page: Page, origin: str) -> None:
        self.page = page
        self.origin = origin
        self.problems: list[str] = []
        self.foreign: list[str] = []
        self.seen: set[str] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(f"{page.url}: {e}"))
        page.on("request", self._request)

    def _console(self, message: object) -> None:
        text = getattr(message, "text", "")
        # The flow makes some on purpose: a refused form (422), a foreign id (404).
        if getattr(message, "type", "") == "error" and not text.startswith(EXPECTED):
            self.problems.append(f"{self.page.url}: {text}")

    def _request(self, request: object) -> None:
        url = getattr(request, "url", "")
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.netloc != self.origin:
            self.foreign.append(url)

    def __call__(self, name: str) -> None:
        """axe-core on the page as it is, then the phone-sized check, then screenshots."""
        page = self.page
        page.wait_for_load_state("networkidle")
        self.seen.add(_pattern(urlsplit(page.url).path))
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.evaluate(AXE.read_text())  # evaluated by the devtools protocol: no CSP applies
        result = page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"
        )
        bad = [v for v in result if v["impact"] in ("serious", "critical")]
        assert bad == [], f"{name}: accessibility violations {json.dumps(bad, indent=1)}"
        # What a template leaks when it renders a Python object instead of its value (the home
        # page once showed "<built-in method keys of dict object at 0x...>" as the key count).
        text = page.inner_text("body")
        # ("{{1}}" is WhatsApp's variable syntax, shown on purpose; Jinja's is "{{ name }}".)
        for leak in ("<built-in method", " object at 0x", "None</", "Undefined", "{{ ", "{%"):
            assert leak not in text, f"{name}: the page shows {leak!r}"
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(50)  # one layout at the new size (not a wait for a condition)
        overflow = page.evaluate(
            "() => ({doc: document.documentElement.scrollWidth, view: document.documentElement.clientWidth,"
            " wide: [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right"
            " > document.documentElement.clientWidth + 1 && getComputedStyle(e).position !== 'absolute')"
            ".slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id)})"
        )
        assert overflow["doc"] <= overflow["view"], f"{name}: horizontal scroll at 390px {overflow}"
        page.screenshot(path=str(SHOTS / f"{name}-phone.png"), full_page=True)
        page.set_viewport_size(DESKTOP)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _pattern(path: str) -> str:
    return _UUID.sub("{id}", path)


def _wait_for(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_new_users_first_session(browser: Browser, server: Server) -> None:
    context = browser.new_context(viewport=DESKTOP, base_url=server.url)
    page = context.new_page()
    page.set_default_timeout(20_000)
    check = Checked(page, urlsplit(server.url).netloc)

    # -- signing up ------------------------------------------------------------------------
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    check("login")
    page.goto("/forgot-password")
    expect(page.get_by_text("aisoule user reset-password")).to_be_visible()
    check("forgot-password")
    page.goto("/signup")
    page.get_by_label("Your name").fill("Asha Rao")
    page.get_by_label("Work email").fill("asha@example.com")
    page.get_by_label("Password").fill("short")
    page.get_by_label("Workspace name").fill("Asha's Shop")
    page.get_by_role("button", name="Create workspace").click()
    expect(page.locator("#f-password-error")).to_contain_text("at least 8")
    check("signup-error")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Create workspace").click()
    expect(page.get_by_role("heading", name="Get started")).to_be_visible()
    check("home-first-run")

    # -- Settings → API Keys: create, see once, use, revoke --------------------------------
    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Settings → API Keys"
    ).click()
    check("api-keys-empty")
    page.get_by_text("New API Key").click()
    page.get_by_label("Name").fill("CRM Integration")
    page.get_by_label("Expiry date").fill((date.today() + timedelta(days=30)).isoformat())
    page.get_by_role("button", name="Create key").click()
    secret_box = page.locator("#new-key")
    expect(secret_box).to_have_value(re.compile(r"^aisk_"))
    expect(page.get_by_text("it is shown only once")).to_be_visible()
    secret = secret_box.input_value()
    row = page.locator("#keys-table tr", has_text="CRM Integration")
    expect(row).to_contain_text("active")
    check("api-keys-created")
    with httpx.Client(base_url=server.url, headers={"X-API-Key": secret}, timeout=30) as api:
        assert api.get("/api/contacts").status_code == 200
        page.reload()
        assert secret not in page.content()  # shown once: never again
        page.once("dialog", lambda d: d.accept())
        row.get_by_role("button", name=re.compile("Revoke")).click()
        expect(row).to_contain_text("revoked")
        assert api.get("/api/contacts").status_code == 401
    row.get_by_role("link", name="CRM Integration").click()
    expect(page.locator("svg[role=img] desc")).to_contain_text("requests")

    def counted() -> bool:
        page.reload()
        # The revoked key's refused call is nobody's: only the first one counts.
        return (page.locator("svg desc").text_content() or "").startswith("1 request ")

    _wait_for(counted, "the key's request in its activity chart")
    check("api-key")
    page.goto("/settings/audit-log")
    expect(page.locator("table")).to_contain_text("api key revoked")
    check("audit-log")

    # -- contacts: add (an error first), edit -----------------------------------------------
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Contacts").click()
    check("contacts-empty")
    page.get_by_text("Add contact").first.click()
    page.get_by_label("Phone number").fill("12")
    page.locator("#new-name").fill("Priya Sharma")
    page.get_by_role("button", name="Add contact").click()
    expect(page.locator("#new-phone_number-error")).to_be_visible()
    page.get_by_label("Phone number").fill("+919876543210")
    page.get_by_role("button", name="Add contact").click()
    expect(page.get_by_role("heading", name="Priya Sharma")).to_be_visible()
    edit = page.locator("#contact-edit")
    edit.get_by_label("Tags").fill("customer, vip")
    edit.get_by_label("Stage").select_option("Customer")
    edit.get_by_label("Custom fields").fill("city: Pune")
    edit.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    expect(page.locator(".details")).to_contain_text("Pune")
    contact_url = page.url

    # -- the sandbox: Priya writes, the reply goes sent → delivered → read -------------------
    page.get_by_text("Sandbox: make this contact write to you").click()
    page.get_by_role("button", name="Receive it").click()
    expect(page.locator(".bubble.inbound")).to_have_count(1)
    page.get_by_label("Message", exact=True).fill("Hello Priya! Your order ships today.")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator(".bubble.outbound")).to_have_count(1)
    expect(page.locator(".bubble.outbound[data-status=read]")).to_have_count(1)
    check("contact")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Messages").click()
    expect(page.locator("tr[data-status=read]")).to_have_count(1)
    check("messages")

    # -- the contacts table: search, filters, bulk tag ---------------------------------------
    page.goto("/contacts")
    page.locator("#flt-q").fill("Priya")
    expect(page.locator("#results tbody tr")).to_have_count(1)
    page.locator("#flt-q").fill("")
    page.locator("#flt-field").fill("city")
    page.locator("#flt-value").fill("Pune")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#results tbody tr")).to_have_count(1)
    page.get_by_label("Select all on this page").check()
    page.get_by_label("Tag to add").fill("pune-list")
    page.get_by_role("button", name="Tag selected").click()
    expect(page.get_by_text("Tagged 1 contact")).to_be_visible()
    check("contacts")

    # -- numbers ---------------------------------------------------------------------------
    page.get_by_role("navigation", name="Main").get_by_role("link", name="WhatsApp numbers").click()
    expect(page.locator("table")).to_contain_text("sandbox")
    page.get_by_text("Connect a real number").click()
    page.get_by_label("Phone number ID").fill("not-digits")
    page.get_by_label("WhatsApp Business Account ID").fill("123")
    page.get_by_label("Access token").fill("token")
    page.get_by_role("button", name="Connect number").click()
    expect(page.locator("#num-phone_number_id-error")).to_be_visible()
    check("numbers")
    page.locator("table a").first.click()
    page.get_by_label("Customer's phone number").fill("+14155550123")
    page.get_by_role("button", name="Send to my sandbox number").click()
    expect(page.get_by_text("arrives in a moment")).to_be_visible()
    check("number")

    # -- templates: create with a live preview, see it approved ------------------------------
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Templates").click()
    page.get_by_role("link", name="New template").click()
    page.locator("#tpl-name").fill("order_update")
    page.locator("#tpl-header_text").fill("Order update")
    page.locator("#tpl-body").fill("Hi {{1}}, your order {{2}} is on its way.")
    page.get_by_label("Body variable examples").fill("Priya\n#1042")
    page.get_by_label("Footer").fill("Reply STOP to opt out")
    page.get_by_label("Quick-reply buttons").fill("Track order")
    expect(page.locator(".wa-body")).to_have_text("Hi Priya, your order #1042 is on its way.")
    expect(page.locator(".wa-buttons li")).to_have_text(["Track order"])
    check("template-new")
    page.get_by_role("button", name="Submit to Meta for review").click()
    expect(page.get_by_role("heading", name=re.compile("order_update"))).to_be_visible()
    expect(page.locator("#status")).to_contain_text("approved")
    check("template")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Templates").click()
    page.get_by_role("button", name="Sync with Meta").click()
    expect(page.get_by_text("Synced with Meta")).to_be_visible()
    expect(page.locator("tr[data-template=order_update]")).to_contain_text("approved")
    check("templates")

    # -- a second workspace, the switcher, a foreign id, logging out --------------------------
    page.get_by_role("link", name="New workspace").click()
    check("workspace-new")
    page.get_by_label("Workspace name").fill("Second Shop")
    page.get_by_role("button", name="Create workspace").click()
    expect(page.get_by_role("heading", name="Second Shop")).to_be_visible()
    page.goto(contact_url)  # Priya belongs to the first workspace
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    check("not-found")
    page.goto("/")
    page.get_by_label("Workspace", exact=True).select_option(label="Asha's Shop")
    page.get_by_role("button", name="Switch").click()
    expect(page.get_by_role("heading", name="Asha's Shop")).to_be_visible()
    check("home")
    page.get_by_role("button", name=re.compile("Log out")).click()
    expect(page).to_have_url(re.compile(r"/login$"))

    assert check.foreign == [], check.foreign
    assert check.problems == [], "\n".join(check.problems)
    pages = {
        "/",
        "/login",
        "/signup",
        "/forgot-password",
        "/settings/api-keys",
        "/settings/api-keys/{id}",
        "/settings/audit-log",
        "/contacts",
        "/contacts/{id}",
        "/messages",
        "/numbers",
        "/numbers/{id}",
        "/templates",
        "/templates/new",
        "/templates/{id}",
        "/workspaces/new",
    }
    assert pages <= check.seen, f"pages never checked: {sorted(pages - check.seen)}"
    context.close()


def _approved_template(api: httpx.Client, name: str, body: str, examples: list[str]) -> str:
    r = api.post(
        "/api/templates",
        json={
            "name": name,
            "language": "en_US",
            "category": "MARKETING",
            "components": [
                {"type": "BODY", "text": body, "example": {"body_text": [examples]}},
                {"type": "FOOTER", "text": "Reply STOP to opt out"},
            ],
        },
    )
    assert r.status_code == 201, r.text
    tid = r.json()["data"]["template"]["id"]
    _wait_for(
        lambda: api.get(f"/api/templates/{tid}").json()["data"]["template"]["status"] == "APPROVED",
        "the template's approval",
    )
    return str(tid)


def test_campaigns_wizard_progress_and_steering(
    browser: Browser, server: Server, make_workspace: object
) -> None:
    """The campaign pages: the empty list, the wizard (live count, variables with a sample,
    pre-flight, an error next to its field), a campaign that runs to completed with stats that
    add up, and pause / resume / cancel / retarget on one held running by a slow number."""
    ws = make_workspace()  # type: ignore[operator]
    with ws.client() as api:
        for i, first in enumerate(("Priya", "Ravi", None)):
            body: dict[str, object] = {"phone_number": f"+9198200000{i:02d}", "tags": ["camp"]}
            if first:
                body["name"] = f"{first} Kumar"
            assert api.post("/api/contacts", json=body).status_code == 201
        _approved_template(api, "festive_offer", "Hi {{1}}, use {{2}} today.", ["Priya", "X"])
        account = api.get("/api/accounts").json()["data"]["accounts"][0]["id"]

    context = browser.new_context(viewport=DESKTOP, base_url=server.url)
    page = context.new_page()
    page.set_default_timeout(20_000)
    check = Checked(page, urlsplit(server.url).netloc)
    page.goto("/login")
    page.get_by_label("Email").fill(ws.email)
    page.get_by_label("Password").fill(ws.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Get started")).to_be_visible()

    # -- the empty list, then the wizard ---------------------------------------------------
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
    expect(page.get_by_role("heading", name="No campaigns yet")).to_be_visible()
    check("campaigns-empty")
    page.get_by_role("link", name="Create your first campaign").click()
    bubble = page.locator(".template-preview .wa-body")  # the mapping below, not [1]/[2]
    expect(bubble).to_have_text("Hi [first name], use [first name] today.")
    page.get_by_label("Campaign name").fill("Festive offer")
    page.get_by_label("Any of these tags").fill("camp")
    expect(page.locator("#audience-count")).to_contain_text("3 contacts match")
    first, second = page.locator("[data-param='body[0]']"), page.locator("[data-param='body[1]']")
    first.get_by_label("Fill with").select_option("first_name")
    first.get_by_label("When the contact has none").fill("there")
    second.get_by_label("Fill with").select_option("value")
    expect(second.get_by_label("When the contact has none")).to_be_hidden()
    expect(bubble).to_have_text("Hi [first name], use X today.")  # the example until typed
    # A fixed value left empty: the service names parameters.body[1], shown in its row.
    page.get_by_label("Start now").check()
    page.get_by_role("button", name="Create campaign").click()
    expect(page.locator("[data-param='body[1]'] .error")).to_contain_text("must not be empty")
    check("campaign-new-error")
    page.locator("[data-param='body[1]']").get_by_label("Value").fill("FEST10")
    expect(bubble).to_have_text("Hi [first name], use FEST10 today.")
    expect(page.locator("#preview .wa-body")).to_have_text("Hi Priya, use FEST10 today.")
    expect(page.locator("[data-preflight=opted_out]")).to_have_text("0")
    expect(page.locator("[data-preflight=duration]")).to_contain_text("second")
    check("campaign-new")
    page.get_by_role("button", name="Create campaign").click()

    # -- it runs to completed, live, and the stats add up ------------------------------------
    expect(page.get_by_role("heading", name="Festive offer")).to_be_visible()
    page.evaluate("window.__noReload = true")
    expect(page.locator("#progress[data-status=completed]")).to_have_count(1)
    expect(page.locator("[data-bucket=read] .n")).to_have_text("3")
    assert page.evaluate("window.__noReload") is True  # polled, never reloaded
    stats = {
        b: int(page.locator(f"[data-bucket={b}] .n").inner_text().replace(",", ""))
        for b in ("skipped", "pending", "sent", "delivered", "read", "failed", "unknown")
    }
    assert sum(stats.values()) == int(page.locator("[data-stat=total]").inner_text()) == 3
    expect(page.locator("#timeline-desc")).to_contain_text("3 read")
    page.get_by_label("Outcome", exact=True).select_option("read")
    expect(page.locator("#recipients tbody tr[data-status=read]")).to_have_count(3)
    check("campaign")
    with ws.client() as api:
        sent = api.get("/api/messages", params={"per_page": 10}).json()["data"]["messages"]
        texts = sorted(m.get("preview") or "" for m in sent)
    assert any("Hi there, use FEST10" in t for t in texts), texts

    # -- a held campaign: pause, resume, cancel (confirmed), retarget --------------------------
    with ws.client() as api:
        for i in range(60):
            api.post("/api/contacts", json={"phone_number": f"+9198300{i:05d}", "tags": ["held"]})
        assert api.put(f"/api/accounts/{account}", json={"throughput": 1}).status_code == 200
        r = api.post(
            "/api/campaigns",
            json={
                "name": "Held",
                "template": {"name": "festive_offer", "language": "en_US"},
                "audience": {"tags": ["held"]},
                "parameters": {
                    "body": [{"field": "first_name", "fallback": "you"}, {"value": "A"}]
                },
                "start": True,
            },
        )
        assert r.status_code == 201, r.text
        held = r.json()["data"]["campaign"]["id"]
    try:
        page.goto("/campaigns?status=running")
        expect(page.locator("tr[data-campaign=Held]")).to_have_count(1)
        check("campaigns")
        page.get_by_role("link", name="Held").click()
        page.evaluate("window.__noReload = true")
        page.get_by_role("button", name="Pause").click()
        expect(page.locator("#progress[data-status=paused]")).to_have_count(1)
        expect(page.get_by_text("Paused: nothing more is sent")).to_be_visible()
        page.get_by_role("button", name="Resume").click()
        expect(page.locator("#progress[data-status=running]")).to_have_count(1)
        check("campaign-running")
        page.once("dialog", lambda d: d.accept())
        page.get_by_role("button", name="Cancel campaign").click()
        expect(page.locator("#progress[data-status=cancelled]")).to_have_count(1)
        assert page.evaluate("window.__noReload") is True
        page.get_by_role("link", name="Retarget failed and unknown").click()
        expect(page.get_by_label("Recipients of an earlier campaign")).to_have_value(held)
        expect(page.get_by_label("failed")).to_be_checked()
        expect(page.get_by_label("unknown")).to_be_checked()
        expect(page.get_by_label("Campaign name")).to_have_value("Held (retarget)")
        check("campaign-retarget")
        # Saved as a draft, then edited: the same wizard, filled from the campaign.
        page.get_by_role("button", name="Create campaign").click()
        expect(page.get_by_role("heading", name="Held (retarget)")).to_be_visible()
        page.get_by_role("link", name="Edit", exact=True).click()
        expect(page.get_by_role("heading", name="Edit campaign")).to_be_visible()
        expect(page.get_by_label("Recipients of an earlier campaign")).to_have_value(held)
        expect(page.locator("[data-param='body[1]']").get_by_label("Value")).to_have_value("A")
        check("campaign-edit")
        page.get_by_label("Campaign name").fill("Held, second try")
        page.get_by_role("button", name="Save changes").click()
        expect(page.get_by_role("heading", name="Held, second try")).to_be_visible()
        expect(page.locator("#progress[data-status=draft]")).to_have_count(1)
    finally:
        with ws.client() as api:
            api.post(f"/api/campaigns/{held}/cancel")
            api.put(f"/api/accounts/{account}", json={"throughput": 80})

    assert check.foreign == [], check.foreign
    assert check.problems == [], "\n".join(check.problems)
    pages = {"/campaigns", "/campaigns/new", "/campaigns/{id}", "/campaigns/{id}/edit"}
    assert pages <= check.seen, f"pages never checked: {sorted(pages - check.seen)}"
    context.close()
