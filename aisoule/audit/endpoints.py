from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from aisoule.audit import service
from aisoule.audit.schemas import AuditEventType, AuditLogData, event_out
from aisoule.auth.dependencies import OwnerSession
from aisoule.db.session import DBSession
from aisoule.kit.envelope import Envelope, ErrorEnvelope, api_page
from aisoule.kit.pagination import Page
from aisoule.kit.responses import ORJSONResponse

router = APIRouter(prefix="/audit-log", tags=["Audit log"])


@router.get(
    "",
    summary="Security events of the workspace (owners only), newest first",
    response_model=None,
    responses={200: {"model": Envelope[AuditLogData]}, 403: {"model": ErrorEnvelope}},
)
async def audit_log(
    principal: OwnerSession,
    session: DBSession,
    page: Page,
    event: Annotated[AuditEventType | None, Query(description="Only this event type.")] = None,
) -> ORJSONResponse:
    rows, total = await service.list_page(
        session, principal.workspace_id, limit=page.per_page, offset=page.offset, event=event
    )
    return api_page("events", [event_out(r) for r in rows], total, page)
