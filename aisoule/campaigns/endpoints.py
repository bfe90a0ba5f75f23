"""/api/campaigns: seed 000, in the {"data": ..., "status": "success"} envelope."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from aisoule.auth.dependencies import CampaignsRead, CampaignsWrite
from aisoule.campaigns import service
from aisoule.campaigns import status as st
from aisoule.campaigns.schemas import (
    Bucket,
    CampaignCreate,
    CampaignData,
    CampaignDeleted,
    CampaignList,
    CampaignPreview,
    CampaignUpdate,
    PreviewData,
    RecipientList,
    ResentData,
    StartIn,
    StatsData,
    campaign_out,
    recipient_out,
)
from aisoule.db.session import DBSession
from aisoule.idempotency.dependencies import IDEMPOTENT
from aisoule.kit.envelope import Envelope, api_page, success
from aisoule.kit.pagination import Page
from aisoule.kit.responses import ORJSONResponse
from aisoule.models import Campaign

router = APIRouter(prefix="/campaigns", tags=["Campaigns"])

Status = Literal["draft", "scheduled", "running", "paused", "completed", "cancelled", "failed"]
assert set(Status.__args__) == set(st.ALL)  # type: ignore[attr-defined]


async def _out(session: DBSession, campaign: Campaign) -> dict[str, Any]:
    stats = await service.stats(session, campaign)
    refs = await service.contact_refs(session, campaign.workspace_id, [campaign])
    return campaign_out(campaign, stats, refs)


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


@router.post(
    "",
    dependencies=IDEMPOTENT,
    status_code=201,
    summary="Create campaign",
    description="A draft; with `scheduled_at` it is scheduled, with `start: true` it starts at "
    "once (after the pre-flight: refused with 409 `messaging_limit_exceeded` over the number's "
    "messaging limit unless `force: true`).",
    response_model=None,
    responses={201: {"model": Envelope[CampaignData]}},
)
async def create_campaign(
    body: CampaignCreate, principal: CampaignsWrite, session: DBSession
) -> ORJSONResponse:
    row = await service.create(session, principal.workspace_id, body)
    return success({"campaign": await _out(session, row)}, status_code=201)


@router.post(
    "/preview",
    dependencies=IDEMPOTENT,
    summary="Preview a campaign",
    description="The audience count, the pre-flight and five contacts with their message, for a "
    "definition (the body of POST /campaigns); nothing is written.",
    response_model=None,
    responses=_one(PreviewData),
)
async def preview_campaign(
    body: CampaignPreview, principal: CampaignsWrite, session: DBSession
) -> ORJSONResponse:
    checked, sample = await service.preview(session, principal.workspace_id, body)
    return success({"preflight": checked, "sample": sample})


@router.get(
    "/{campaign_id}", summary="Get campaign", response_model=None, responses=_one(CampaignData)
)
async def get_campaign(
    campaign_id: str, principal: CampaignsRead, session: DBSession
) -> ORJSONResponse:
    row = await service.get(session, principal.workspace_id, campaign_id)
    return success({"campaign": await _out(session, row)})


@router.put(
    "/{campaign_id}",
    summary="Update campaign (draft, scheduled or paused; only the fields sent change)",
    response_model=None,
    responses=_one(CampaignData),
)
async def update_campaign(
    campaign_id: str, body: CampaignUpdate, principal: CampaignsWrite, session: DBSession
) -> ORJSONResponse:
    row = await service.update(session, principal.workspace_id, campaign_id, body)
    return success({"campaign": await _out(session, row)})


@router.delete(
    "/{campaign_id}",
    summary="Delete campaign (not while running or paused: cancel it first)",
    response_model=None,
    responses=_one(CampaignDeleted),
)
async def delete_campaign(
    campaign_id: str, principal: CampaignsWrite, session: DBSession
) -> ORJSONResponse:
    deleted = await service.delete(session, principal.workspace_id, campaign_id)
    return success({"id": str(deleted), "deleted": True})


@router.post(
    "/{campaign_id}/start",
    dependencies=IDEMPOTENT,
    summary="Start campaign (draft or scheduled)",
    description="Runs the pre-flight first: refused (409, the problem's code) when the template "
    "is not approved, nobody is eligible, or the audience is over the number's messaging limit "
    'left (unless `{"force": true}`).',
    response_model=None,
    responses=_one(CampaignData),
)
async def start_campaign(
    campaign_id: str,
    principal: CampaignsWrite,
    session: DBSession,
    body: StartIn | None = None,
) -> ORJSONResponse:
    force = body.force if body is not None else False
    row = await service.start(session, principal.workspace_id, campaign_id, force=force)
    return success({"campaign": await _out(session, row)})


@router.post(
    "/{campaign_id}/pause",
    dependencies=IDEMPOTENT,
    summary="Pause campaign (running)",
    response_model=None,
    responses=_one(CampaignData),
)
async def pause_campaign(
    campaign_id: str, principal: CampaignsWrite, session: DBSession
) -> ORJSONResponse:
    row = await service.pause(session, principal.workspace_id, campaign_id)
    return success({"campaign": await _out(session, row)})


@router.post(
    "/{campaign_id}/resume",
    dependencies=IDEMPOTENT,
    summary="Resume campaign (paused)",
    response_model=None,
    responses=_one(CampaignData),
)
async def resume_campaign(
    campaign_id: str, principal: CampaignsWrite, session: DBSession
) -> ORJSONResponse:
    row = await service.resume(session, principal.workspace_id, campaign_id)
    return success({"campaign": await _out(session, row)})


@router.post(
    "/{campaign_id}/cancel",
    dependencies=IDEMPOTENT,
    summary="Cancel campaign",
    response_model=None,
    responses=_one(CampaignData),
)
async def cancel_campaign(
    campaign_id: str, principal: CampaignsWrite, session: DBSession
) -> ORJSONResponse:
    row = await service.cancel(session, principal.workspace_id, campaign_id)
    return success({"campaign": await _out(session, row)})


@router.post(
    "/{campaign_id}/resend-unknown",
    dependencies=IDEMPOTENT,
    summary="Resend to recipients whose outcome is unknown",
    description="Meta never told what became of these sends (the answer was lost and no status "
    "webhook came): sending again may reach someone twice, so only a person asks for it.",
    response_model=None,
    responses=_one(ResentData),
)
async def resend_unknown(
    campaign_id: str, principal: CampaignsWrite, session: DBSession
) -> ORJSONResponse:
    row, resent = await service.resend_unknown(session, principal.workspace_id, campaign_id)
    return success({"campaign": await _out(session, row), "resent": resent})


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


@router.get(
    "/{campaign_id}/stats",
    summary="A campaign's stats",
    response_model=None,
    responses=_one(StatsData),
)
async def campaign_stats(
    campaign_id: str, principal: CampaignsRead, session: DBSession
) -> ORJSONResponse:
    row = await service.get(session, principal.workspace_id, campaign_id)
    return success({"stats": await service.stats(session, row)})
