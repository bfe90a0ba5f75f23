"""Sign-up, login sessions (server-side, rotated at login) and resolving who a request is."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.api_keys import service as api_key_service
from aisoule.api_keys.cache import KeyCache
from aisoule.auth.principal import Principal
from aisoule.auth.repository import AuthSessionRepository
from aisoule.auth.scopes import ROLE_SCOPES
from aisoule.exceptions import Forbidden, NotFound, Unauthorized, ValidationFailed
from aisoule.kit.crypto import new_token, sha256_hex
from aisoule.kit.time import utcnow
from aisoule.models import AuthSession, User, Workspace
from aisoule.runtime import Runtime
from aisoule.users import service as user_service
from aisoule.workspaces import service as workspace_service

INVALID_LOGIN = "Invalid email or password"


@dataclass(slots=True)
class LoginResult:
    user: User
    workspace: Workspace
    role: str
    session_token: str
    csrf_token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class SessionContext:
    """What a login needs of its request: session lifetime, the cookie it replaces, the client."""

    ttl_hours: int
    replaces: str | None
    user_agent: str | None
    ip: str | None


async def _logged_in(
    session: AsyncSession, user: User, workspace: Workspace, role: str, ctx: SessionContext
) -> LoginResult:
    """Open a fresh server-side session for ``user`` (the rotation point of signup and login)."""
    repo = AuthSessionRepository(session)
    now = utcnow()
    if ctx.replaces:
        # Rotation: whatever session id the browser held before login stops working.
        await repo.delete(sha256_hex(ctx.replaces))
    await repo.delete_expired_for_user(user.id, now)
    token = new_token(32)
    csrf = new_token(32)
    await repo.create(
        AuthSession(
            token_hash=sha256_hex(token),
            user_id=user.id,
            workspace_id=workspace.id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + timedelta(hours=ctx.ttl_hours),
            user_agent=(ctx.user_agent or "")[:300] or None,
            ip=ctx.ip,
        )
    )
    return LoginResult(user, workspace, role, token, csrf, ctx.ttl_hours * 3600)


async def signup(
    session: AsyncSession,
    rt: Runtime,
    *,
    email: str,
    password: str,
    name: str,
    workspace_name: str,
    signup_enabled: bool,
    ctx: SessionContext,
) -> LoginResult:
    if not signup_enabled:
        raise Forbidden("Sign-up is disabled on this server", code="signup_disabled")
    user, workspace, member = await user_service.create_user_with_workspace(
        session, rt, email=email, password=password, name=name, workspace_name=workspace_name
    )
    return await _logged_in(session, user, workspace, member.role, ctx)


async def login(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    ctx: SessionContext,
) -> LoginResult:
    found = await user_service.check_credentials(session, email, password)
    if found is None:
        raise Unauthorized(INVALID_LOGIN, code="invalid_credentials")
    user, member = found
    workspace = await workspace_service.get_workspace(session, member.workspace_id)
    assert workspace is not None
    return await _logged_in(session, user, workspace, member.role, ctx)


async def workspace_of_email(
    session: AsyncSession, email: str
) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(workspace_id, user_id) of an account, for recording a failed login against it."""
    try:
        user = await user_service.find_by_email(session, email)
    except ValidationFailed:  # not even an email: no account to record it against
        return None
    if user is None:
        return None
    member = await user_service.first_membership(session, user.id)
    return (member.workspace_id, user.id) if member else None


async def logout(session: AsyncSession, token: str) -> None:
    await AuthSessionRepository(session).delete(sha256_hex(token))


async def principal_from_session(session: AsyncSession, token: str) -> Principal | None:
    found = await AuthSessionRepository(session).get_live(sha256_hex(token), utcnow())
    if found is None:
        return None
    row, role = found
    return Principal(
        workspace_id=row.workspace_id,
        via="session",
        scopes=ROLE_SCOPES.get(role, frozenset()),
        user_id=row.user_id,
        session_token_hash=row.token_hash,
        csrf_token=row.csrf_token,
        role=role,
    )


async def switch_workspace(
    session: AsyncSession, principal: Principal, workspace_id: uuid.UUID
) -> Workspace:
    """Move the caller's session to another workspace they belong to (404 otherwise)."""
    if principal.via != "session" or principal.user_id is None or not principal.session_token_hash:
        raise Forbidden("Switching workspaces needs a logged-in session", code="session_required")
    member = await user_service.get_membership(session, principal.user_id, workspace_id)
    workspace = await workspace_service.get_workspace(session, workspace_id) if member else None
    if workspace is None:
        raise NotFound("Workspace not found", code="workspace_not_found")
    await AuthSessionRepository(session).move(principal.session_token_hash, workspace_id)
    return workspace


async def principal_for(
    session: AsyncSession, principal: Principal, workspace_id: uuid.UUID
) -> Principal:
    """The same session's principal after a switch to ``workspace_id``."""
    assert principal.user_id is not None
    member = await user_service.get_membership(session, principal.user_id, workspace_id)
    role = member.role if member else None
    return dataclasses.replace(
        principal,
        workspace_id=workspace_id,
        role=role,
        scopes=ROLE_SCOPES.get(role or "", frozenset()),
    )


async def end_member_sessions(
    session: AsyncSession, user_id: uuid.UUID, workspace_id: uuid.UUID
) -> None:
    """A removed member: their sessions in this workspace end (other workspaces' stay)."""
    await AuthSessionRepository(session).delete_for_member(user_id, workspace_id)


async def logged_in(
    session: AsyncSession, user: User, workspace: Workspace, role: str, ctx: SessionContext
) -> LoginResult:
    """A session for ``user`` in ``workspace`` (an accepted invitation logs its user in)."""
    return await _logged_in(session, user, workspace, role, ctx)


async def principal_from_key(
    session: AsyncSession,
    pepper: bytes,
    key: str,
    touch_resolution: int,
    cache: KeyCache | None = None,
) -> tuple[Principal, bool]:
    """The key's principal, and whether its last_used_at is due for a write."""
    row = await api_key_service.authenticate(session, pepper, key, cache)
    principal = Principal(
        workspace_id=row.workspace_id,
        via="api_key",
        scopes=frozenset(row.scopes),
        api_key_id=row.id,
        rate_limit_per_minute=row.rate_limit_per_minute,
        rate_limit_per_second=row.rate_limit_per_second,
    )
    due = api_key_service.needs_touch(row, touch_resolution)
    if due and cache is not None:
        cache.mark_used(row.digest, utcnow())
    return principal, due


async def reset_password(session: AsyncSession, email: str, password: str) -> User:
    """Operator action: a new password for the account, and every session of it logged out."""
    user = await user_service.set_password(session, email, password)
    await AuthSessionRepository(session).delete_for_user(user.id)
    return user
