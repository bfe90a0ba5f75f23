"""Typed authentication dependencies. Every router uses one; nothing is public by accident."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import structlog
from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.api_keys import service as api_key_service
from aisoule.auth import service
from aisoule.auth.principal import Principal
from aisoule.auth.scopes import Scope
from aisoule.db.session import SAFE_METHODS, DBSession
from aisoule.exceptions import Forbidden, RateLimited, Unauthorized, Unavailable
from aisoule.kit.crypto import API_KEY_PREFIX, constant_time_equals
from aisoule.ratelimit.limiter import LimiterUnavailable, Policy
from aisoule.users import service as user_service

log = structlog.get_logger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

SESSION_COOKIE = "aisoule_session"
CSRF_COOKIE = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
# Query parameters a client might put a key in, compared case-insensitively (with - and _ alike).
_QUERY_KEY_NAMES = frozenset(
    {"api_key", "apikey", "key", "token", "access_token", "auth_token", "x_api_key", "bearer"}
)

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key from Settings → API Keys."
)
bearer = HTTPBearer(auto_error=False, description="The same API key as a Bearer token.")
session_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description="Session cookie from POST /api/auth/login; unsafe methods also need X-CSRF-Token.",
)


def _touch_later(request: Request, principal: Principal) -> None:
    """Write last_used_at in its own transaction, off the request (at most once a minute per key)."""
    app = request.app
    resolution = app.state.settings.api_key_last_used_resolution
    assert principal.api_key_id is not None
    key_id = principal.api_key_id

    async def run() -> None:
        try:
            async with app.state.sessionmaker() as s:
                await api_key_service.touch(s, key_id, resolution)
                await s.commit()
        except Exception:  # never let bookkeeping fail a request
            log.warning("api_key_touch_failed", api_key_id=str(key_id), exc_info=True)

    task = asyncio.create_task(run())
    tasks: set[asyncio.Task[None]] = app.state.background_tasks
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _rate_limit(request: Request, principal: Principal) -> None:
    """Count this request against the caller's limits; 429 when over. Headers go on every answer."""
    limiter = request.app.state.limiter
    if limiter is None:
        return
    settings = request.app.state.settings
    if principal.via == "api_key":
        policy = Policy(
            principal.rate_limit_per_minute or settings.ratelimit_per_minute,
            principal.rate_limit_per_second or settings.ratelimit_per_second,
        )
    else:
        policy = Policy(
            settings.ratelimit_session_per_minute, settings.ratelimit_session_per_second
        )
    try:
        decision = await limiter.check(principal.rate_identity, policy)
    except LimiterUnavailable:
        raise Unavailable(
            "Rate limiter unavailable; retry shortly", headers={"Retry-After": "1"}
        ) from None
    if decision is None:
        return
    request.state.ratelimit = decision
    if not decision.admitted:
        raise RateLimited(
            f"Rate limit exceeded: {policy.per_minute} requests per minute and {policy.per_second} "
            f"per second; retry in {decision.retry_after} s",
            headers=decision.headers(),
        )


def _credentials(request: Request) -> tuple[str | None, str | None]:
    """(API key, session token) as the documented security schemes read them (see SECURITY)."""
    headers = request.headers
    key = headers.get("x-api-key") or None  # APIKeyHeader: an empty header is no header
    authorization = headers.get("authorization")
    if key is None and authorization is not None:
        # HTTPBearer's reading: "<scheme> <credentials>", the scheme case-insensitive.
        scheme, _, credentials = authorization.partition(" ")
        credentials = credentials.strip()
        if not (scheme and credentials) or scheme.lower() != "bearer":
            raise Unauthorized(
                "Authorization header must be 'Bearer <api key>'", code="invalid_authorization"
            )
        key = credentials
    return key, request.cookies.get(SESSION_COOKIE) or None


def _key_in_query(request: Request) -> bool:
    """A parameter named like a key, or any value that looks like one, whatever its name."""
    if not request.scope.get("query_string"):
        return False
    for name, value in request.query_params.multi_items():
        folded = name.strip().casefold()
        if folded.replace("-", "_") in _QUERY_KEY_NAMES or API_KEY_PREFIX in folded:
            return True
        if API_KEY_PREFIX in value.casefold():
            return True
    return False


async def authenticate(request: Request, session: DBSession) -> Principal:
    """Who is calling: authenticated (and counted against its rate limit) once per request,
    whichever dependency asks first (FastAPI's cache only covers ``Depends(authenticate)``; the
    dependencies that already have the session call this directly: one dependency fewer to solve).
    """
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None:
        return principal
    return await _authenticate(request, session)


