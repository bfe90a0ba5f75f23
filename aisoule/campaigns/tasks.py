"""Worker tasks of the campaigns engine: they carry a campaign id; the database holds the truth
(its status, cursor, lease and recipients), so a duplicate or a redelivered task is harmless and
the reconciler (``due_work``) starts again whatever a crash stopped."""

from __future__ import annotations

import uuid
from typing import Any

from aisoule import runtime
from aisoule.campaigns import engine
from aisoule.runtime import Runtime


async def materialize(campaign_id: str) -> None:
    """Write the campaign's audience as recipients, chunk by chunk."""
    rt = runtime.maybe_current()
    if rt is None:  # shutting down: the reconciler continues after the restart
        return
    await engine.materialize(rt, uuid.UUID(campaign_id))


async def dispatch(campaign_id: str) -> None:
    """Send the campaign (or wind up a cancelled one), if no other dispatcher holds it."""
    rt = runtime.maybe_current()
    if rt is None:
        return
    await engine.dispatch(rt, uuid.UUID(campaign_id))


async def due_work(rt: Runtime) -> list[tuple[str, tuple[Any, ...]]]:
    """The reconciler's part: (task, args) for the campaigns a crash or a lost queue left."""
    return [(task, (str(cid),)) for task, cid in await engine.due_work(rt)]
