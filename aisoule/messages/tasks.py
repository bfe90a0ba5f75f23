"""Worker tasks of the messages domain: they own the sessions and commit (services only flush).
Tasks carry ids; the database holds the truth."""

from __future__ import annotations

import uuid

from aisoule import queue, runtime
from aisoule.db.engine import writing
from aisoule.messages import service
from aisoule.runtime import Runtime


async def send_message(message_id: str) -> None:
    """Claim and commit, send (no transaction open while Meta answers), record the answer."""
    rt = runtime.maybe_current()
    if rt is None:  # the process is shutting down; the reconciler sends it after the restart
        return
    mid = uuid.UUID(message_id)
    async with writing(rt.sessionmaker) as session:
        if not await service.claim(session, mid):
            return
        await session.commit()
    async with rt.sessionmaker() as session:
        loaded = await service.load_for_send(session, mid)
        await session.commit()
    if loaded is None:  # pragma: no cover - deleted meanwhile
        return
    outcome = await service.send_to_meta(rt, *loaded)
    async with writing(rt.sessionmaker) as session:
        await service.record_outcome(session, rt, mid, outcome)
        await session.commit()
        await queue.flush_after_commit(session)


async def due_for_sending(rt: Runtime) -> list[str]:
    """The reconciler's part: queued messages nobody is sending, and crashed sends."""
    async with writing(rt.sessionmaker) as session:
        due = await service.reconcile(session)
        await session.commit()
    return due