async def _authenticate(request: Request, session: AsyncSession) -> Principal:
    """Who is calling. The credentials are read here rather than by the three FastAPI security
    scheme dependencies (each one more dependency to solve on every request); the OpenAPI document
    still lists those schemes for every operation that depends on this (see aisoule.openapi)."""
    if _key_in_query(request):
        # Refused even beside valid credentials: a key in a URL leaks into logs and histories.
        raise Unauthorized(
            "API keys are not accepted in the query string; send the X-API-Key header "
            "(and rotate a key that was sent in a URL)",
            code="api_key_in_query",
        )
    key, cookie_token = _credentials(request)
    if key is not None:
        principal, due = await service.principal_from_key(
            session,
            request.app.state.api_key_pepper,
            key.strip(),
            request.app.state.settings.api_key_last_used_resolution,
            request.app.state.key_cache,
        )
        request.state.principal = principal
        if due:
            _touch_later(request, principal)
        await _rate_limit(request, principal)
        return principal
    if cookie_token:
        principal_or_none = await service.principal_from_session(session, cookie_token)
        if principal_or_none is None:
            raise Unauthorized(
                "Session expired or logged out; log in again", code="session_expired"
            )
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not constant_time_equals(sent, principal_or_none.csrf_token or ""):
                raise Forbidden(
                    f"Missing or wrong {CSRF_HEADER} header (send the csrf_token from login)",
                    code="csrf_failed",
                )
        request.state.principal = principal_or_none
        await _rate_limit(request, principal_or_none)
        return principal_or_none
    raise Unauthorized(
        "Authentication required: send X-API-Key or Authorization: Bearer <key>",
        code="unauthorized",
    )


# The schemes `authenticate` accepts, for the OpenAPI document: operations that depend on a
# function marked with AUTHENTICATES list them (aisoule.openapi adds them; FastAPI would only if
# each scheme were a dependency of its own).
SECURITY = (api_key_header, bearer, session_cookie)
AUTHENTICATES = "__aisoule_authenticates__"


def authenticates(fn: F) -> F:
    """Mark a dependency that authenticates (calls authenticate)."""
    setattr(fn, AUTHENTICATES, True)
    return fn


authenticates(authenticate)

AnyPrincipal = Annotated[Principal, Depends(authenticate)]


# What an operation requires, for the OpenAPI document (x-required-scopes, x-required-role) and
# the test that walks every operation by role.
REQUIRES_SCOPES = "__aisoule_requires_scopes__"
REQUIRES_ROLE = "__aisoule_requires_role__"


def require(*scopes: Scope) -> Callable[[Request, AsyncSession], Awaitable[Principal]]:
    @authenticates
    async def check(request: Request, session: DBSession) -> Principal:
        principal = await authenticate(request, session)
        missing = [s.value for s in scopes if s.value not in principal.scopes]
        if missing:
            if principal.via == "session":
                raise Forbidden(
                    f"Your role ({principal.role}) does not allow this (it needs "
                    f"{', '.join(missing)}); ask an owner or admin",
                    code="role_forbidden",
                )
            raise Forbidden(
                f"This API key lacks the scope {', '.join(missing)}", code="insufficient_scope"
            )
        return principal

    setattr(check, REQUIRES_SCOPES, tuple(s.value for s in scopes))
    return check


async def require_session(principal: AnyPrincipal) -> Principal:
    if principal.via != "session":
        raise Forbidden("This action needs a logged-in user session", code="session_required")
    return principal


async def require_owner(principal: AnyPrincipal, session: DBSession) -> Principal:
    if principal.via != "session" or principal.user_id is None:
        raise Forbidden("The audit log is for workspace owners: log in", code="owner_required")
    member = await user_service.get_membership(session, principal.user_id, principal.workspace_id)
    if member is None or member.role != "owner":
        raise Forbidden("The audit log is for workspace owners", code="owner_required")
    return principal


setattr(require_owner, REQUIRES_ROLE, "owner")

OwnerSession = Annotated[Principal, Depends(require_owner)]
ContactsRead = Annotated[Principal, Depends(require(Scope.contacts_read))]
ContactsWrite = Annotated[Principal, Depends(require(Scope.contacts_write))]
TemplatesRead = Annotated[Principal, Depends(require(Scope.templates_read))]
CampaignsRead = Annotated[Principal, Depends(require(Scope.campaigns_read))]
CampaignsWrite = Annotated[Principal, Depends(require(Scope.campaigns_write))]
AccountsRead = Annotated[Principal, Depends(require(Scope.accounts_read))]
KeysManage = Annotated[Principal, Depends(require(Scope.keys_manage))]
SessionPrincipal = Annotated[Principal, Depends(require_session)]
TemplatesWrite = Annotated[Principal, Depends(require(Scope.templates_write))]
AccountsWrite = Annotated[Principal, Depends(require(Scope.accounts_write))]
MessagesSend = Annotated[Principal, Depends(require(Scope.messages_send))]
ConversationsRead = Annotated[Principal, Depends(require(Scope.conversations_read))]
ConversationsWrite = Annotated[Principal, Depends(require(Scope.conversations_write))]
InboxReply = Annotated[Principal, Depends(require(Scope.conversations_write, Scope.messages_send))]
WorkspaceManage = Annotated[Principal, Depends(require(Scope.workspace_manage))]
