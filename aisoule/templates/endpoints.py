"""/api/templates: WhatsApp message templates, created and submitted to Meta, kept in step."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from aisoule.auth.dependencies import TemplatesRead, TemplatesWrite
from aisoule.db.session import DBSession
from aisoule.dependencies import RuntimeDep
from aisoule.idempotency.dependencies import IDEMPOTENT
from aisoule.kit.envelope import Envelope, ErrorEnvelope, api_page, success
from aisoule.kit.pagination import Page
from aisoule.kit.responses import ORJSONResponse
from aisoule.templates import service
from aisoule.templates.schemas import (
    SyncResult,
    TemplateCreate,
    TemplateData,
    TemplateDeleted,
    TemplateList,
    TemplateSync,
    template_out,
)

router = APIRouter(prefix="/templates", tags=["Templates"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorEnvelope, "description": "No such template in this workspace"},
    422: {"model": ErrorEnvelope, "description": "Invalid field, or Meta refused (its code given)"},
    502: {"model": ErrorEnvelope, "description": "Meta could not be reached"},
}


@router.get(
    "",
    summary="List templates",
    response_model=None,
    responses={200: {"model": Envelope[TemplateList]}},
)
async def list_templates(
    principal: TemplatesRead,
    session: DBSession,
    page: Page,
    status: Annotated[
        str | None, Query(max_length=32, description="APPROVED, PENDING, REJECTED, ...")
    ] = None,
    name: Annotated[str | None, Query(max_length=512, description="Part of the name")] = None,
    account_id: Annotated[str | None, Query(max_length=64)] = None,
) -> ORJSONResponse:
    rows, total = await service.list_page(
        session,
        principal.workspace_id,
        limit=page.per_page,
        offset=page.offset,
        status=status,
        name=name,
        account_id=account_id,
    )
    return api_page("templates", [template_out(r) for r in rows], total, page)


@router.post(
    "",
    dependencies=IDEMPOTENT,
    summary="Create a template and submit it to Meta",
    description="Checked here first (a 422 names the field), then submitted to Meta for review "
    "on the account's WhatsApp Business Account. It is PENDING until Meta approves or rejects "
    "it; Meta's webhook (or POST /api/templates/sync) brings the verdict.",
    status_code=201,
    response_model=None,
    responses={201: {"model": Envelope[TemplateData]}, 409: {"model": ErrorEnvelope}, **_ERRORS},
)
async def create_template(
    data: TemplateCreate, principal: TemplatesWrite, session: DBSession, rt: RuntimeDep
) -> ORJSONResponse:
    row = await service.create(session, rt, principal.workspace_id, data)
    return success({"template": template_out(row)}, 201)


@router.post(
    "/sync",
    dependencies=IDEMPOTENT,
    summary="Pull the templates from Meta",
    description="Reads every template of the account's WhatsApp Business Account from Meta and "
    "makes the local list match: new ones are added, statuses and contents updated, and "
    "templates Meta no longer has are removed.",
    response_model=None,
    responses={200: {"model": Envelope[SyncResult]}, **_ERRORS},
)
async def sync_templates(
    principal: TemplatesWrite, session: DBSession, rt: RuntimeDep, data: TemplateSync | None = None
) -> ORJSONResponse:
    counts = await service.sync(
        session, rt, principal.workspace_id, data.account_id if data else None
    )
    return success(counts)


@router.get(
    "/{template_id}",
    summary="Get a template",
    response_model=None,
    responses={200: {"model": Envelope[TemplateData]}, **_ERRORS},
)
async def get_template(
    template_id: str, principal: TemplatesRead, session: DBSession
) -> ORJSONResponse:
    row = await service.get(session, principal.workspace_id, template_id)
    return success({"template": template_out(row)})


@router.delete(
    "/{template_id}",
    summary="Delete a template",
    description="Deletes it at Meta (this language only), then here.",
    response_model=None,
    responses={200: {"model": Envelope[TemplateDeleted]}, **_ERRORS},
)
async def delete_template(
    template_id: str, principal: TemplatesWrite, session: DBSession, rt: RuntimeDep
) -> ORJSONResponse:
    deleted = await service.delete(session, rt, principal.workspace_id, template_id)
    return success({"id": str(deleted), "deleted": True})
