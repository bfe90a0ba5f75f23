"""Enqueueing background work, for services that must not import the worker.

A service that wants work done after its transaction calls ``after_commit(session, task, *ids)``;
whoever commits the session (the request dependency, a worker task) then calls
``flush_after_commit``. Tasks carry ids, never data: the database holds the truth, and the
reconciler re-queues anything a lost message left behind, so a failed enqueue loses no work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

log = structlog.get_logger(__name__)

# Task names (the worker registers one function for each).
SEND_MESSAGE = "messages.send"
SEND_BATCH = "messages.send_batch"  # a list of message ids (messages.enqueue_batch)
PROCESS_WEBHOOKS = "webhooks.process"
SYNC_TEMPLATES = "templates.sync"
CAMPAIGN_MATERIALIZE = "campaigns.materialize"  # a campaign id: write its audience as recipients
CAMPAIGN_DISPATCH = "campaigns.dispatch"  # a campaign id: send it (one dispatcher holds a lease)

Enqueue = Callable[[str, tuple[Any, ...]], Awaitable[None]]

_enqueue: Enqueue | None = None
_PENDING = "aisoule_after_commit"
_CALLS = "aisoule_after_commit_calls"


def install(enqueue: Enqueue | None) -> None:
    """Set (or clear) how this process enqueues: the worker's broker."""
    global _enqueue
    _enqueue = enqueue


async def enqueue(task: str, *args: Any) -> None:
    if _enqueue is None:
        log.warning("task_not_enqueued", task=task, reason="no task queue in this process")
        return
    try:
        await _enqueue(task, args)
    except Exception:
        # The row is in the database; the reconciler will find it.
        log.warning("task_enqueue_failed", task=task, exc_info=True)


def after_commit(session: AsyncSession, task: str, *args: Any) -> None:
    pending: list[tuple[str, tuple[Any, ...]]] = session.info.setdefault(_PENDING, [])
    if (task, args) not in pending:
        pending.append((task, args))


def after_commit_call(session: AsyncSession, call: Callable[[], Awaitable[None]]) -> None:
    """Await ``call`` once the session committed, before the request answers: network I/O that
    must not run while the transaction (SQLite's write lock) is held. Best effort: ``call``
    handles its own failures; it is lost if the process dies (keep the truth in the database)."""
    session.info.setdefault(_CALLS, []).append(call)


def discard_pending(session: AsyncSession) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_CALLS, None)


async def flush_after_commit(session: AsyncSession) -> None:
    pending: list[tuple[str, tuple[Any, ...]]] = session.info.pop(_PENDING, [])
    for task, args in pending:
        await enqueue(task, *args)
    calls: list[Callable[[], Awaitable[None]]] = session.info.pop(_CALLS, [])
    for call in calls:
        try:  # the transaction is committed: a failing call must not turn it into an error
            await call()
        except Exception:
            log.warning("after_commit_call_failed", exc_info=True)
