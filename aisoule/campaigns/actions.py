"""The campaign routes both surfaces share: one handler per action, registered on each surface's
router with its own representation (``Surface``): /api wraps answers in ``{"data": ...,
"status": "success"}``, /v1 in ``{"success": true, ...}`` and names contacts ``cnt_<n>``. The
lists (their paging differs) stay in endpoints.py and endpoints_v1.py."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter

from aisoule.auth.dependencies import CampaignsRead, CampaignsWrite
from aisoule.campaigns import service
from aisoule.campaigns.schemas import (
    CampaignCreate,
    CampaignPreview,
    CampaignUpdate,
    StartIn,
    campaign_out,
)
from aisoule.db.session import DBSession
from aisoule.idempotency.dependencies import IDEMPOTENT
from aisoule.kit.responses import ORJSONResponse
from aisoule.models import Campaign

# A service action on one campaign: (session, workspace id, campaign id) → the campaign.
Step = Callable[[DBSession, uuid.UUID, str], Awaitable[Campaign]]


@dataclass(frozen=True)
class Surface:
    """How a surface answers: ``v1`` (the service's representation switch), ``ok`` (a body in
    the surface's wrapper) and ``doc`` (the documented model of an answer, by kind: ``one``,
    ``deleted``, ``preview``, ``resent``, ``stats``)."""

    v1: bool
    ok: Callable[[dict[str, Any], int], ORJSONResponse]
    models: dict[str, Any]

    def doc(self, kind: str, status: int = 200) -> dict[int | str, dict[str, Any]]:
        return {status: {"model": self.models[kind]}}

    async def out(self, session: DBSession, campaign: Campaign) -> dict[str, Any]:
        stats = await service.stats(session, campaign)
        refs = await service.contact_refs(session, campaign.workspace_id, [campaign])
        return campaign_out(campaign, stats, refs, v1=self.v1)


def register(router: APIRouter, s: Surface) -> None:
    """Every route but the lists, in the order FastAPI must try them."""

    @router.post(
        "",
        dependencies=IDEMPOTENT,
        status_code=201,
        summary="Create campaign",
        description="A draft; with `scheduled_at` it is scheduled, with `start: true` it starts "
        "at once (after the pre-flight: refused with 409 `messaging_limit_exceeded` over the "
        "number's messaging limit unless `force: true`).",
        response_model=None,
        responses=s.doc("one", 201),
    )
    async def create_campaign(
        body: CampaignCreate, principal: CampaignsWrite, session: DBSession
    ) -> ORJSONResponse:
        row = await service.create(session, principal.workspace_id, body, v1=s.v1)
        return s.ok({"campaign": await s.out(session, row)}, 201)

    @router.post(
        "/preview",
        dependencies=IDEMPOTENT,
        summary="Preview a campaign",
        description="The audience count, the pre-flight and five contacts with their message, for "
        "a definition (the body of POST /campaigns); nothing is written.",
        response_model=None,
        responses=s.doc("preview"),
    )
    async def preview_campaign(
        body: CampaignPreview, principal: CampaignsWrite, session: DBSession
    ) -> ORJSONResponse:
        checked, sample = await service.preview(session, principal.workspace_id, body, v1=s.v1)
        return s.ok({"preflight": checked, "sample": sample}, 200)

    @router.get(
        "/{campaign_id}", summary="Get campaign", response_model=None, responses=s.doc("one")
    )
    async def get_campaign(
        campaign_id: str, principal: CampaignsRead, session: DBSession
    ) -> ORJSONResponse:
        row = await service.get(session, principal.workspace_id, campaign_id)
        return s.ok({"campaign": await s.out(session, row)}, 200)

    @router.put(
        "/{campaign_id}",
        summary="Update campaign (draft, scheduled or paused; only the fields sent change)",
        response_model=None,
        responses=s.doc("one"),
    )
    async def update_campaign(
        campaign_id: str, body: CampaignUpdate, principal: CampaignsWrite, session: DBSession
    ) -> ORJSONResponse:
        row = await service.update(session, principal.workspace_id, campaign_id, body, v1=s.v1)
        return s.ok({"campaign": await s.out(session, row)}, 200)

    @router.delete(
        "/{campaign_id}",
        summary="Delete campaign (not while running or paused: cancel it first)",
        response_model=None,
        responses=s.doc("deleted"),
    )
    async def delete_campaign(
        campaign_id: str, principal: CampaignsWrite, session: DBSession
    ) -> ORJSONResponse:
        deleted = await service.delete(session, principal.workspace_id, campaign_id)
        return s.ok({"id": str(deleted), "deleted": True}, 200)

    @router.post(
        "/{campaign_id}/start",
        dependencies=IDEMPOTENT,
        summary="Start campaign (draft or scheduled)",
        description="Runs the pre-flight first: refused (409, the problem's code) when the "
        "template is not approved, nobody is eligible, or the audience is over the number's "
        'messaging limit left (unless `{"force": true}`).',
        response_model=None,
        responses=s.doc("one"),
    )
    async def start_campaign(
        campaign_id: str,
        principal: CampaignsWrite,
        session: DBSession,
        body: StartIn | None = None,
    ) -> ORJSONResponse:
        force = body.force if body is not None else False
        row = await service.start(session, principal.workspace_id, campaign_id, force=force)
        return s.ok({"campaign": await s.out(session, row)}, 200)

    def _step(path: str, summary: str, act: Step) -> None:
        """pause, resume, cancel: the same shape, another service call."""

        async def handler(
            campaign_id: str, principal: CampaignsWrite, session: DBSession
        ) -> ORJSONResponse:
            row = await act(session, principal.workspace_id, campaign_id)
            return s.ok({"campaign": await s.out(session, row)}, 200)

        handler.__name__ = f"{path}_campaign"
        router.post(
            f"/{{campaign_id}}/{path}",
            dependencies=IDEMPOTENT,
            summary=summary,
            response_model=None,
            responses=s.doc("one"),
        )(handler)

    _step("pause", "Pause campaign (running)", service.pause)
    _step("resume", "Resume campaign (paused)", service.resume)
    _step("cancel", "Cancel campaign", service.cancel)

    @router.post(
        "/{campaign_id}/resend-unknown",
        dependencies=IDEMPOTENT,
        summary="Resend to recipients whose outcome is unknown",
        description="Meta never told what became of these sends (the answer was lost and no "
        "status webhook came): sending again may reach someone twice, so only a person asks "
        "for it.",
        response_model=None,
        responses=s.doc("resent"),
    )
    async def resend_unknown(
        campaign_id: str, principal: CampaignsWrite, session: DBSession
    ) -> ORJSONResponse:
        row, resent = await service.resend_unknown(session, principal.workspace_id, campaign_id)
        return s.ok({"campaign": await s.out(session, row), "resent": resent}, 200)

    @router.get(
        "/{campaign_id}/stats",
        summary="A campaign's stats",
        response_model=None,
        responses=s.doc("stats"),
    )
    async def campaign_stats(
        campaign_id: str, principal: CampaignsRead, session: DBSession
    ) -> ORJSONResponse:
        row = await service.get(session, principal.workspace_id, campaign_id)
        return s.ok({"stats": await service.stats(session, row)}, 200)
