"""/api/messages: seed 000's POST /messages/send, and the messages' status history."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query

from aisoule.auth.dependencies import MessagesSend
from aisoule.contacts import service as contacts
from aisoule.db.session import DBSession
from aisoule.dependencies import RuntimeDep
from aisoule.idempotency.dependencies import IDEMPOTENT
from aisoule.inbox import service as inbox
from aisoule.kit.envelope import Envelope, ErrorEnvelope, api_page, success
from aisoule.kit.pagination import Page
from aisoule.kit.responses import ORJSONResponse
from aisoule.messages import service
from aisoule.messages.schemas import (
    MessageData,
    MessageList,
    MessageSend,
    QueuedData,
    api_message,
)

router = APIRouter(prefix="/messages", tags=["Messages"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorEnvelope, "description": "No such message in this workspace"},
    422: {
        "model": ErrorEnvelope,
        "description": "Refused before Meta sees it: outside the 24 h window, opted-out contact, "
        "template not approved or wrong parameters, unsupported media, invalid field",
    },
}

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", include_in_schema=False)]


@router.post(
    "/send",
    dependencies=IDEMPOTENT,
    summary="Send message",
    description="Checks the message as Meta would, writes it `queued` and answers 202; a worker "
    "sends it. Follow it with GET /api/messages/{id}.",
    status_code=202,
    response_model=None,
    responses={202: {"model": Envelope[QueuedData]}, **_ERRORS},
)
async def send_message(
    data: MessageSend,
    principal: MessagesSend,
    session: DBSession,
    rt: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> ORJSONResponse:
    message = await inbox.send(session, rt, principal, data, idempotency_key)
    return success({"message": {"id": str(message.id), "status": message.status}}, 202)


@router.get(
    "",
    summary="List messages",
    response_model=None,
    responses={200: {"model": Envelope[MessageList]}, **_ERRORS},
)
async def list_messages(
    principal: MessagesSend,
    session: DBSession,
    page: Page,
    contact: Annotated[
        str | None, Query(max_length=64, description="Contact id (uuid or cnt_…) or phone")
    ] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    direction: Literal["inbound", "outbound"] | None = None,
) -> ORJSONResponse:
    rows, total = await service.list_page(
        session,
        principal.workspace_id,
        limit=page.per_page,
        offset=page.offset,
        contact=contact,
        status=status,
        direction=direction,
    )
    refs = await contacts.refs(session, principal.workspace_id, (r.contact_id for r in rows))
    return api_page("messages", [api_message(r, refs) for r in rows], total, page)


@router.get(
    "/{message_id}",
    summary="Get a message and its status history",
    response_model=None,
    responses={200: {"model": Envelope[MessageData]}, **_ERRORS},
)
async def get_message(
    message_id: str, principal: MessagesSend, session: DBSession
) -> ORJSONResponse:
    message = await service.get(session, principal.workspace_id, message_id)
    refs = await contacts.refs(session, principal.workspace_id, [message.contact_id])
    out = api_message(message, refs, await service.history(session, message))
    return success({"message": out})
