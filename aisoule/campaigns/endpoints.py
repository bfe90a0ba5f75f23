from __future__ import annotations

from fastapi import APIRouter

from aisoule.auth.dependencies import CampaignsRead
from aisoule.campaigns import service
from aisoule.campaigns.schemas import CampaignList, campaign_out
from aisoule.db.session import DBSession
from aisoule.kit.envelope import Envelope, api_page
from aisoule.kit.pagination import Page
from aisoule.kit.responses import ORJSONResponse

router = APIRouter(prefix="/campaigns", tags=["Campaigns"])


@router.get(
    "",
    summary="List campaigns",
    response_model=None,
    responses={200: {"model": Envelope[CampaignList]}},
)
async def list_campaigns(
    principal: CampaignsRead, session: DBSession, page: Page
) -> ORJSONResponse:
    rows, total = await service.list_page(
        session, principal.workspace_id, limit=page.per_page, offset=page.offset
    )
    return api_page("campaigns", [campaign_out(r) for r in rows], total, page)
