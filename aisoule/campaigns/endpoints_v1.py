"""/v1/campaigns: the same campaigns in the /v1 representation ({"success": true, ...}); contacts
are named by their ``cnt_<n>`` id here (audience.contact_ids, a recipient's contact_id). The
routes for one campaign are shared with /api (actions.py); the lists are this surface's own
(``limit``/``offset`` paging)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from aisoule.auth.dependencies import CampaignsRead
from aisoule.campaigns import actions, service
from aisoule.campaigns.schemas import (
    Bucket,
    CampaignDeletedV1,
    CampaignListV1,
    CampaignOneV1,
    PreviewV1,
    RecipientListV1,
    ResentV1,
    StatsV1,
    campaign_out,
    recipient_out,
)
from aisoule.db.session import DBSession
from aisoule.kit.envelope import v1_page
from aisoule.kit.responses import ORJSONResponse

router = APIRouter(prefix="/campaigns", tags=["Campaigns (v1)"])

Status = Literal["draft", "scheduled", "running", "paused", "completed", "cancelled", "failed"]
Limit = Annotated[int, Query(ge=1, le=100, description="Records to return (max 100).")]
Offset = Annotated[int, Query(ge=0, le=100_000_000, description="Records to skip.")]


def _ok(body: dict[str, Any], status_code: int = 200) -> ORJSONResponse:
    return ORJSONResponse({"success": True, **body}, status_code=status_code)


@router.get(
    "", summary="List campaigns", response_model=None, responses={200: {"model": CampaignListV1}}
)
async def list_campaigns(
    principal: CampaignsRead,
    session: DBSession,
    limit: Limit = 20,
    offset: Offset = 0,
    status: Annotated[Status | None, Query(description="Only campaigns in this status.")] = None,
) -> ORJSONResponse:
    rows, total = await service.list_page(
        session, principal.workspace_id, limit=limit, offset=offset, status=status
    )
    stats = await service.stats_many(session, rows)
    refs = await service.contact_refs(session, principal.workspace_id, rows)
    items = [campaign_out(r, stats[r.id], refs, v1=True) for r in rows]
    return v1_page("campaigns", items, total, limit=limit, offset=offset)


actions.register(
    router,
    actions.Surface(
        v1=True,
        ok=_ok,
        models={
            "one": CampaignOneV1,
            "deleted": CampaignDeletedV1,
            "preview": PreviewV1,
            "resent": ResentV1,
            "stats": StatsV1,
        },
    ),
)


@router.get(
    "/{campaign_id}/recipients",
    summary="List a campaign's recipients",
    response_model=None,
    responses={200: {"model": RecipientListV1}},
)
async def list_recipients(
    campaign_id: str,
    principal: CampaignsRead,
    session: DBSession,
    limit: Limit = 20,
    offset: Offset = 0,
    status: Annotated[Bucket | None, Query(description="Only recipients in this outcome.")] = None,
) -> ORJSONResponse:
    rows, total, refs = await service.recipients(
        session, principal.workspace_id, campaign_id, status=status, limit=limit, offset=offset
    )
    items = [recipient_out(r, refs, v1=True) for r in rows]
    return v1_page("recipients", items, total, limit=limit, offset=offset)
