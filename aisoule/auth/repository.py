from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.models import AuthSession, WorkspaceMember


class AuthSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, row: AuthSession) -> AuthSession:
        self.session.add(row)
        await self.session.flush()
        return row

    async def get_live(self, token_hash: str, now: datetime) -> tuple[AuthSession, str] | None:
        """The live session and its user's role in the session's workspace (None when either
        is gone: a removed member's sessions stop working at once)."""
        result = await self.session.execute(
            select(AuthSession, WorkspaceMember.role)
            .join(
                WorkspaceMember,
                (WorkspaceMember.user_id == AuthSession.user_id)
                & (WorkspaceMember.workspace_id == AuthSession.workspace_id),
            )
            .where(AuthSession.token_hash == token_hash, AuthSession.expires_at > now)
        )
        row = result.one_or_none()
        return None if row is None else (row[0], row[1])

    async def move(self, token_hash: str, workspace_id: uuid.UUID) -> None:
        """The session now works in ``workspace_id`` (a member switching workspaces)."""
        await self.session.execute(
            update(AuthSession)
            .where(AuthSession.token_hash == token_hash)
            .values(workspace_id=workspace_id)
        )

    async def delete_for_member(self, user_id: uuid.UUID, workspace_id: uuid.UUID) -> None:
        await self.session.execute(
            delete(AuthSession).where(
                AuthSession.user_id == user_id, AuthSession.workspace_id == workspace_id
            )
        )

    async def delete(self, token_hash: str) -> None:
        await self.session.execute(delete(AuthSession).where(AuthSession.token_hash == token_hash))

    async def delete_expired_for_user(self, user_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            delete(AuthSession).where(AuthSession.user_id == user_id, AuthSession.expires_at <= now)
        )

    async def delete_for_user(self, user_id: uuid.UUID) -> None:
        await self.session.execute(delete(AuthSession).where(AuthSession.user_id == user_id))
