"""Members: who belongs to a workspace with which role, invitations to join it, and the
availability the inbox's automatic assignment reads. Every change goes to the audit log.

Rules: owners and admins manage members (workspace:manage); only an owner makes or unmakes an
owner; the last owner can be neither removed nor demoted; a member may leave (remove themself).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule import queue
from aisoule.audit import service as audit
from aisoule.audit.schemas import AuditEventType
from aisoule.auth import service as auth
from aisoule.auth.principal import Principal
from aisoule.conversations import service as conversations
from aisoule.exceptions import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from aisoule.kit import mail
from aisoule.kit.crypto import new_token, sha256_hex
from aisoule.kit.ids import parse_uuid
from aisoule.kit.time import utcnow
from aisoule.members.repository import MemberRepository, Row
from aisoule.members.schemas import InvitationAccept, InvitationCreate, MemberUpdate
from aisoule.models import Invitation, WorkspaceMember
from aisoule.users import service as users
from aisoule.workspaces import service as workspaces

log = structlog.get_logger(__name__)

INVITATION_TTL = timedelta(days=7)
MEMBER_NOT_FOUND = "Member not found"


def _actor(principal: Principal) -> dict[str, Any]:
    return {"user_id": principal.user_id, "api_key_id": principal.api_key_id}


def _is_owner(principal: Principal) -> bool:
    # An API key with workspace:manage acts as an admin: it cannot make or unmake owners.
    return principal.via == "session" and principal.role == "owner"


async def list_members(session: AsyncSession, workspace_id: uuid.UUID) -> list[Row]:
    return await MemberRepository(session).list(workspace_id)


async def _member(session: AsyncSession, workspace_id: uuid.UUID, user_id: str) -> Row:
    parsed = parse_uuid(user_id)
    found = await MemberRepository(session).get(workspace_id, parsed) if parsed else None
    if found is None:
        raise NotFound(MEMBER_NOT_FOUND, code="member_not_found")
    return found


async def _refuse_last_owner(session: AsyncSession, member: WorkspaceMember) -> None:
    if member.role == "owner" and await MemberRepository(session).owners(member.workspace_id) <= 1:
        raise Conflict(
            "This is the workspace's last owner: make another member owner first",
            code="last_owner",
        )


async def update_member(
    session: AsyncSession,
    principal: Principal,
    user_id: str,
    data: MemberUpdate,
    origin: audit.Origin,
) -> Row:
    member, user, _ = await _member(session, principal.workspace_id, user_id)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("role") is None:
        changes.pop("role", None)
    if "available" in changes and changes["available"] is None:
        raise ValidationFailed("available: must be true or false", field="available")
    if "role" in changes and changes["role"] != member.role:
        if (changes["role"] == "owner" or member.role == "owner") and not _is_owner(principal):
            raise Forbidden("Only an owner can make or unmake an owner", code="owner_required")
        if member.role == "owner":
            await _refuse_last_owner(session, member)
    inbox = None
    if "available" in changes or "capacity" in changes:
        inbox = await MemberRepository(session).inbox_member(principal.workspace_id, user.id)
    before = {k: getattr(inbox if k != "role" else member, k) for k in changes}
    for key, value in changes.items():
        setattr(inbox if key != "role" else member, key, value)
    await session.flush()
    if changes:
        await audit.record(
            session,
            principal.workspace_id,
            AuditEventType.member_changed,
            origin,
            **_actor(principal),
            details={"member": str(user.id), "before": before, "after": changes},
        )
    return await _member(session, principal.workspace_id, str(user.id))


async def set_my_availability(session: AsyncSession, principal: Principal, available: bool) -> Row:
    if principal.user_id is None:
        raise Forbidden("Availability is a member's: log in", code="session_required")
    repo = MemberRepository(session)
    (await repo.inbox_member(principal.workspace_id, principal.user_id)).available = available
    await session.flush()
    return await _member(session, principal.workspace_id, str(principal.user_id))


async def remove_member(
    session: AsyncSession, principal: Principal, user_id: str, origin: audit.Origin
) -> uuid.UUID:
    """Remove a member (or leave, when it is the caller): their sessions in this workspace end
    and the conversations assigned to them go back to Unassigned."""
    member, user, _ = await _member(session, principal.workspace_id, user_id)
    leaving = principal.user_id == user.id
    if not leaving and "workspace:manage" not in principal.scopes:
        raise Forbidden("Only owners and admins remove members", code="role_forbidden")
    if member.role == "owner" and not (leaving or _is_owner(principal)):
        raise Forbidden("Only an owner can remove an owner", code="owner_required")
    await _refuse_last_owner(session, member)
    await MemberRepository(session).delete(principal.workspace_id, user.id)
    await auth.end_member_sessions(session, user.id, principal.workspace_id)
    await conversations.unassign_member(session, principal, user.id, "member_removed")
    await audit.record(
        session,
        principal.workspace_id,
        AuditEventType.member_removed,
        origin,
        **_actor(principal),
        details={"member": str(user.id), "email": user.email, "role": member.role},
    )
    return user.id


# -- invitations ------------------------------------------------------------------------------


def invitation_status(row: Invitation) -> str:
    if row.accepted_at is not None:
        return "accepted"
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if row.expires_at <= utcnow() else "pending"


@dataclass(frozen=True, slots=True)
class Invited:
    invitation: Invitation
    token: str
    url: str
    mailed: bool


def accept_url(base_url: str, token: str) -> str:
    # The token after '#': browsers never send it, so no server or proxy log ever holds it.
    return f"{base_url}/invitations/accept#{token}"


async def invite(
    session: AsyncSession,
    principal: Principal,
    data: InvitationCreate,
    *,
    base_url: str,
    smtp: mail.SMTP | None,
    origin: audit.Origin,
) -> Invited:
    email = users.normalize_email(data.email)
    if data.role == "owner" and not _is_owner(principal):
        raise Forbidden("Only an owner can invite an owner", code="owner_required")
    existing = await users.find_by_email(session, email)
    if existing is not None and await users.get_membership(
        session, existing.id, principal.workspace_id
    ):
        raise Conflict("email: already a member of this workspace", field="email")
    repo = MemberRepository(session)
    now = utcnow()
    earlier = await repo.pending_for(principal.workspace_id, email, now)
    if earlier is not None:  # one live invitation per address: a new one replaces it
        earlier.revoked_at = now
    token = "inv_" + new_token(32)
    row = await repo.add_invitation(
        Invitation(
            id=uuid.uuid4(),
            workspace_id=principal.workspace_id,
            email=email,
            role=data.role,
            token_hash=sha256_hex(token),
            invited_by=principal.user_id,
            created_at=now,
            expires_at=now + INVITATION_TTL,
        )
    )
    await audit.record(
        session,
        principal.workspace_id,
        AuditEventType.member_invited,
        origin,
        **_actor(principal),
        details={"invitation": str(row.id), "email": email, "role": data.role},
    )
    url = accept_url(base_url, token)
    if smtp is not None:
        workspace = await workspaces.get_workspace(session, principal.workspace_id)
        name = workspace.name if workspace else "a workspace"
        body = (
            f"You are invited to join {name} on aisoule as {data.role}.\n\n"
            f"Accept within 7 days: {url}\n"
        )

        async def send() -> None:
            try:
                await mail.send(smtp, email, f"Join {name} on aisoule", body)
            except Exception as exc:  # the inviter still has the link to pass on
                log.warning("invitation_mail_failed", error=repr(exc))

        queue.after_commit_call(session, send)
    return Invited(row, token, url, smtp is not None)


async def list_invitations(session: AsyncSession, workspace_id: uuid.UUID) -> list[Invitation]:
    return list(await MemberRepository(session).invitations(workspace_id))


async def revoke_invitation(
    session: AsyncSession, principal: Principal, invitation_id: str, origin: audit.Origin
) -> Invitation:
    parsed = parse_uuid(invitation_id)
    repo = MemberRepository(session)
    row = await repo.invitation(principal.workspace_id, parsed) if parsed else None
    if row is None:
        raise NotFound("Invitation not found", code="invitation_not_found")
    if invitation_status(row) == "pending":
        row.revoked_at = utcnow()
        await session.flush()
        await audit.record(
            session,
            principal.workspace_id,
            AuditEventType.invitation_revoked,
            origin,
            **_actor(principal),
            details={"invitation": str(row.id), "email": row.email},
        )
    return row


INVALID_INVITATION = "This invitation link is invalid, expired, revoked or already used"


async def accept(
    session: AsyncSession,
    data: InvitationAccept,
    ctx: auth.SessionContext,
    origin: audit.Origin,
) -> auth.LoginResult:
    """Join the invitation's workspace, as a new user (name and password) or as the existing
    user of its email (their password), and log in there."""
    repo = MemberRepository(session)
    row = await repo.invitation_by_token(sha256_hex(data.token.strip()))
    if row is None or invitation_status(row) != "pending":
        raise NotFound(INVALID_INVITATION, code="invitation_invalid")
    user = await users.find_by_email(session, row.email)
    if user is None:
        if not data.name or not data.name.strip():
            raise ValidationFailed(
                "name: required to create your account", field="name", code="name_required"
            )
        user = await users.create_user(
            session, email=row.email, password=data.password, name=data.name.strip()
        )
    elif not await users.verify_user_password(user, data.password):
        raise Unauthorized(
            f"password: {row.email} already has an account; give its password",
            code="invalid_credentials",
        )
    if await users.get_membership(session, user.id, row.workspace_id) is None:
        await users.add_membership(session, row.workspace_id, user.id, row.role)
    member = await users.get_membership(session, user.id, row.workspace_id)
    assert member is not None
    row.accepted_at = utcnow()
    row.accepted_by = user.id
    await session.flush()
    await audit.record(
        session,
        row.workspace_id,
        AuditEventType.member_joined,
        origin,
        user_id=user.id,
        details={"invitation": str(row.id), "email": row.email, "role": member.role},
    )
    workspace = await workspaces.get_workspace(session, row.workspace_id)
    assert workspace is not None
    return await auth.logged_in(session, user, workspace, member.role, ctx)


def smtp_of(settings: Any) -> mail.SMTP | None:
    """The SMTP server of the settings, or None when no host is set."""
    if not settings.smtp_host:
        return None
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return mail.SMTP(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=password,
        sender=settings.smtp_from,
        security=settings.smtp_security,
    )
