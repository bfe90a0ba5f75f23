"""Users: creation with a workspace, and password checks."""

from __future__ import annotations

import uuid

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule import runtime
from aisoule.accounts import service as accounts_service
from aisoule.config import get_settings
from aisoule.exceptions import Conflict, ValidationFailed
from aisoule.kit import passwords
from aisoule.kit.time import utcnow
from aisoule.models import User, Workspace, WorkspaceMember
from aisoule.runtime import Runtime
from aisoule.users.repository import UserRepository
from aisoule.workspaces import service as workspace_service

MIN_PASSWORD = 8
MAX_PASSWORD = 256


def _cost() -> passwords.Cost:
    """The settings' argon2 cost (this process's runtime's; a CLI command's own settings)."""
    rt = runtime.maybe_current()
    s = rt.settings if rt is not None else get_settings()
    return passwords.Cost(
        s.password_hash_time_cost, s.password_hash_memory_kib, s.password_hash_parallelism
    )


async def hash_password(password: str) -> str:
    return await passwords.hash_password(password, _cost())


async def verify_password(password: str, password_hash: str | None) -> bool:
    return await passwords.verify_password(password, password_hash, _cost())


def normalize_email(value: str, field: str = "email") -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed(f"{field}: {exc}", field=field) from exc


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(
            f"password: must be at least {MIN_PASSWORD} characters", field="password"
        )
    if len(password) > MAX_PASSWORD:
        raise ValidationFailed(
            f"password: must be at most {MAX_PASSWORD} characters", field="password"
        )


async def create_user_with_workspace(
    session: AsyncSession,
    rt: Runtime,
    *,
    email: str,
    password: str,
    name: str,
    workspace_name: str,
) -> tuple[User, Workspace, WorkspaceMember]:
    """The user, their new workspace and its sandbox account (when sandboxes are on)."""
    email = normalize_email(email)
    check_password_strength(password)
    repo = UserRepository(session)
    if await repo.get_by_email(email) is not None:
        raise Conflict("email: an account with this email already exists", field="email")
    workspace = await workspace_service.create_workspace(session, workspace_name)
    await accounts_service.create_sandbox(session, rt, workspace.id)
    now = utcnow()
    user = User(
        id=uuid.uuid4(),
        email=email,
        name=name,
        password_hash=await hash_password(password),
        created_at=now,
    )
    member = WorkspaceMember(
        workspace_id=workspace.id, user_id=user.id, role="owner", created_at=now
    )
    await repo.add(user, member)
    return user, workspace, member


async def check_credentials(
    session: AsyncSession, email: str, password: str
) -> tuple[User, WorkspaceMember] | None:
    """The user and their first workspace membership, or None. Same work whether or not the email exists."""
    repo = UserRepository(session)
    try:
        normalized = validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        normalized = None
    user = await repo.get_by_email(normalized) if normalized else None
    ok = await verify_password(password, user.password_hash if user else None)
    if not ok or user is None:
        return None
    member = await repo.first_membership(user.id)
    if member is None:
        return None
    return user, member


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await UserRepository(session).get(user_id)


async def get_membership(
    session: AsyncSession, user_id: uuid.UUID, workspace_id: uuid.UUID
) -> WorkspaceMember | None:
    return await UserRepository(session).membership(user_id, workspace_id)


async def find_by_email(session: AsyncSession, email: str) -> User | None:
    return await UserRepository(session).get_by_email(normalize_email(email))


async def first_membership(session: AsyncSession, user_id: uuid.UUID) -> WorkspaceMember | None:
    return await UserRepository(session).first_membership(user_id)


async def memberships(session: AsyncSession, user_id: uuid.UUID) -> list[tuple[Workspace, str]]:
    """Every workspace the user belongs to, with their role (the dashboard's switcher)."""
    return await UserRepository(session).memberships(user_id)


async def add_workspace(
    session: AsyncSession, rt: Runtime, user_id: uuid.UUID, name: str
) -> Workspace:
    """Another workspace for an existing user, who owns it (with its own sandbox number)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed(
            "workspace_name: give a name of 1 to 200 characters", field="workspace_name"
        )
    workspace = await workspace_service.create_workspace(session, name)
    await accounts_service.create_sandbox(session, rt, workspace.id)
    await UserRepository(session).add_member(
        WorkspaceMember(
            workspace_id=workspace.id, user_id=user_id, role="owner", created_at=utcnow()
        )
    )
    return workspace


async def set_password(session: AsyncSession, email: str, password: str) -> User:
    """Operator action (CLI, the forgotten-password path without SMTP): a new password."""
    check_password_strength(password)
    user = await find_by_email(session, email)
    if user is None:
        raise ValidationFailed("email: no account with this email", field="email")
    user.password_hash = await hash_password(password)
    await session.flush()
    return user


async def create_user(session: AsyncSession, *, email: str, password: str, name: str) -> User:
    """A user without a workspace yet (an invitation's new member: the caller adds them)."""
    email = normalize_email(email)
    check_password_strength(password)
    repo = UserRepository(session)
    if await repo.get_by_email(email) is not None:
        raise Conflict("email: an account with this email already exists", field="email")
    user = User(
        id=uuid.uuid4(),
        email=email,
        name=name,
        password_hash=await hash_password(password),
        created_at=utcnow(),
    )
    return await repo.add_user(user)


async def verify_user_password(user: User, password: str) -> bool:
    return await verify_password(password, user.password_hash)


async def add_membership(
    session: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID, role: str
) -> WorkspaceMember:
    return await UserRepository(session).add_member(
        WorkspaceMember(workspace_id=workspace_id, user_id=user_id, role=role, created_at=utcnow())
    )


async def users_by_id(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, User]:
    return {u.id: u for u in await UserRepository(session).by_ids(sorted(set(ids)))}


async def workspaces_of(session: AsyncSession, user_id: uuid.UUID) -> list[tuple[Workspace, str]]:
    """The workspaces a user belongs to, with their role in each (oldest membership first)."""
    return await UserRepository(session).workspaces_of(user_id)
