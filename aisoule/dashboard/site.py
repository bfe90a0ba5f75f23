"""Mounting the dashboard on the app: its pages, its static files, its errors as HTML pages."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import structlog
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from aisoule import apidocs, assets
from aisoule.config import Settings
from aisoule.dashboard import web
from aisoule.dashboard.pages import ROUTERS
from aisoule.exceptions import AisouleError

log = structlog.get_logger(__name__)

# Our own files (aisoule/dashboard/static) and the npm packages' (node_modules, pinned).
OWN = {"app.css": "text/css", "app.js": "text/javascript", "inbox.js": "text/javascript"}
VENDOR = assets.DASHBOARD
# Paths that are never dashboard pages: their errors keep their API's JSON shape.
NOT_PAGES = (
    "/api",
    "/v1",
    "/webhooks",
    "/emulator",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/healthz",
    "/static/vendor",
)

Handler = Callable[[Request, Exception], Awaitable[Response]]


def _is_page(request: Request) -> bool:
    route = request.scope.get("route")
    endpoint = getattr(route, "endpoint", None)
    if endpoint is not None:
        return str(getattr(endpoint, "__module__", "")).startswith("aisoule.dashboard")
    path = request.url.path
    if any(path == p or path.startswith(p + "/") for p in NOT_PAGES):
        return False
    return "text/html" in request.headers.get("accept", "")


def _page_error(request: Request, status: int, message: str) -> Response:
    titles = {
        400: "Bad request",
        403: "Not allowed",
        404: "Not found",
        405: "Not allowed",
        409: "Conflict",
        422: "Invalid input",
        429: "Too many requests",
        502: "WhatsApp could not be reached",
        503: "Unavailable",
    }
    return web.render(
        request,
        "error.html",
        {"status": status, "title": titles.get(status, "Error"), "message": message},
        status_code=status,
    )


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = "/login" if target in ("/", "/login") else f"/login?next={quote(target, safe='')}"
    if web.is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return web.redirect(request, url)


def _wrap(app: FastAPI, exc_class: type[Exception], page: Handler) -> None:
    """Dashboard routes answer errors as pages; every other route as before (JSON)."""
    original = app.exception_handlers.get(exc_class)

    async def handler(request: Request, exc: Exception) -> Response:
        if _is_page(request) or original is None:
            return await page(request, exc)
        answer = original(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    app.add_exception_handler(exc_class, handler)


def install(app: FastAPI, settings: Settings) -> None:
    root = apidocs.assets_dir(settings)
    vendor_files = {name: root / rel for name, (rel, _) in VENDOR.items()}
    missing = [str(p) for p in vendor_files.values() if not p.is_file()]
    if missing:
        log.warning(
            "dashboard_assets_missing",
            missing=missing,
            hint="run `npm ci` at the repository root or set AISOULE_ASSETS_DIR",
        )

    @app.api_route(f"{web.STATIC_PATH}/{{name}}", methods=["GET", "HEAD"], include_in_schema=False)
    async def own_static(name: str) -> FileResponse:
        media = OWN.get(name)
        if media is None:
            raise HTTPException(404, f"No such asset: {name}")
        return FileResponse(web.HERE / "static" / name, media_type=media)

    @app.api_route(
        f"{web.STATIC_PATH}/vendor/{{name}}", methods=["GET", "HEAD"], include_in_schema=False
    )
    async def vendor_static(name: str) -> FileResponse:
        entry = VENDOR.get(name)
        if entry is None or not vendor_files[name].is_file():
            raise HTTPException(404, f"No such asset: {name}")
        return FileResponse(vendor_files[name], media_type=entry[1])

    for router in ROUTERS:
        app.include_router(router, include_in_schema=False)

    async def aisoule_page(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AisouleError)
        return _page_error(request, exc.status_code, exc.message)

    async def http_page(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "Error"
        if exc.status_code == 404:
            message = "There is no such page here, or it belongs to another workspace."
        return _page_error(request, exc.status_code, message)

    async def invalid_page(request: Request, exc: Exception) -> Response:
        return _page_error(
            request, 400, "The address or the form holds a value this page cannot read."
        )

    async def login_required(request: Request, exc: Exception) -> Response:
        return _login_redirect(request)

    _wrap(app, AisouleError, aisoule_page)
    _wrap(app, StarletteHTTPException, http_page)
    _wrap(app, RequestValidationError, invalid_page)
    app.add_exception_handler(web.LoginRequired, login_required)
