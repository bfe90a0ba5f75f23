"""Campaigns: listing for now; the capability arrives with its own issue."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.campaigns.repository import CampaignRepository
from aisoule.models import Campaign


async def list_page(
    session: AsyncSession, workspace_id: uuid.UUID, *, limit: int, offset: int
) -> tuple[Sequence[Campaign], int]:
    repo = CampaignRepository(session)
    rows = await repo.list_page(workspace_id, limit=limit, offset=offset)
    return rows, await repo.count(workspace_id)
