"""PLACEHOLDER, replaced by the engine branch (part B of issue 10): the signatures of
CAMPAIGNS.md, moving only a campaign's status and timestamps, with zero stats and no recipients,
so that the definition's routes and tests run before the engine is merged. It sends nothing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.campaigns import status as st
from aisoule.kit.time import utcnow
from aisoule.models import Campaign


def _zero() -> dict[str, Any]:
    stats: dict[str, Any] = {bucket: 0 for bucket in st.STAT_BUCKETS}
    return {
        "total": 0,
        **stats,
        "replied": 0,
        "resent": 0,
        "skipped_reasons": {},
        "failed_codes": {},
    }


async def _move(session: AsyncSession, campaign: Campaign, status: str) -> None:
    campaign.status = status
    campaign.status_reason = None
    campaign.status_detail = None
    campaign.updated_at = utcnow()
    await session.flush()


async def start(session: AsyncSession, campaign: Campaign, *, now: datetime) -> None:
    campaign.started_at = now
    await _move(session, campaign, st.RUNNING)


async def schedule(session: AsyncSession, campaign: Campaign) -> None:
    await _move(session, campaign, st.SCHEDULED)


async def pause(session: AsyncSession, campaign: Campaign) -> None:
    await _move(session, campaign, st.PAUSED)


async def resume(session: AsyncSession, campaign: Campaign) -> None:
    await _move(session, campaign, st.RUNNING)


async def cancel(session: AsyncSession, campaign: Campaign) -> None:
    campaign.completed_at = utcnow()
    await _move(session, campaign, st.CANCELLED)


async def resend_unknown(session: AsyncSession, campaign: Campaign) -> int:
    return 0


async def stats(session: AsyncSession, campaign_id: uuid.UUID) -> dict[str, Any]:
    return _zero()


async def stats_many(
    session: AsyncSession, campaign_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    return {i: _zero() for i in campaign_ids}


async def list_recipients(
    session: AsyncSession, campaign_id: uuid.UUID, status: str | None, limit: int, offset: int
) -> tuple[Sequence[Any], int]:
    return [], 0
