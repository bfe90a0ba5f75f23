"""The API docs pages work offline: /docs and /redoc load only assets this server serves (from
npm, no CDN), under a CSP that admits nothing from elsewhere; without the assets, /docs says how
to install them; AISOULE_ASSETS_DIR points at them for installs outside a source checkout."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import ROOT, Server, make_server

PAGES = ("/docs", "/redoc")
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class _Assets(HTMLParser):
    """The URLs a page loads (script src, link href, img src) and its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        url = a.get("src") if tag in ("script", "img") else a.get("href") if tag == "link" else None
        if url:
            self.urls.append(url)
        self._in_script = tag == "script" and not a.get("src")
        if self._in_script:
            self.inline.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline[-1] += data


def _parse(html: str) -> _Assets:
    parser = _Assets()
    parser.feed(html)
    return parser


def _sqlite_server(tmp: Path, **env: str) -> Server:
    srv = make_server("sqlite", tmp, **env)
    srv.cli("migrate")
    srv.start()
    return srv


@pytest.mark.parametrize("page", PAGES)
def test_docs_pages_load_only_same_origin_assets_that_answer(anon: httpx.Client, page: str) -> None:
    r = anon.get(page)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assets = _parse(r.text)
    assert any(u.endswith(".js") for u in assets.urls), assets.urls
    for url in assets.urls:
        # Same origin: a path on this server, never a scheme or a protocol-relative host.
        assert url.startswith("/") and not url.startswith("//"), url
        asset = anon.get(url)
        suffix = Path(url).suffix
        assert asset.status_code == 200, (url, asset.status_code)
        assert asset.headers["content-type"].startswith(CONTENT_TYPES[suffix]), (url, asset.headers)
        assert len(asset.content) > 500, url
    # The CSP names no other origin, and admits the page's inline scripts by hash only.
    csp = r.headers["content-security-policy"]
    assert "http" not in csp and "*" not in csp, csp
    script_src = re.search(r"script-src ([^;]*)", csp)
    assert script_src is not None and "'unsafe-inline'" not in script_src.group(1), csp
    for script in assets.inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in script_src.group(1), (script, csp)
    assert "fonts.googleapis" not in r.text


def test_every_reference_in_the_openapi_document_resolves(anon: httpx.Client) -> None:
    """ReDoc refuses to render a document with a dangling $ref (FastAPI's HTTPValidationError)."""
    spec = anon.get("/openapi.json").json()
    dangling: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                target: Any = spec
                for part in ref.removeprefix("#/").split("/"):
                    target = target.get(part) if isinstance(target, dict) else None
                if target is None:
                    dangling.append(f"{where}: {ref}")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(spec, "")
    assert dangling == []


@pytest.fixture(scope="module")
def no_assets_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("no-assets")
    (tmp / "empty").mkdir()
    srv = _sqlite_server(tmp, AISOULE_ASSETS_DIR=str(tmp / "empty"))
    yield srv
    srv.stop()


def test_without_the_assets_the_docs_pages_say_how_to_install_them(
    no_assets_server: Server,
) -> None:
    with httpx.Client(base_url=no_assets_server.url, timeout=30) as c:
        for page in PAGES:
            r = c.get(page)
            assert r.status_code == 503, (page, r.text)
            assert r.headers["content-type"].startswith("text/html")
            for hint in ("npm ci", "make run", "AISOULE_ASSETS_DIR", "/openapi.json"):
                assert hint in r.text, (page, hint)
            assert _parse(r.text).urls == [], "the page itself loads nothing"
        assert c.get("/static/vendor/swagger-ui-bundle.js").status_code == 404
        assert c.get("/openapi.json").status_code == 200


@pytest.fixture(scope="module")
def elsewhere_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Assets installed outside the checkout; a marker shows which copy is served."""
    tmp = tmp_path_factory.mktemp("assets-elsewhere")
    assets = tmp / "node_modules"
    for rel in (
        "swagger-ui-dist/swagger-ui-bundle.js",
        "swagger-ui-dist/swagger-ui.css",
        "swagger-ui-dist/favicon-32x32.png",
        "redoc/bundles/redoc.standalone.js",
    ):
        (assets / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "node_modules" / rel, assets / rel)
    with (assets / "redoc/bundles/redoc.standalone.js").open("a") as f:
        f.write("\n/* the copy elsewhere */\n")
    srv = _sqlite_server(tmp, AISOULE_ASSETS_DIR=str(assets))
    yield srv
    srv.stop()


def test_assets_dir_setting_serves_assets_installed_elsewhere(elsewhere_server: Server) -> None:
    with httpx.Client(base_url=elsewhere_server.url, timeout=30) as c:
        assert c.get("/docs").status_code == 200
        r = c.get("/redoc")
        assert r.status_code == 200
        (script,) = [u for u in _parse(r.text).urls if u.endswith(".js")]
        assert c.get(script).text.endswith("/* the copy elsewhere */\n")
