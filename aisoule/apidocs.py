"""The API docs pages, /docs (Swagger UI) and /redoc, with their browser assets served by this app.

The assets come from the npm registry, pinned in package-lock.json and installed by the make
targets into node_modules; nothing is loaded from a CDN, so the pages work offline and behind a
strict Content-Security-Policy.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from pathlib import Path

import structlog
from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from aisoule import assets
from aisoule.config import Settings

log = structlog.get_logger(__name__)

VENDOR_PATH = "/static/vendor"
# The files the pages load: URL name -> (path under the assets directory, media type).
VENDOR = assets.API_DOCS
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
# Both UIs set inline styles (Redoc injects <style> elements); Redoc's search runs in a blob: worker.
_CSP = (
    "default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
MISSING_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}: API docs not installed</title></head>
<body>
<h1>The API docs are not installed on this server</h1>
<p>The pages <code>/docs</code> and <code>/redoc</code> need browser assets (the npm packages
<code>swagger-ui-dist</code> and <code>redoc</code>) that this server does not find.</p>
<ul>
<li>In a source checkout: run <code>make run</code>, or <code>npm ci</code> at the repository
root, then restart aisoule.</li>
<li>Elsewhere: install the versions pinned in the repository's <code>package-lock.json</code>
(<code>npm ci</code> in a copy of <code>package.json</code> and <code>package-lock.json</code>),
set <code>AISOULE_ASSETS_DIR</code> to the <code>node_modules</code> folder it made, and restart
aisoule.</li>
</ul>
<p>The OpenAPI document itself is at <a href="{openapi}">{openapi}</a>.</p>
</body></html>
"""


def assets_dir(settings: Settings) -> Path:
    """AISOULE_ASSETS_DIR, else the wheel's copy, else the checkout's node_modules."""
    return settings.assets_dir if settings.assets_dir is not None else assets.default_dir()


def _with_csp(page: HTMLResponse) -> HTMLResponse:
    """The page's own CSP: same-origin scripts plus the page's inline scripts by hash."""
    body = bytes(page.body).decode()
    scripts = ["'self'"] + [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(body)
    ]
    page.headers["Content-Security-Policy"] = _CSP.format(scripts=" ".join(scripts))
    return page


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the vendor files and the two pages (FastAPI's own docs_url/redoc_url are off)."""
    root = assets_dir(settings)
    files = {name: root / rel for name, (rel, _) in VENDOR.items()}
    missing = [str(path) for path in files.values() if not path.is_file()]
    openapi_url = app.openapi_url or "/openapi.json"
    title = app.title
    if missing:
        log.warning(
            "api_docs_assets_missing",
            assets_dir=str(root),
            missing=missing,
            hint="run `npm ci` at the repository root or set AISOULE_ASSETS_DIR",
        )

    @app.api_route(f"{VENDOR_PATH}/{{name}}", methods=["GET", "HEAD"], include_in_schema=False)
    async def vendor(name: str) -> FileResponse:
        entry = VENDOR.get(name)
        if entry is None or not files[name].is_file():
            raise HTTPException(404, f"No such asset: {name}")
        return FileResponse(files[name], media_type=entry[1])

    def unavailable() -> HTMLResponse:
        page = MISSING_PAGE.format(title=html.escape(title), openapi=html.escape(openapi_url))
        return HTMLResponse(page, status_code=503)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        if missing:
            return unavailable()
        return _with_csp(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{title} - Swagger UI",
                swagger_js_url=f"{VENDOR_PATH}/swagger-ui-bundle.js",
                swagger_css_url=f"{VENDOR_PATH}/swagger-ui.css",
                swagger_favicon_url=f"{VENDOR_PATH}/favicon.png",
                oauth2_redirect_url=None,
                # No badge fetched from the public validator: the page stays on this origin.
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        if missing:
            return unavailable()
        return _with_csp(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{title} - ReDoc",
                redoc_js_url=f"{VENDOR_PATH}/redoc.standalone.js",
                redoc_favicon_url=f"{VENDOR_PATH}/favicon.png",
                with_google_fonts=False,
            )
        )
