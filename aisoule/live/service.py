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


_DEFERRED = "aisoule_live_deferred"


async def publish(
    session: AsyncSession, workspace_id: uuid.UUID, kind: str, data: dict[str, Any]
) -> None:
    r"""Append an event to the workspace's log in the caller's transaction (it exists if and
    only if the change it describes commits) and have it announced at commit.

    Numbering takes the workspace's counter row, held until commit: in a session that
    ``defer``\ red, the events wait in the session and are numbered together by ``flush``
    just before the commit, so a long transaction (a batch of webhooks) holds the row for an
    instant instead of its whole length and the workers of several processes apply in parallel.
    """
    deferred: list[tuple[uuid.UUID, str, dict[str, Any]]] | None = session.info.get(_DEFERRED)
    if deferred is not None:
        deferred.append((workspace_id, kind, data))
        return
    await _append(session, workspace_id, [(kind, data)])


def defer(session: AsyncSession) -> None:
    """From now on this session's events wait for ``flush`` (call it before committing)."""
    session.info.setdefault(_DEFERRED, [])


def mark(session: AsyncSession) -> int:
    """A position in the waiting events, to ``drop`` back to when a savepoint rolls back."""
    return len(session.info.get(_DEFERRED) or ())


def drop(session: AsyncSession, position: int) -> None:
    """Forget the events published after ``position`` (their changes were rolled back)."""
    deferred = session.info.get(_DEFERRED)
    if deferred is not None:
        del deferred[position:]


async def flush(session: AsyncSession) -> None:
    """Number and write the waiting events (workspace by workspace in id order, so that two
    transactions never take two counters in opposite orders); the session stops deferring."""
    deferred: list[tuple[uuid.UUID, str, dict[str, Any]]] = session.info.pop(_DEFERRED, None) or []
    by_workspace: dict[uuid.UUID, list[tuple[str, dict[str, Any]]]] = {}
    for workspace_id, kind, data in deferred:
        by_workspace.setdefault(workspace_id, []).append((kind, data))
    for workspace_id in sorted(by_workspace, key=str):
        await _append(session, workspace_id, by_workspace[workspace_id])


async def _append(
    session: AsyncSession, workspace_id: uuid.UUID, events: list[tuple[str, dict[str, Any]]]
) -> None:
    repo = LiveRepository(session)
    await repo.append(workspace_id, events, utcnow())
    current = bus.current()
    if current is not None and current.notifies_in_transaction and repo.postgres:
        await repo.notify(workspace_id)
    elif current is not None:
        announce = current.announce

        async def wake() -> None:
            await announce(workspace_id)

        queue.after_commit_call(session, wake)


async def since(
    session: AsyncSession, workspace_id: uuid.UUID, after: int, limit: int = 200
) -> Sequence[LiveEvent]:
    return await LiveRepository(session).since(workspace_id, after, limit)


async def bounds(session: AsyncSession, workspace_id: uuid.UUID) -> tuple[int, int]:
    """(the newest event number, the oldest still kept) of the workspace."""
    return await LiveRepository(session).bounds(workspace_id)


async def purge_old(session: AsyncSession) -> int:
    return await LiveRepository(session).purge(utcnow() - RETENTION)
