from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.models import AuditEvent


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, event: AuditEvent) -> None:
        self.session.add(event)
        await self.session.flush()

    async def list_page(
        self, workspace_id: uuid.UUID, *, limit: int, offset: int, event: str | None
    ) -> tuple[Sequence[AuditEvent], int]:
        where = [AuditEvent.workspace_id == workspace_id]
        if event is not None:
            where.append(AuditEvent.event == event)
        rows = await self.session.execute(
            select(AuditEvent)
            .where(*where)
            .order_by(AuditEvent.id.desc())
            .limit(limit)
            .offset(offset)
        )
        total = await self.session.execute(
            select(func.count()).select_from(AuditEvent).where(*where)
        )
        return rows.scalars().all(), int(total.scalar_one())
