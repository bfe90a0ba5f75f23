from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.models import AuthSession


class AuthSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, row: AuthSession) -> AuthSession:
        self.session.add(row)
        await self.session.flush()
        return row

    async def get_live(self, token_hash: str, now: datetime) -> AuthSession | None:
        result = await self.session.execute(
            select(AuthSession).where(
                AuthSession.token_hash == token_hash, AuthSession.expires_at > now
            )
        )
        return result.scalar_one_or_none()

    async def delete(self, token_hash: str) -> None:
        await self.session.execute(delete(AuthSession).where(AuthSession.token_hash == token_hash))

    async def delete_expired_for_user(self, user_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            delete(AuthSession).where(AuthSession.user_id == user_id, AuthSession.expires_at <= now)
        )

    async def delete_for_user(self, user_id: uuid.UUID) -> None:
        await self.session.execute(delete(AuthSession).where(AuthSession.user_id == user_id))

    async def set_workspace(self, token_hash: str, workspace_id: uuid.UUID) -> None:
        await self.session.execute(
            update(AuthSession)
            .where(AuthSession.token_hash == token_hash)
            .values(workspace_id=workspace_id)
        )
