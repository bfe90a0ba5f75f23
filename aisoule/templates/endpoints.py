from __future__ import annotations

from fastapi import APIRouter

from aisoule.auth.dependencies import TemplatesRead
from aisoule.db.session import DBSession
from aisoule.kit.envelope import Envelope, success
from aisoule.kit.pagination import Page
from aisoule.kit.responses import ORJSONResponse
from aisoule.templates import service
from aisoule.templates.schemas import TemplateList

router = APIRouter(prefix="/templates", tags=["Templates"])


@router.get(
    "",
    summary="List templates",
    response_model=None,
    responses={200: {"model": Envelope[TemplateList]}},
)
async def list_templates(
    principal: TemplatesRead, session: DBSession, page: Page
) -> ORJSONResponse:
    rows, total = await service.list_page(
        session, principal.workspace_id, limit=page.per_page, offset=page.offset
    )
    return success(
        {
            "templates": [service.to_out(r) for r in rows],
            "total": total,
            "page": page.page,
            "per_page": page.per_page,
        }
    )
