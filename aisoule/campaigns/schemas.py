from __future__ import annotations

from pydantic import BaseModel


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
