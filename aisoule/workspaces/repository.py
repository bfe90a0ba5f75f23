from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.models import Stage, Workspace


class WorkspaceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, workspace: Workspace, stages: list[Stage]) -> Workspace:
        self.session.add(workspace)
        await self.session.flush()
        self.session.add_all(stages)
        await self.session.flush()
        return workspace

    async def get(self, workspace_id: uuid.UUID) -> Workspace | None:
        return await self.session.get(Workspace, workspace_id)

    async def stage_names(self, workspace_id: uuid.UUID) -> list[str]:
        result = await self.session.execute(
            select(Stage.name).where(Stage.workspace_id == workspace_id).order_by(Stage.position)
        )
        return list(result.scalars())
