"""The request side's one write: store a verified delivery's events, each key once, and have them
applied after commit. Receiving does the least it can (one INSERT ... ON CONFLICT DO NOTHING, a
commit), so Meta gets its 200 fast; applying happens in ``applying``, on any worker."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from aisoule import queue
from aisoule.whatsapp.inbound.repository import WebhookEventRepository
from aisoule.whatsapp.inbound.signature import Delivery


async def receive(session: AsyncSession, delivery: Delivery) -> dict[str, int]:
    """Store the delivery's proven events (each key once) and have them applied after commit:
    events in the delivery, rows new to us, events not proven (not stored)."""
    new = await WebhookEventRepository(session).insert_new(delivery.rows)
    if new:
        queue.after_commit(session, queue.PROCESS_WEBHOOKS)
    return {"received": delivery.received, "new": new, "unproven": delivery.unproven}
