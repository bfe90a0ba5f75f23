"""Worker task of Meta's inbound webhooks. One run at a time per process: a request for another
run while one is going sets a flag, and the running loop goes round again (on PostgreSQL, other
processes share the events through SKIP LOCKED). Between rounds it pauses briefly, so that under
load a round takes many deliveries' events at once instead of one delivery's each."""

from __future__ import annotations

import asyncio

from aisoule import queue, runtime
from aisoule.db.engine import writing
from aisoule.runtime import Runtime
from aisoule.whatsapp.inbound import applying

ROUND_PAUSE = 0.05  # seconds

_running = False
_again = False
_again_retry = False


async def process_webhooks(mode: str = "") -> None:
    global _running, _again, _again_retry
    retry = mode == "retry"
    if _running:
        _again = True
        _again_retry = _again_retry or retry
        return
    _running = True
    try:
        while True:
            _again, _again_retry = False, False
            rt = runtime.maybe_current()
            if rt is None:  # shutting down: the events stay stored, the next start applies them
                return
            await process(rt, retry=retry)
            if not _again:
                return
            retry = _again_retry
            await asyncio.sleep(ROUND_PAUSE)
    finally:
        _running = False


async def process(rt: Runtime, *, retry: bool = False) -> int:
    """Apply unprocessed events in batches, one transaction each, until none is left."""
    handled = 0
    after = 0
    while True:
        async with writing(rt.sessionmaker) as session:
            batch = await applying.process_batch(session, rt, after=after, retry=retry)
            await session.commit()
            if batch is None:
                return handled
            await queue.flush_after_commit(session)
        handled += batch[0]
        after = batch[1]


async def has_pending(rt: Runtime) -> bool:
    """The reconciler's part: whether events wait to be (re)applied."""
    async with rt.sessionmaker() as session:
        pending = await applying.has_pending(session)
        await session.rollback()
    return pending
