from __future__ import annotations

from fastapi import APIRouter

from aisoule.auth.dependencies import AnyPrincipal
from aisoule.db.session import DBSession
from aisoule.kit.envelope import Envelope, success
from aisoule.kit.responses import ORJSONResponse
from aisoule.workspaces import service
from aisoule.workspaces.schemas import StagesData

router = APIRouter(tags=["Stages"])


@router.get(
    "/stages",
    summary="List the workspace's contact stages",
    response_model=None,
    responses={200: {"model": Envelope[StagesData]}},
)
async def list_stages(principal: AnyPrincipal, session: DBSession) -> ORJSONResponse:
    names = await service.list_stages(session, principal.workspace_id)
    stages = [{"name": n, "position": i} for i, n in enumerate(names)]
    return success({"stages": stages})
