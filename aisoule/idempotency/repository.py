from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.models import IdempotencyKey


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        bind = session.bind
        self.dialect = bind.dialect.name if bind is not None else "sqlite"

    async def get(self, workspace_id: uuid.UUID, key: str) -> IdempotencyKey | None:
        result = await self.session.execute(
            select(IdempotencyKey)
            .where(IdempotencyKey.workspace_id == workspace_id, IdempotencyKey.key == key)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def insert_if_absent(self, values: dict[str, Any]) -> bool:
        """Reserve; False when the key exists (on PostgreSQL: waits for a concurrent reserver)."""
        module = postgresql if self.dialect == "postgresql" else sqlite
        stmt = (
            module.insert(IdempotencyKey)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["workspace_id", "key"])
            .returning(IdempotencyKey.key)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none() is not None

    async def take_over(
        self, workspace_id: uuid.UUID, key: str, stale_until: datetime, locked_until: datetime
    ) -> bool:
        result = await self.session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.workspace_id == workspace_id,
                IdempotencyKey.key == key,
                IdempotencyKey.status == "running",
                IdempotencyKey.locked_until == stale_until,
            )
            .values(locked_until=locked_until)
            .returning(IdempotencyKey.key)
        )
        return result.scalar_one_or_none() is not None

    async def complete(
        self,
        workspace_id: uuid.UUID,
        key: str,
        status: int,
        headers: dict[str, Any],
        body: bytes,
    ) -> None:
        await self.session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.workspace_id == workspace_id, IdempotencyKey.key == key)
            .values(
                status="done", response_status=status, response_headers=headers, response_body=body
            )
        )

    async def delete(self, workspace_id: uuid.UUID, key: str) -> None:
        await self.session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.workspace_id == workspace_id, IdempotencyKey.key == key
            )
        )

    async def delete_expired(self, now: datetime) -> int:
        result = await self.session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now)
        )
        return int(getattr(result, "rowcount", 0) or 0)
