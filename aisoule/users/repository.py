from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.models import User, Workspace, WorkspaceMember


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, user: User, member: WorkspaceMember) -> User:
        self.session.add(user)
        await self.session.flush()
        self.session.add(member)
        await self.session.flush()
        return user

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def get_by_email(self, email: str) -> User | None:
        result = await self.session.execute(select(User).where(User.email == email))
        return result.scalar_one_or_none()

    async def first_membership(self, user_id: uuid.UUID) -> WorkspaceMember | None:
        result = await self.session.execute(
            select(WorkspaceMember)
            .where(WorkspaceMember.user_id == user_id)
            .order_by(WorkspaceMember.created_at)
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def membership(
        self, user_id: uuid.UUID, workspace_id: uuid.UUID
    ) -> WorkspaceMember | None:
        return await self.session.get(WorkspaceMember, (workspace_id, user_id))

    async def memberships(self, user_id: uuid.UUID) -> list[tuple[Workspace, str]]:
        """The user's workspaces and their role in each, oldest membership first."""
        result = await self.session.execute(
            select(Workspace, WorkspaceMember.role)
            .join(WorkspaceMember, WorkspaceMember.workspace_id == Workspace.id)
            .where(WorkspaceMember.user_id == user_id)
            .order_by(WorkspaceMember.created_at, Workspace.name)
        )
        return [(ws, role) for ws, role in result.tuples().all()]

    async def workspaces_of(self, user_id: uuid.UUID) -> list[tuple[Workspace, str]]:
        return await self.memberships(user_id)

    async def add_user(self, user: User) -> User:
        self.session.add(user)
        await self.session.flush()
        return user

    async def add_member(self, member: WorkspaceMember) -> WorkspaceMember:
        self.session.add(member)
        await self.session.flush()
        return member

    async def by_ids(self, ids: list[uuid.UUID]) -> list[User]:
        if not ids:
            return []
        result = await self.session.execute(select(User).where(User.id.in_(ids)))
        return list(result.scalars().all())
