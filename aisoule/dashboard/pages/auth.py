"""Sign up, log in, log out, the forgotten password, and switching between workspaces."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from aisoule.audit import service as audit
from aisoule.audit.dependencies import request_origin
from aisoule.audit.schemas import AuditEventType
from aisoule.auth import service as auth_service
from aisoule.auth.dependencies import CSRF_COOKIE, SESSION_COOKIE
from aisoule.dashboard import web
from aisoule.dashboard.web import ViewerDep
from aisoule.db.session import DBSession
from aisoule.dependencies import get_runtime
from aisoule.exceptions import AisouleError, Forbidden, NotFound, RateLimited, Unauthorized
from aisoule.kit.crypto import constant_time_equals, new_token
from aisoule.kit.ids import parse_uuid
from aisoule.members import service as members_service
from aisoule.members.schemas import InvitationAccept
from aisoule.ratelimit.limiter import LimiterUnavailable, Throttle
from aisoule.users import service as user_service

router = APIRouter()

# Before there is a session, forms carry a double-submit token: a cookie set with the form
# (SameSite=Strict, HttpOnly) and the same value in a hidden field. Another site can post a form
# here, but cannot read or set this cookie (login CSRF: logging a victim into one's account).
FORM_COOKIE = "aisoule_form"


def _secure(request: Request) -> bool:
    mode = request.app.state.settings.cookie_secure
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def _form_token(request: Request) -> str:
    return request.cookies.get(FORM_COOKIE) or new_token(16)


def _anonymous_page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    token = _form_token(request)
    response = web.render(
        request, template, {**context, "form_token": token}, status_code=status_code
    )
    response.set_cookie(
        FORM_COOKIE,
        token,
        max_age=3600,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


def _check_form_token(request: Request, sent: str) -> None:
    cookie = request.cookies.get(FORM_COOKIE, "")
    if not sent or not cookie or not constant_time_equals(sent, cookie):
        raise Forbidden(
            "This form expired (missing or wrong CSRF token): reload the page and try again",
            code="csrf_failed",
        )


def _next(value: str) -> str:
    """Only a path on this site (never //other.example or a scheme)."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _session_cookies(
    response: Response, request: Request, result: auth_service.LoginResult
) -> None:
    secure = _secure(request)
    response.set_cookie(
        SESSION_COOKIE,
        result.session_token,
        max_age=result.expires_in,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )
    response.set_cookie(
        CSRF_COOKIE,
        result.csrf_token,
        max_age=result.expires_in,
        path="/",
        httponly=False,
        samesite="lax",
        secure=secure,
    )
    response.delete_cookie(FORM_COOKIE, path="/")


def _context(request: Request) -> auth_service.SessionContext:
    return auth_service.SessionContext(
        ttl_hours=request.app.state.settings.session_ttl_hours,
        replaces=request.cookies.get(SESSION_COOKIE),
        user_agent=request.headers.get("user-agent"),
        ip=request.client.host if request.client else None,
    )


async def _throttled(*checks: tuple[Throttle, str]) -> str | None:
    for throttle, identity in checks:
        try:
            wait = await throttle.blocked(identity)
        except LimiterUnavailable:
            return "Login throttling is unavailable; retry shortly"
        if wait is not None:
            return f"Too many attempts; try again in {wait} s"
    return None


@router.get("/signup")
async def signup_page(request: Request) -> Response:
    return _anonymous_page(
        request,
        "signup.html",
        {"values": {}, "errors": {}, "enabled": request.app.state.settings.signup_enabled},
    )


@router.post("/signup")
async def signup(request: Request, session: DBSession) -> Response:
    form = await request.form()
    _check_form_token(request, web.form_value(form, "csrf_token"))
    values = {k: web.form_value(form, k) for k in ("email", "name", "workspace_name")}
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    errors: web.FieldErrors = {}
    for name, label in (("name", "Your name"), ("workspace_name", "Workspace name")):
        if not values[name]:
            errors[name] = f"{label} is required"
    settings = request.app.state.settings
    throttles = request.app.state.throttles
    ip_id = f"signup-ip:{request.client.host if request.client else None}"
    refused = await _throttled((throttles.signup_ip, ip_id))
    if refused:
        errors["_form"] = refused
    if not errors:
        await throttles.signup_ip.count(ip_id)
        try:
            result = await auth_service.signup(
                session,
                get_runtime(request),
                email=values["email"],
                password=password,
                name=values["name"],
                workspace_name=values["workspace_name"],
                signup_enabled=settings.signup_enabled,
                ctx=_context(request),
            )
        except AisouleError as exc:
            await web.undo(session)
            errors = web.errors_of(exc)
        else:
            await audit.record(
                session,
                result.workspace.id,
                AuditEventType.signup,
                request_origin(request),
                user_id=result.user.id,
            )
            response = web.redirect(request, "/")
            _session_cookies(response, request, result)
            return response
    return _anonymous_page(
        request,
        "signup.html",
        {"values": values, "errors": errors, "enabled": settings.signup_enabled},
        status_code=422,
    )


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> Response:
    return _anonymous_page(request, "login.html", {"values": {}, "errors": {}, "next": _next(next)})


