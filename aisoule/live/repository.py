"""Live event SQL: the per-workspace counter, the log, and PostgreSQL's NOTIFY."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy import insert as insert_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.models import LiveEvent, LiveEventCounter

CHANNEL = "aisoule_live"


class LiveRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    async def append(
        self, workspace_id: uuid.UUID, events: list[tuple[str, dict[str, Any]]], now: datetime
    ) -> int:
        """The next numbers of this workspace's log for ``events`` (kind, data), in order; the
        last one. The counter row is updated (so locked) until this transaction ends: numbers
        are handed out in commit order."""
        n = len(events)
        last = (
            await self.session.execute(
                update(LiveEventCounter)
                .where(LiveEventCounter.workspace_id == workspace_id)
                .values(last=LiveEventCounter.last + n)
                .returning(LiveEventCounter.last)
            )
        ).scalar_one_or_none()
        if last is None:
            insert = (postgresql.insert if self.postgres else sqlite.insert)(LiveEventCounter)
            last = (
                await self.session.execute(
                    insert.values(workspace_id=workspace_id, last=n)
                    .on_conflict_do_update(
                        index_elements=["workspace_id"], set_={"last": LiveEventCounter.last + n}
                    )
                    .returning(LiveEventCounter.last)
                )
            ).scalar_one()
        first = int(last) - n + 1
        await self.session.execute(
            insert_(LiveEvent),
            [
                {
                    "workspace_id": workspace_id,
                    "seq": first + i,
                    "kind": kind,
                    "data": data,
                    "created_at": now,
                }
                for i, (kind, data) in enumerate(events)
            ],
        )
        return int(last)

    async def notify(self, workspace_id: uuid.UUID) -> None:
        """PostgreSQL delivers it to every LISTENing process when (and only if) this commits."""
        await self.session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANNEL, "payload": str(workspace_id)},
        )

    async def since(self, workspace_id: uuid.UUID, after: int, limit: int) -> Sequence[LiveEvent]:
        result = await self.session.execute(
            select(LiveEvent)
            .where(LiveEvent.workspace_id == workspace_id, LiveEvent.seq > after)
            .order_by(LiveEvent.seq)
            .limit(limit)
        )
        return result.scalars().all()

    async def bounds(self, workspace_id: uuid.UUID) -> tuple[int, int]:
        """(the last number handed out, the oldest number still kept) — (0, 1) when none."""
        last = (
            await self.session.execute(
                select(LiveEventCounter.last).where(LiveEventCounter.workspace_id == workspace_id)
            )
        ).scalar_one_or_none()
        oldest = (
            await self.session.execute(
                select(func.min(LiveEvent.seq)).where(LiveEvent.workspace_id == workspace_id)
            )
        ).scalar_one_or_none()
        last = int(last or 0)
        return last, int(oldest) if oldest is not None else last + 1

    async def purge(self, before: datetime) -> int:
        result = await self.session.execute(delete(LiveEvent).where(LiveEvent.created_at < before))
        return int(getattr(result, "rowcount", 0) or 0)
