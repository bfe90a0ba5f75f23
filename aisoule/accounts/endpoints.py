from __future__ import annotations

from fastapi import APIRouter

from aisoule.accounts import service
from aisoule.accounts.schemas import AccountList
from aisoule.auth.dependencies import AccountsRead
from aisoule.db.session import DBSession
from aisoule.kit.envelope import Envelope, success
from aisoule.kit.pagination import Page
from aisoule.kit.responses import ORJSONResponse

router = APIRouter(prefix="/accounts", tags=["WhatsApp accounts"])


@router.get(
    "",
    summary="List WhatsApp accounts",
    response_model=None,
    responses={200: {"model": Envelope[AccountList]}},
)
async def list_accounts(principal: AccountsRead, session: DBSession, page: Page) -> ORJSONResponse:
    rows, total = await service.list_page(
        session, principal.workspace_id, limit=page.per_page, offset=page.offset
    )
    return success(
        {
            "accounts": [service.to_out(r) for r in rows],
            "total": total,
            "page": page.page,
            "per_page": page.per_page,
        }
    )
