from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select

from aisoule.db.repository import WorkspaceScopedRepository
from aisoule.models import MessageTemplate


class TemplateRepository(WorkspaceScopedRepository[MessageTemplate]):
    model = MessageTemplate

    @staticmethod
    def _filters(
        workspace_id: uuid.UUID,
        *,
        status: str | None = None,
        name: str | None = None,
        account_id: uuid.UUID | None = None,
    ) -> list[Any]:
        where: list[Any] = [MessageTemplate.workspace_id == workspace_id]
        if status is not None:
            where.append(MessageTemplate.status == status)
        if name is not None:
            where.append(MessageTemplate.name.contains(name, autoescape=True))
        if account_id is not None:
            where.append(MessageTemplate.account_id == account_id)
        return where

    async def search(
        self,
        workspace_id: uuid.UUID,
        *,
        limit: int,
        offset: int,
        status: str | None = None,
        name: str | None = None,
        account_id: uuid.UUID | None = None,
    ) -> tuple[Sequence[MessageTemplate], int]:
        where = self._filters(workspace_id, status=status, name=name, account_id=account_id)
        rows = await self.session.execute(
            select(MessageTemplate)
            .where(*where)
            .order_by(MessageTemplate.created_at.desc(), MessageTemplate.id)
            .limit(limit)
            .offset(offset)
        )
        total = await self.session.execute(
            select(func.count()).select_from(MessageTemplate).where(*where)
        )
        return rows.scalars().all(), int(total.scalar_one())

    async def get(self, workspace_id: uuid.UUID, template_id: uuid.UUID) -> MessageTemplate | None:
        result = await self.session.execute(
            select(MessageTemplate).where(
                MessageTemplate.workspace_id == workspace_id, MessageTemplate.id == template_id
            )
        )
        return result.scalar_one_or_none()

    async def find(
        self, workspace_id: uuid.UUID, account_id: uuid.UUID, name: str, language: str
    ) -> MessageTemplate | None:
        result = await self.session.execute(
            select(MessageTemplate).where(
                MessageTemplate.workspace_id == workspace_id,
                MessageTemplate.account_id == account_id,
                MessageTemplate.name == name,
                MessageTemplate.language == language,
            )
        )
        return result.scalar_one_or_none()

    async def named(
        self, workspace_id: uuid.UUID, account_id: uuid.UUID, name: str
    ) -> Sequence[MessageTemplate]:
        """Every language of a template this account may send (its own, or the workspace's)."""
        result = await self.session.execute(
            select(MessageTemplate).where(
                MessageTemplate.workspace_id == workspace_id,
                or_(MessageTemplate.account_id == account_id, MessageTemplate.account_id.is_(None)),
                MessageTemplate.name == name,
            )
        )
        return result.scalars().all()

    async def of_account(
        self, workspace_id: uuid.UUID, account_id: uuid.UUID
    ) -> Sequence[MessageTemplate]:
        result = await self.session.execute(
            select(MessageTemplate).where(
                MessageTemplate.workspace_id == workspace_id,
                MessageTemplate.account_id == account_id,
            )
        )
        return result.scalars().all()

    async def by_meta_id(
        self, account_ids: Sequence[uuid.UUID], meta_id: str
    ) -> Sequence[MessageTemplate]:
        """The rows of these accounts for one Meta template."""
        if not account_ids:
            return []
        result = await self.session.execute(
            select(MessageTemplate).where(
                MessageTemplate.account_id.in_(account_ids), MessageTemplate.meta_id == meta_id
            )
        )
        return result.scalars().all()

    async def by_name_language(
        self, account_ids: Sequence[uuid.UUID], name: str, language: str
    ) -> Sequence[MessageTemplate]:
        if not account_ids:
            return []
        result = await self.session.execute(
            select(MessageTemplate).where(
                MessageTemplate.account_id.in_(account_ids),
                MessageTemplate.name == name,
                MessageTemplate.language == language,
            )
        )
        return result.scalars().all()

    async def add(self, template: MessageTemplate) -> MessageTemplate:
        self.session.add(template)
        await self.session.flush()
        return template

    async def delete(self, template: MessageTemplate) -> None:
        await self.session.delete(template)
        await self.session.flush()
