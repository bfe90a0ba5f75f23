"""RepositoryBase: workspace-scoped listing shared by the simple domains."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.db.base import Model

M = TypeVar("M", bound=Model)


class WorkspaceScopedRepository(Generic[M]):
    model: ClassVar[type[Any]]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list_page(self, workspace_id: uuid.UUID, *, limit: int, offset: int) -> Sequence[M]:
        model = self.model
        result = await self.session.execute(
            select(model)
            .where(model.workspace_id == workspace_id)
            .order_by(model.created_at.desc(), model.id)
            .limit(limit)
            .offset(offset)
        )
        return result.scalars().all()

    async def count(self, workspace_id: uuid.UUID) -> int:
        model = self.model
        result = await self.session.execute(
            select(func.count()).select_from(model).where(model.workspace_id == workspace_id)
        )
        return int(result.scalar_one())
