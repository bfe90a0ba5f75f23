"""API key usage: counted in memory per process, added to the database every few seconds.

A request never waits on this. Each process adds its own deltas (an additive upsert), so several
processes and machines sum correctly; a crashed process loses at most one flush interval of counts.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.api_keys.repository import APIKeyRepository
from aisoule.kit.time import utcnow

UsageKey = tuple[uuid.UUID, date, int]


class UsageRecorder:
    def __init__(self) -> None:
        self.pending: Counter[UsageKey] = Counter()

    def record(self, api_key_id: uuid.UUID, status: int) -> None:
        day = utcnow().date()
        self.pending[(api_key_id, day, max(1, min(5, status // 100)))] += 1

    def take(self) -> Counter[UsageKey]:
        taken, self.pending = self.pending, Counter()
        return taken

    def give_back(self, counts: Counter[UsageKey]) -> None:
        self.pending.update(counts)


async def flush(session: AsyncSession, counts: Counter[UsageKey]) -> None:
    if counts:
        await APIKeyRepository(session).add_usage(counts)
