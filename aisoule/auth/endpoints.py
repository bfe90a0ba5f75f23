from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Request
from starlette.responses import Response

from aisoule.audit import service as audit
from aisoule.audit.dependencies import request_origin
from aisoule.audit.schemas import AuditEventType
from aisoule.auth import service
from aisoule.auth.dependencies import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    AnyPrincipal,
    SessionPrincipal,
)
from aisoule.auth.schemas import (
    LoginRequest,
    LogoutData,
    MeData,
    MembershipList,
    SessionData,
    SignupRequest,
    SwitchWorkspace,
)
from aisoule.db.session import DBSession
from aisoule.dependencies import get_runtime
from aisoule.errors import error_response
from aisoule.exceptions import NotFound, RateLimited, Unauthorized, Unavailable
from aisoule.kit.envelope import Envelope, ErrorEnvelope, success
from aisoule.kit.ids import parse_uuid
from aisoule.kit.responses import ORJSONResponse
from aisoule.members import service as members
from aisoule.members.schemas import InvitationAccept
from aisoule.ratelimit.limiter import LimiterUnavailable, Throttle
from aisoule.users import service as user_service
from aisoule.users.schemas import user_out
from aisoule.workspaces import service as workspace_service
from aisoule.workspaces.schemas import workspace_out

router = APIRouter(prefix="/auth", tags=["Authentication"])


def _secure(request: Request) -> bool:
    mode = request.app.state.settings.cookie_secure
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def _set_cookies(response: Response, request: Request, result: service.LoginResult) -> None:
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
    # Readable by the page's JavaScript on purpose: it is echoed back as X-CSRF-Token.
    response.set_cookie(
        CSRF_COOKIE,
        result.csrf_token,
        max_age=result.expires_in,
        path="/",
        httponly=False,
        samesite="lax",
        secure=secure,
    )


def _session_payload(result: service.LoginResult) -> dict[str, object]:
    return {
        "user": user_out(result.user, result.role),
        "workspace": workspace_out(result.workspace),
        "csrf_token": result.csrf_token,
    }


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _session_context(request: Request, current: str | None) -> service.SessionContext:
    return service.SessionContext(
        ttl_hours=request.app.state.settings.session_ttl_hours,
        replaces=current,
        user_agent=request.headers.get("user-agent"),
        ip=_client_ip(request),
    )


async def _refuse_if_throttled(*checks: tuple[Throttle, str]) -> None:
    for throttle, identity in checks:
        try:
            wait = await throttle.blocked(identity)
        except LimiterUnavailable:
            raise Unavailable(
                "Login throttling unavailable; retry shortly", headers={"Retry-After": "1"}
            ) from None
        if wait is not None:
            raise RateLimited(
                f"Too many attempts; try again in {wait} s",
                code="too_many_attempts",
                headers={"Retry-After": str(wait)},
            )


@router.post(
    "/signup",
    status_code=201,
    summary="Create a workspace and its owner, and log in",
    response_model=None,
    responses={
        201: {"model": Envelope[SessionData]},
        403: {"model": ErrorEnvelope, "description": "Sign-up disabled"},
        409: {"model": ErrorEnvelope, "description": "Email already registered"},
    },
)
async def signup(
    body: SignupRequest,
    request: Request,
    session: DBSession,
    current: Annotated[str | None, Cookie(alias=SESSION_COOKIE, include_in_schema=False)] = None,
) -> ORJSONResponse:
    settings = request.app.state.settings
    throttles = request.app.state.throttles
    ip_id = f"signup-ip:{_client_ip(request)}"
    await _refuse_if_throttled((throttles.signup_ip, ip_id))
    await throttles.signup_ip.count(ip_id)
    result = await service.signup(
        session,
        get_runtime(request),
        email=body.email,
        password=body.password,
        name=body.name,
        workspace_name=body.workspace_name,
        signup_enabled=settings.signup_enabled,
        ctx=_session_context(request, current),
    )
    await audit.record(
        session,
        result.workspace.id,
        AuditEventType.signup,
        request_origin(request),
        user_id=result.user.id,
    )
    response = success(_session_payload(result), status_code=201)
    _set_cookies(response, request, result)
    return response


