"""What every dashboard page shares: templates, the logged-in viewer, CSRF, errors as pages.

The pages call the same services as the API, as the same logged-in user: a session cookie from
login (the API's own), and on every unsafe request the session's CSRF token, sent as the
``X-CSRF-Token`` header (htmx, from the page's ``hx-headers``) or as the ``csrf_token`` form
field (a plain form post). No repository is imported here (lint-imports:
``dashboard-services-only``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import Depends, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import HTMLResponse, RedirectResponse, Response

from aisoule import queue
from aisoule.auth import service as auth_service
from aisoule.auth.dependencies import CSRF_HEADER, SESSION_COOKIE
from aisoule.auth.principal import Principal
from aisoule.db.session import SAFE_METHODS, DBSession
from aisoule.exceptions import AisouleError, Forbidden
from aisoule.kit.crypto import constant_time_equals
from aisoule.models import User, Workspace
from aisoule.users import service as user_service
from aisoule.workspaces import service as workspace_service

HERE = Path(__file__).resolve().parent
STATIC_PATH = "/static/app"
VENDOR_PATH = "/static/vendor"
# Strict: scripts and styles from this origin only, no inline script, no inline style.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
CSRF_FIELD = "csrf_token"


class LoginRequired(Exception):
    """No live session: the page answers with a way to the login page."""


def _time(value: datetime | str | None, fallback: str = "—") -> str:
    """A ``<time>`` element in UTC; static/app.js shows it in the reader's own time zone."""
    if value is None:
        return fallback
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    iso = value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f'<time datetime="{iso}">{value.strftime("%d %b %Y %H:%M")} UTC</time>'


def _date(value: datetime | None) -> str:
    if value is None:
        return "—"
    iso = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f'<time datetime="{iso}" data-format="date">{value.strftime("%d %b %Y")}</time>'


env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["time"] = _time
env.filters["date"] = _date
env.filters["urlq"] = lambda v: quote(str(v), safe="")


@dataclass(frozen=True, slots=True)
class Viewer:
    """The logged-in user, in the workspace their session works in."""

    principal: Principal
    user: User
    workspace: Workspace
    role: str
    workspaces: list[tuple[Workspace, str]]

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.principal.workspace_id

    @property
    def csrf(self) -> str:
        return self.principal.csrf_token or ""

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"

    def can(self, scope: str) -> bool:
        """The member's role grants ``scope`` (aisoule.auth.scopes.ROLE_SCOPES)."""
        return scope in self.principal.scopes

    @property
    def manages(self) -> bool:
        """Owners and admins: members, invitations, inbox settings."""
        return self.can("workspace:manage")


def require(viewer: Viewer, scope: str, what: str) -> None:
    """A page or action the viewer's role does not grant: 403 (the nav hides it too)."""
    if not viewer.can(scope):
        raise Forbidden(
            f"{what} is for workspace owners and admins (your role: {viewer.role})",
            code="role_forbidden",
        )


async def _csrf_sent(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def viewer(request: Request, session: DBSession) -> Viewer:
    token = request.cookies.get(SESSION_COOKIE)
    principal = await auth_service.principal_from_session(session, token) if token else None
    if principal is None or principal.user_id is None:
        raise LoginRequired()
    if request.method not in SAFE_METHODS:
        sent = await _csrf_sent(request)
        if not sent or not constant_time_equals(sent, principal.csrf_token or ""):
            raise Forbidden(
                "This form expired or did not come from this site (missing or wrong CSRF token): "
                "reload the page and try again",
                code="csrf_failed",
            )
    user = await user_service.get_user(session, principal.user_id)
    workspace = await workspace_service.get_workspace(session, principal.workspace_id)
    member = await user_service.get_membership(session, principal.user_id, principal.workspace_id)
    if user is None or workspace is None or member is None:
        raise LoginRequired()
    workspaces = await user_service.memberships(session, principal.user_id)
    return Viewer(principal, user, workspace, member.role, workspaces)


ViewerDep = Annotated[Viewer, Depends(viewer)]


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    viewer: Viewer | None = None,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    ctx: dict[str, Any] = {
        "request": request,
        "viewer": viewer,
        "csrf": viewer.csrf if viewer else "",
        "path": request.url.path,
        "static": STATIC_PATH,
        "vendor": VENDOR_PATH,
        "htmx": is_htmx(request),
    }
    ctx.update(context or {})
    body = env.get_template(template).render(ctx)
    response = HTMLResponse(body, status_code=status_code, headers=dict(headers or {}))
    secure_headers(response)
    return response


def secure_headers(response: Response) -> None:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")


def redirect(request: Request, url: str) -> Response:
    """After a successful form post: htmx follows HX-Redirect, a plain form the 303."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


async def undo(session: AsyncSession, viewer: Viewer | None = None) -> None:
    """A refused action writes nothing: what the request did so far is rolled back before the
    page answers (the request dependency then commits an empty transaction); the viewer's user
    and workspaces are read again for the page's header (``viewer`` is accepted for the
    callers that name it; every loaded user and workspace is read again either way)."""
    queue.discard_pending(session)
    # The rollback expires every loaded row; the page still shows who is logged in where
    # (base.html), so those few are read again here rather than lazily (no I/O in a template).
    shown = [o for o in session.identity_map.values() if isinstance(o, (User, Workspace))]
    await session.rollback()
    for row in shown:
        await session.refresh(row)


FieldErrors = dict[str, str]


def errors_of(exc: AisouleError) -> FieldErrors:
    """The API's ``field`` (and details) as {field: message}, for messages next to the inputs."""
    out: FieldErrors = {}
    for detail in exc.details or []:
        name = detail.get("field")
        if name and name not in out:
            out[str(name)] = str(detail.get("message", "is invalid"))
    if exc.field and exc.field not in out:
        message = exc.message
        if message.startswith(f"{exc.field}: "):
            message = message[len(exc.field) + 2 :]
        out[exc.field] = message
    if not out:
        out["_form"] = exc.message
    return out


def validation_errors(exc: ValidationError) -> FieldErrors:
    out: FieldErrors = {}
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if not str(p).startswith("function-")]
        name = loc[0] if loc else "_form"
        msg = str(err.get("msg", "is invalid"))
        for prefix in ("Value error, ", "Assertion failed, "):
            msg = msg.removeprefix(prefix)
        if err.get("type") == "missing":
            msg = "is required"
        out.setdefault(name, msg)
    return out


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: dict[str, Any]) -> tuple[M | None, FieldErrors]:
    try:
        return model.model_validate(data), {}
    except ValidationError as exc:
        return None, validation_errors(exc)


def form_value(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