@router.post("/login")
async def login(request: Request, session: DBSession) -> Response:
    form = await request.form()
    _check_form_token(request, web.form_value(form, "csrf_token"))
    email = web.form_value(form, "email")
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    target = _next(web.form_value(form, "next") or "/")
    throttles = request.app.state.throttles
    account_id = f"login-account:{email.lower()}"
    ip_id = f"login-ip:{request.client.host if request.client else None}"
    errors: web.FieldErrors = {}
    refused = await _throttled((throttles.login_account, account_id), (throttles.login_ip, ip_id))
    if refused:
        errors["_form"] = refused
    else:
        try:
            result = await auth_service.login(
                session, email=email, password=password, ctx=_context(request)
            )
        except Unauthorized as exc:
            await throttles.login_account.count(account_id)
            await throttles.login_ip.count(ip_id)
            known = await auth_service.workspace_of_email(session, email)
            if known is not None:
                await audit.record(
                    session,
                    known[0],
                    AuditEventType.login_failed,
                    request_origin(request),
                    user_id=known[1],
                )
            errors["_form"] = exc.message
        except RateLimited as exc:
            errors["_form"] = exc.message
        else:
            await throttles.login_account.clear(account_id)
            await audit.record(
                session,
                result.workspace.id,
                AuditEventType.login,
                request_origin(request),
                user_id=result.user.id,
            )
            response = web.redirect(request, target)
            _session_cookies(response, request, result)
            return response
    return _anonymous_page(
        request,
        "login.html",
        {"values": {"email": email}, "errors": errors, "next": target},
        status_code=401 if "Invalid" in errors.get("_form", "") else 422,
    )


@router.get("/forgot-password")
async def forgot_password(request: Request) -> Response:
    return web.render(request, "forgot.html", {})


@router.post("/logout")
async def logout(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await auth_service.logout(session, token)
        await audit.record(
            session,
            viewer.workspace_id,
            AuditEventType.logout,
            request_origin(request),
            user_id=viewer.user.id,
        )
    response = web.redirect(request, "/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.post("/workspaces/switch")
async def switch_workspace(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    form = await request.form()
    workspace_id = parse_uuid(web.form_value(form, "workspace_id"))
    if workspace_id is None:
        raise NotFound("Workspace not found")
    await auth_service.switch_workspace(session, viewer.principal, workspace_id)
    return web.redirect(request, "/")


@router.get("/workspaces/new")
async def new_workspace_page(request: Request, viewer: ViewerDep) -> Response:
    return web.render(request, "workspace_new.html", {"values": {}, "errors": {}}, viewer=viewer)


@router.post("/workspaces")
async def create_workspace(request: Request, viewer: ViewerDep, session: DBSession) -> Response:
    form = await request.form()
    name = web.form_value(form, "workspace_name")
    try:
        workspace = await user_service.add_workspace(
            session, get_runtime(request), viewer.user.id, name
        )
    except AisouleError as exc:
        await web.undo(session)
        return web.render(
            request,
            "workspace_new.html",
            {"values": {"workspace_name": name}, "errors": web.errors_of(exc)},
            viewer=viewer,
            status_code=exc.status_code,
        )
    await auth_service.switch_workspace(session, viewer.principal, workspace.id)
    return web.redirect(request, "/")


# -- accepting an invitation -------------------------------------------------------------------
# The link is /invitations/accept#<token>: the token after '#' never reaches a server or proxy
# log; static/app.js copies it into the form, which posts it.


@router.get("/invitations/accept")
async def accept_invitation_page(request: Request) -> Response:
    return _anonymous_page(request, "invitation_accept.html", {"values": {}, "errors": {}})


@router.post("/invitations/accept")
async def accept_invitation(request: Request, session: DBSession) -> Response:
    form = await request.form()
    _check_form_token(request, web.form_value(form, "csrf_token"))
    values = {"name": web.form_value(form, "name")}
    password = form.get("password")
    data, errors = web.parse(
        InvitationAccept,
        {
            "token": web.form_value(form, "token").lstrip("#"),
            "password": password if isinstance(password, str) else "",
            "name": values["name"] or None,
        },
    )
    if "token" in errors:
        errors = {"_form": "This page needs the whole invitation link: open it again"}
    throttles = request.app.state.throttles
    ip_id = f"invite-ip:{request.client.host if request.client else None}"
    refused = await _throttled((throttles.login_ip, ip_id))
    if refused:
        errors["_form"] = refused
    if data is not None and not errors:
        try:
            result = await members_service.accept(
                session, data, _context(request), request_origin(request)
            )
        except (Unauthorized, NotFound) as exc:
            await web.undo(session)
            await throttles.login_ip.count(ip_id)  # guessing tokens or passwords costs attempts
            errors = web.errors_of(exc)
        except AisouleError as exc:
            await web.undo(session)
            errors = web.errors_of(exc)
        else:
            response = web.redirect(request, "/inbox")
            _session_cookies(response, request, result)
            return response
    return _anonymous_page(
        request,
        "invitation_accept.html",
        {"values": values, "errors": errors},
        status_code=422,
    )
