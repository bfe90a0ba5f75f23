"""/v1/messages: the same sending core in the /v1 representation ({"success": true, ...})."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel

from aisoule.auth.dependencies import MessagesSend
from aisoule.contacts import service as contacts
from aisoule.db.session import DBSession
from aisoule.dependencies import RuntimeDep
from aisoule.idempotency.dependencies import IDEMPOTENT
from aisoule.inbox import service as inbox
from aisoule.kit.envelope import v1_page
from aisoule.kit.responses import ORJSONResponse
from aisoule.messages import service
from aisoule.messages.schemas import MessageOut, MessageSend, Queued, v1_message

router = APIRouter(prefix="/messages", tags=["Messages (v1)"])

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", include_in_schema=False)]


class V1Queued(BaseModel):
    success: bool = True
    data: Queued


class V1Message(BaseModel):
    success: bool = True
    data: MessageOut


class V1MessageList(BaseModel):
    success: bool = True
    data: list[MessageOut]
    pagination: dict[str, Any]


@router.post(
    "",
    dependencies=IDEMPOTENT,
    summary="Send a message",
    status_code=202,
    response_model=None,
    responses={202: {"model": V1Queued}},
)
async def send_message(
    data: MessageSend,
    principal: MessagesSend,
    session: DBSession,
    rt: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> ORJSONResponse:
    message = await inbox.send(session, rt, principal, data, idempotency_key)
    return ORJSONResponse(
        {"success": True, "data": {"id": str(message.id), "status": message.status}},
        status_code=202,
    )


@router.get(
    "", summary="List messages", response_model=None, responses={200: {"model": V1MessageList}}
)
async def list_messages(
    principal: MessagesSend,
    session: DBSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    contact: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    direction: Annotated[str | None, Query(pattern="^(inbound|outbound)$")] = None,
) -> ORJSONResponse:
    rows, total = await service.list_page(
        session,
        principal.workspace_id,
        limit=limit,
        offset=offset,
        contact=contact,
        status=status,
        direction=direction,
    )
    refs = await contacts.refs(session, principal.workspace_id, (r.contact_id for r in rows))
    return v1_page("data", [v1_message(r, refs) for r in rows], total, limit=limit, offset=offset)


@router.get(
    "/{message_id}",
    summary="Get a message and its status history",
    response_model=None,
    responses={200: {"model": V1Message}},
)
async def get_message(
    message_id: str, principal: MessagesSend, session: DBSession
) -> ORJSONResponse:
    message = await service.get(session, principal.workspace_id, message_id)
    refs = await contacts.refs(session, principal.workspace_id, [message.contact_id])
    out = v1_message(message, refs, await service.history(session, message))
    return ORJSONResponse({"success": True, "data": out})
