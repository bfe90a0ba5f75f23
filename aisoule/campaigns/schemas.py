from __future__ import annotations

from pydantic import BaseModel

from aisoule.kit.time import iso_z
from aisoule.models import Campaign


class CampaignOut(BaseModel):
    id: str
    name: str
    status: str
    created_at: str
    updated_at: str


class CampaignList(BaseModel):
    campaigns: list[CampaignOut]
    total: int
    page: int
    per_page: int


def campaign_out(row: Campaign) -> dict[str, object]:
    return {
        "id": str(row.id),
        "name": row.name,
        "status": row.status,
        "created_at": iso_z(row.created_at),
        "updated_at": iso_z(row.updated_at),
    }