@router.post(
    "/login",
    summary="Log in and receive a session cookie",
    response_model=None,
    responses={
        200: {"model": Envelope[SessionData]},
        401: {"model": ErrorEnvelope, "description": "Wrong email or password"},
    },
)
async def login(
    body: LoginRequest,
    request: Request,
    session: DBSession,
    current: Annotated[str | None, Cookie(alias=SESSION_COOKIE, include_in_schema=False)] = None,
) -> ORJSONResponse:
    throttles = request.app.state.throttles
    account_id = f"login-account:{body.email.strip().lower()}"
    ip_id = f"login-ip:{_client_ip(request)}"
    await _refuse_if_throttled((throttles.login_account, account_id), (throttles.login_ip, ip_id))
    try:
        result = await service.login(
            session,
            email=body.email,
            password=body.password,
            ctx=_session_context(request, current),
        )
    except Unauthorized as exc:
        await throttles.login_account.count(account_id)
        await throttles.login_ip.count(ip_id)
        known = await service.workspace_of_email(session, body.email)
        if known is not None:
            workspace_id, user_id = known
            await audit.record(
                session,
                workspace_id,
                AuditEventType.login_failed,
                request_origin(request),
                user_id=user_id,
            )
        # Answered, not raised, so that the audit row commits with this request.
        return error_response(request.url.path, exc.status_code, exc.message, code=exc.code)
    await throttles.login_account.clear(account_id)
    await audit.record(
        session,
        result.workspace.id,
        AuditEventType.login,
        request_origin(request),
        user_id=result.user.id,
    )
    response = success(_session_payload(result))
    _set_cookies(response, request, result)
    return response


@router.post(
    "/logout",
    summary="End the current session",
    response_model=None,
    responses={200: {"model": Envelope[LogoutData]}},
)
async def logout(
    request: Request,
    principal: AnyPrincipal,
    session: DBSession,
    current: Annotated[str | None, Cookie(alias=SESSION_COOKIE, include_in_schema=False)] = None,
) -> ORJSONResponse:
    if principal.via == "session" and current:
        await service.logout(session, current)
        await audit.record(
            session,
            principal.workspace_id,
            AuditEventType.logout,
            request_origin(request),
            user_id=principal.user_id,
        )
    response = success({"logged_out": True})
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get(
    "/me",
    summary="Who am I: the user (or API key) and workspace",
    response_model=None,
    responses={200: {"model": Envelope[MeData]}},
)
async def me(principal: AnyPrincipal, session: DBSession) -> ORJSONResponse:
    workspace = await workspace_service.get_workspace(session, principal.workspace_id)
    if workspace is None:
        raise NotFound("Workspace not found")
    user_payload = None
    if principal.user_id is not None:
        user = await user_service.get_user(session, principal.user_id)
        member = await user_service.get_membership(
            session, principal.user_id, principal.workspace_id
        )
        if user is not None and member is not None:
            user_payload = user_out(user, member.role)
    return success(
        {
            "user": user_payload,
            "workspace": workspace_out(workspace),
            "auth": principal.via,
            "scopes": sorted(principal.scopes),
        }
    )


@router.post(
    "/accept-invitation",
    summary="Accept an invitation and log in to its workspace",
    description="With the token from the invitation link. A new user gives `name` and a "
    "`password` (their account is created with the invitation's email); an existing user gives "
    "their password. A user may belong to several workspaces: see GET /api/auth/workspaces.",
    response_model=None,
    responses={
        200: {"model": Envelope[SessionData]},
        401: {"model": ErrorEnvelope, "description": "Wrong password for the existing account"},
        404: {"model": ErrorEnvelope, "description": "Invalid, expired, revoked or used"},
    },
)
async def accept_invitation(
    body: InvitationAccept,
    request: Request,
    session: DBSession,
    current: Annotated[str | None, Cookie(alias=SESSION_COOKIE, include_in_schema=False)] = None,
) -> ORJSONResponse:
    throttles = request.app.state.throttles
    ip_id = f"invite-ip:{_client_ip(request)}"
    await _refuse_if_throttled((throttles.login_ip, ip_id))
    try:
        result = await members.accept(
            session, body, _session_context(request, current), request_origin(request)
        )
    except (Unauthorized, NotFound):
        await throttles.login_ip.count(ip_id)  # guessing tokens or passwords costs attempts
        raise
    response = success(_session_payload(result))
    _set_cookies(response, request, result)
    return response


@router.get(
    "/workspaces",
    summary="The workspaces you belong to, with your role in each",
    response_model=None,
    responses={200: {"model": Envelope[MembershipList]}},
)
async def my_workspaces(principal: SessionPrincipal, session: DBSession) -> ORJSONResponse:
    assert principal.user_id is not None
    rows = await user_service.workspaces_of(session, principal.user_id)
    return success(
        {
            "workspaces": [
                {
                    "workspace": workspace_out(w),
                    "role": role,
                    "current": w.id == principal.workspace_id,
                }
                for w, role in rows
            ]
        }
    )


@router.post(
    "/switch-workspace",
    summary="Work in another of your workspaces (this session moves there)",
    response_model=None,
    responses={200: {"model": Envelope[MeData]}, 404: {"model": ErrorEnvelope}},
)
async def switch_workspace(
    body: SwitchWorkspace, principal: SessionPrincipal, session: DBSession
) -> ORJSONResponse:
    workspace_id = parse_uuid(body.workspace_id)
    if workspace_id is None:
        raise NotFound("Workspace not found", code="workspace_not_found")
    await service.switch_workspace(session, principal, workspace_id)
    moved = await service.principal_for(session, principal, workspace_id)
    return await me(moved, session)
