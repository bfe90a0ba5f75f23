"""Publishing live events (in the writer's transaction) and reading them back for a stream."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aisoule import queue
from aisoule.kit.time import utcnow
from aisoule.live import bus
from aisoule.live.repository import LiveRepository
from aisoule.models import LiveEvent

RETENTION = timedelta(days=3)  # a browser away longer than this reloads instead of replaying

# Kinds (the SSE ``event:`` field).
MESSAGE_CREATED = "message.created"
MESSAGE_STATUS = "message.status"
CONVERSATION_UPDATED = "conversation.updated"
NOTE_CREATED = "note.created"


async def publish(
    session: AsyncSession, workspace_id: uuid.UUID, kind: str, data: dict[str, Any]
) -> int:
    """Append an event to the workspace's log in the caller's transaction (it exists if and
    only if the change it describes commits) and have it announced at commit; its number."""
    repo = LiveRepository(session)
    seq = await repo.append(workspace_id, kind, data, utcnow())
    current = bus.current()
    if current is not None and current.notifies_in_transaction and repo.postgres:
        await repo.notify(workspace_id)
    elif current is not None:
        announce = current.announce

        async def wake() -> None:
            await announce(workspace_id)

        queue.after_commit_call(session, wake)
    return seq


async def since(
    session: AsyncSession, workspace_id: uuid.UUID, after: int, limit: int = 200
) -> Sequence[LiveEvent]:
    return await LiveRepository(session).since(workspace_id, after, limit)


async def bounds(session: AsyncSession, workspace_id: uuid.UUID) -> tuple[int, int]:
    """(the newest event number, the oldest still kept) of the workspace."""
    return await LiveRepository(session).bounds(workspace_id)


async def purge_old(session: AsyncSession) -> int:
    return await LiveRepository(session).purge(utcnow() - RETENTION)
