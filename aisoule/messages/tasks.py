"""Worker tasks of the messages domain: they own the sessions and commit (services only flush).
Tasks carry ids; the database holds the truth."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from aisoule import queue, runtime
from aisoule.db.engine import writing
from aisoule.messages import service
from aisoule.runtime import Runtime

# Messages claimed, sent and recorded together. Each chunk is sent concurrently (the pacer keeps
# the number's throughput), so one batch task keeps Meta busy at the number's rate; what a crash
# leaves ``sending`` is one chunk, marked ``unknown`` by the reconciler, never resent.
CHUNK = 50


async def send_message(message_id: str) -> None:
    """One message: a batch of one (the same claim, send and record)."""
    await send_batch([message_id])


async def send_batch(message_ids: Sequence[str]) -> None:
    """Claim and commit, send (no transaction open while Meta answers), record the answers,
    chunk by chunk. Another task given the same ids (a redelivery, the reconciler) claims what
    this one has not: no message is sent twice."""
    rt = runtime.maybe_current()
    if rt is None:  # the process is shutting down; the reconciler sends them after the restart
        return
    ids = [uuid.UUID(m) for m in message_ids]
    for start in range(0, len(ids), CHUNK):
        await _send_chunk(rt, ids[start : start + CHUNK])


async def _send_chunk(rt: Runtime, ids: list[uuid.UUID]) -> None:
    async with writing(rt.sessionmaker) as session:
        claimed = await service.claim(session, ids)
        await session.commit()
    if not claimed:
        return
    outcomes = await service.send_many(rt, claimed)
    async with writing(rt.sessionmaker) as session:
        await service.record_outcomes(
            session, rt, [(m, o) for (m, _), o in zip(claimed, outcomes, strict=True)]
        )
        await session.commit()
        await queue.flush_after_commit(session)


async def due_for_sending(rt: Runtime, now: datetime | None = None) -> list[str]:
    """The reconciler's part: queued messages nobody is sending, and crashed sends."""
    async with writing(rt.sessionmaker) as session:
        due = await service.reconcile(session, now=now)
        await session.commit()
    return due
