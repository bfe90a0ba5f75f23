from __future__ import annotations

from aisoule.db.repository import WorkspaceScopedRepository
from aisoule.models import Campaign


class CampaignRepository(WorkspaceScopedRepository[Campaign]):
    model = Campaign
