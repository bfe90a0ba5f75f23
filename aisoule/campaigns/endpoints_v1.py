"""/v1/campaigns: the same campaigns in the /v1 representation ({"success": true, ...}); contacts
are named by their ``cnt_<n>`` id here (audience.contact_ids, a recipient's contact_id)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from aisoule.auth.dependencies import CampaignsRead, CampaignsWrite
from aisoule.campaigns import service
from aisoule.campaigns.schemas import (
    Bucket,
    CampaignCreate,
    CampaignDeletedV1,
    CampaignListV1,
    CampaignOneV1,
    CampaignPreview,
    CampaignUpdate,
    PreviewV1,
    RecipientListV1,
    ResentV1,
    StartIn,
    StatsV1,
    campaign_out,
    recipient_out,
)
from aisoule.db.session import DBSession
from aisoule.idempotency.dependencies import IDEMPOTENT
from aisoule.kit.envelope import v1_page
from aisoule.kit.responses import ORJSONResponse
from aisoule.models import Campaign

router = APIRouter(prefix="/campaigns", tags=["Campaigns (v1)"])

Status = Literal["draft", "scheduled", "running", "paused", "completed", "cancelled", "failed"]
Limit = Annotated[int, Query(ge=1, le=100, description="Records to return (max 100).")]
Offset = Annotated[int, Query(ge=0, le=100_000_000, description="Records to skip.")]


async def _out(session: DBSession, campaign: Campaign) -> dict[str, Any]:
    stats = await service.stats(session, campaign)
    refs = await service.contact_refs(session, campaign.workspace_id, [campaign])
    return campaign_out(campaign, stats, refs, v1=True)


def _ok(body: dict[str, Any], status_code: int = 200) -> ORJSONResponse:
    return ORJSONResponse({"success": True, **body}, status_code=status_code)


def _doc(model: type[Any]) -> dict[int | str, dict[str, Any]]:
    return {200: {"model": model}}


@router.get("", summary="List campaigns", response_model=None, responses=_doc(CampaignListV1))
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


@router.post(
    "",
    dependencies=IDEMPOTENT,
    status_code=201,
    summary="Create campaign",
    response_model=None,
    responses={201: {"model": CampaignOneV1}},
)
async def create_campaign(
    body: CampaignCreate, principal: CampaignsWrite, session: DBSession
) -> ORJSONResponse:
    row = await service.create(session, principal.workspace_id, body, v1=True)
    return _ok({"campaign": await _out(session, row)}, status_code=201)


@router.post(
    "/preview",
    dependencies=IDEMPOTENT,
    summary="Preview a campaign",
    response_model=None,
    responses=_doc(PreviewV1),
)
async def preview_campaign(
    body: CampaignPreview, principal: CampaignsWrite, session: DBSession
) -> ORJSONResponse:
    checked, sample = await service.preview(session, principal.workspace_id, body, v1=True)
    return _ok({"preflight": checked, "sample": sample})


@router.get(
    "/{campaign_id}", summary="Get campaign", response_model=None, responses=_doc(CampaignOneV1)
)
async def get_campaign(
    campaign_id: str, principal: CampaignsRead, session: DBSession
) -> ORJSONResponse:
    row = await service.get(session, principal.workspace_id, campaign_id)
    return _ok({"campaign": await _out(session, row)})


@router.put(
    "/{campaign_id}",
    summary="Update campaign (draft, scheduled or paused)",
    response_model=None,
    responses=_doc(CampaignOneV1),
)
async def update_campaign(
    campaign_id: str, body: CampaignUpdate, principal: CampaignsWrite, session: DBSession
) -> ORJSONResponse:
    row = await service.update(session, principal.workspace_id, campaign_id, body, v1=True)
    return _ok({"campaign": await _out(session, row)})


@router.delete(
    "/{campaign_id}",
    summary="Delete campaign",
    response_model=None,
    responses=_doc(CampaignDeletedV1),
)
async def delete_campaign(
    campaign_id: str, principal: CampaignsWrite, session: DBSession
) -> ORJSONResponse:
    deleted = await service.delete(session, principal.workspace_id, campaign_id)
    return _ok({"id": str(deleted), "deleted": True})


@router.post(
    "/{campaign_id}/start",
    dependencies=IDEMPOTENT,
    summary="Start campaign",
    response_model=None,
    responses=_doc(CampaignOneV1),
)
async def start_campaign(
    campaign_id: str,
    principal: CampaignsWrite,
    session: DBSession,
    body: StartIn | None = None,
) -> ORJSONResponse:
    force = body.force if body is not None else False
    row = await service.start(session, principal.workspace_id, campaign_id, force=force)
    return _ok({"campaign": await _out(session, row)})


@router.post(
    "/{campaign_id}/pause",
    dependencies=IDEMPOTENT,
    summary="Pause campaign",
    response_model=None,
    responses=_doc(CampaignOneV1),
)
async def pause_campaign(
    campaign_id: str, principal: CampaignsWrite, session: DBSession
) -> ORJSONResponse:
    row = await service.pause(session, principal.workspace_id, campaign_id)
    return _ok({"campaign": await _out(session, row)})


@router.post(
    "/{campaign_id}/resume",
    dependencies=IDEMPOTENT,
    summary="Resume campaign",
    response_model=None,
    responses=_doc(CampaignOneV1),
)
async def resume_campaign(
    campaign_id: str, principal: CampaignsWrite, session: DBSession
) -> ORJSONResponse:
    row = await service.resume(session, principal.workspace_id, campaign_id)
    return _ok({"campaign": await _out(session, row)})


@router.post(
    "/{campaign_id}/cancel",
    dependencies=IDEMPOTENT,
    summary="Cancel campaign",
    response_model=None,
    responses=_doc(CampaignOneV1),
)
async def cancel_campaign(
    campaign_id: str, principal: CampaignsWrite, session: DBSession
) -> ORJSONResponse:
    row = await service.cancel(session, principal.workspace_id, campaign_id)
    return _ok({"campaign": await _out(session, row)})


@router.post(
    "/{campaign_id}/resend-unknown",
    dependencies=IDEMPOTENT,
    summary="Resend to recipients whose outcome is unknown",
    response_model=None,
    responses=_doc(ResentV1),
)
async def resend_unknown(
    campaign_id: str, principal: CampaignsWrite, session: DBSession
) -> ORJSONResponse:
    row, resent = await service.resend_unknown(session, principal.workspace_id, campaign_id)
    return _ok({"campaign": await _out(session, row), "resent": resent})


@router.get(
    "/{campaign_id}/recipients",
    summary="List a campaign's recipients",
    response_model=None,
    responses=_doc(RecipientListV1),
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


@router.get(
    "/{campaign_id}/stats",
    summary="A campaign's stats",
    response_model=None,
    responses=_doc(StatsV1),
)
async def campaign_stats(
    campaign_id: str, principal: CampaignsRead, session: DBSession
) -> ORJSONResponse:
    row = await service.get(session, principal.workspace_id, campaign_id)
    return _ok({"stats": await service.stats(session, row)})
