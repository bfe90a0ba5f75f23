"""Members and invitations SQL."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.models import InboxMember, Invitation, User, WorkspaceMember

Row = tuple[WorkspaceMember, User, InboxMember | None]


class MemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list(self, workspace_id: uuid.UUID) -> list[Row]:
        result = await self.session.execute(
            self._select()
            .where(WorkspaceMember.workspace_id == workspace_id)
            .order_by(WorkspaceMember.created_at, User.email)
        )
        return [(m, u, i) for m, u, i in result.all()]

    @staticmethod
    def _select() -> Any:
        return (
            select(WorkspaceMember, User, InboxMember)
            .join(User, User.id == WorkspaceMember.user_id)
            .outerjoin(
                InboxMember,
                (InboxMember.workspace_id == WorkspaceMember.workspace_id)
                & (InboxMember.user_id == WorkspaceMember.user_id),
            )
        )

    async def inbox_member(self, workspace_id: uuid.UUID, user_id: uuid.UUID) -> InboxMember:
        """The member's inbox row, made (available, no limit) when missing."""
        row = await self.session.get(InboxMember, (workspace_id, user_id))
        if row is None:
            row = InboxMember(workspace_id=workspace_id, user_id=user_id, available=True)
            self.session.add(row)
            await self.session.flush()
        return row

    async def get(self, workspace_id: uuid.UUID, user_id: uuid.UUID) -> Row | None:
        result = await self.session.execute(
            self._select().where(
                WorkspaceMember.workspace_id == workspace_id, WorkspaceMember.user_id == user_id
            )
        )
        row = result.one_or_none()
        return None if row is None else (row[0], row[1], row[2])

    async def owners(self, workspace_id: uuid.UUID) -> int:
        result = await self.session.execute(
            select(func.count())
            .select_from(WorkspaceMember)
            .where(WorkspaceMember.workspace_id == workspace_id, WorkspaceMember.role == "owner")
        )
        return int(result.scalar_one())

    async def delete(self, workspace_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await self.session.execute(
            delete(InboxMember).where(
                InboxMember.workspace_id == workspace_id, InboxMember.user_id == user_id
            )
        )
        await self.session.execute(
            delete(WorkspaceMember).where(
                WorkspaceMember.workspace_id == workspace_id, WorkspaceMember.user_id == user_id
            )
        )

    # --- invitations ---

    async def add_invitation(self, row: Invitation) -> Invitation:
        self.session.add(row)
        await self.session.flush()
        return row

    async def invitations(self, workspace_id: uuid.UUID) -> Sequence[Invitation]:
        result = await self.session.execute(
            select(Invitation)
            .where(Invitation.workspace_id == workspace_id)
            .order_by(Invitation.created_at.desc())
            .limit(200)
        )
        return result.scalars().all()

    async def invitation(
        self, workspace_id: uuid.UUID, invitation_id: uuid.UUID
    ) -> Invitation | None:
        result = await self.session.execute(
            select(Invitation).where(
                Invitation.workspace_id == workspace_id, Invitation.id == invitation_id
            )
        )
        return result.scalar_one_or_none()

    async def invitation_by_token(self, token_hash: str) -> Invitation | None:
        result = await self.session.execute(
            select(Invitation).where(Invitation.token_hash == token_hash).with_for_update()
        )
        return result.scalar_one_or_none()

    async def pending_for(
        self, workspace_id: uuid.UUID, email: str, now: datetime
    ) -> Invitation | None:
        result = await self.session.execute(
            select(Invitation).where(
                Invitation.workspace_id == workspace_id,
                Invitation.email == email,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > now,
            )
        )
        return result.scalars().first()
