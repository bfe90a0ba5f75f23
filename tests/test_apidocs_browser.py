"""/docs and /redoc rendered by a real browser (Debian's Chromium through Playwright): the API's
operations are on screen, nothing is fetched from another origin, and the CSP refuses nothing.
Screenshots go to test-results/screenshots/ (gitignored) for a person to look at."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route

from tests.browser import launch, require
from tests.servers import ROOT, Server, make_server

SHOTS = ROOT / "test-results" / "screenshots"
# ReDoc's "API docs by Redocly" footer has a logo from its CDN, hard-coded: the CSP refuses it
# (as it should: no CDN), and ReDoc then shows the link without the image.
REDOC_LOGO_REFUSED = "Loading the image 'https://cdn.redoc.ly/redoc/logo-mini.svg' violates"

require(axe=False)


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The pages do not touch the database: one server on SQLite is enough."""
    srv = make_server("sqlite", tmp_path_factory.mktemp("browser"))
    srv.cli("migrate")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch()


def _open(browser: Browser, server: Server, path: str) -> tuple[Page, list[str], list[str]]:
    """A page on `path`; the problems it logs (errors, CSP refusals) and other-origin requests,
    which are aborted so that a test never depends on the network."""
    origin = urlsplit(server.url).netloc
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    foreign: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    def route(r: Route) -> None:
        url = r.request.url
        if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc != origin:
            foreign.append(url)
            r.abort()
        else:
            r.continue_()

    page.route("**/*", route)
    page.goto(server.url + path)
    return page, problems, foreign


def test_swagger_ui_renders_the_operations(browser: Browser, docs_server: Server) -> None:
    page, problems, foreign = _open(browser, docs_server, "/docs")
    contacts = page.locator(".opblock-summary-path[data-path='/api/contacts']")
    contacts.first.wait_for(state="visible", timeout=30_000)
    assert page.locator(".opblock").count() > 20
    assert page.locator(".opblock-summary-path[data-path='/v1/contacts']").count() >= 2
    contacts.first.scroll_into_view_if_needed()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "docs.png"))
    assert problems == [] and foreign == []


def test_redoc_renders_the_operations(browser: Browser, docs_server: Server) -> None:
    page, problems, foreign = _open(browser, docs_server, "/redoc")
    # ReDoc renders every operation as a section headed by its summary (anchored by its id).
    spec = httpx.get(docs_server.url + "/openapi.json", timeout=30).json()
    listed = spec["paths"]["/api/contacts"]["get"]
    heading = page.locator(f"h2:has(a[href$='/operation/{listed['operationId']}'])").first
    heading.wait_for(state="visible", timeout=30_000)
    assert heading.inner_text().strip() == listed["summary"]
    operations = sum(len(ops) for ops in spec["paths"].values())
    assert page.locator("h2:has(a[href*='/operation/'])").count() == operations
    heading.scroll_into_view_if_needed()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "redoc.png"))
    assert [p for p in problems if not p.startswith(REDOC_LOGO_REFUSED)] == []
    assert foreign == []
