"""/api/campaigns: seed 000, in the {"data": ..., "status": "success"} envelope. The routes for
one campaign are shared with /v1 (actions.py); the lists are this surface's own (its paging)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from aisoule.auth.dependencies import CampaignsRead
from aisoule.campaigns import actions, service
from aisoule.campaigns import status as st
from aisoule.campaigns.schemas import (
    Bucket,
    CampaignData,
    CampaignDeleted,
    CampaignList,
    PreviewData,
    RecipientList,
    ResentData,
    StatsData,
    campaign_out,
    recipient_out,
)
from aisoule.db.session import DBSession
from aisoule.kit.envelope import Envelope, api_page, success
from aisoule.kit.pagination import Page
from aisoule.kit.responses import ORJSONResponse

router = APIRouter(prefix="/campaigns", tags=["Campaigns"])

Status = Literal["draft", "scheduled", "running", "paused", "completed", "cancelled", "failed"]
assert set(Status.__args__) == set(st.ALL)  # type: ignore[attr-defined]


def _one(data: type[Any]) -> dict[int | str, dict[str, Any]]:
    return {200: {"model": Envelope[data]}}  # type: ignore[valid-type]


@router.get("", summary="List campaigns", response_model=None, responses=_one(CampaignList))
async def list_campaigns(
    principal: CampaignsRead,
    session: DBSession,
    page: Page,
    status: Annotated[Status | None, Query(description="Only campaigns in this status.")] = None,
) -> ORJSONResponse:
    rows, total = await service.list_page(
        session, principal.workspace_id, limit=page.per_page, offset=page.offset, status=status
    )
    stats = await service.stats_many(session, rows)
    refs = await service.contact_refs(session, principal.workspace_id, rows)
    return api_page("campaigns", [campaign_out(r, stats[r.id], refs) for r in rows], total, page)


actions.register(
    router,
    actions.Surface(
        v1=False,
        ok=success,
        models={
            kind: Envelope[model]  # type: ignore[valid-type]
            for kind, model in {
                "one": CampaignData,
                "deleted": CampaignDeleted,
                "preview": PreviewData,
                "resent": ResentData,
                "stats": StatsData,
            }.items()
        },
    ),
)


@router.get(
    "/{campaign_id}/recipients",
    summary="List a campaign's recipients",
    response_model=None,
    responses=_one(RecipientList),
)
async def list_recipients(
    campaign_id: str,
    principal: CampaignsRead,
    session: DBSession,
    page: Page,
    status: Annotated[Bucket | None, Query(description="Only recipients in this outcome.")] = None,
) -> ORJSONResponse:
    rows, total, refs = await service.recipients(
        session,
        principal.workspace_id,
        campaign_id,
        status=status,
        limit=page.per_page,
        offset=page.offset,
    )
    return api_page("recipients", [recipient_out(r, refs) for r in rows], total, page)
