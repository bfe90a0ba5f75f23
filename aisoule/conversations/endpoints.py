"""/api/conversations and the inbox around it: canned responses, teams, inbox settings."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Header, Query, UploadFile
from starlette.responses import Response

from aisoule.auth.dependencies import (
    ConversationsRead,
    ConversationsWrite,
    InboxReply,
    WorkspaceManage,
)
from aisoule.contacts import service as contacts
from aisoule.conversations import service
from aisoule.conversations.schemas import (
    Assign,
    CannedCreate,
    CannedData,
    CannedList,
    CannedUpdate,
    ClaimRequest,
    ConversationData,
    ConversationList,
    ConversationMessages,
    Deleted,
    EventData,
    EventList,
    LabelList,
    LabelsChange,
    MediaUploaded,
    NoteCreate,
    Reply,
    ReplyQueued,
    SettingsData,
    SettingsUpdate,
    Status,
    StatusChange,
    TeamAssign,
    TeamCreate,
    TeamData,
    TeamList,
    TeamMembers,
    View,
    canned_out,
    event_out,
    settings_out,
    team_out,
)
from aisoule.db.session import DBSession
from aisoule.dependencies import RuntimeDep
from aisoule.idempotency.dependencies import IDEMPOTENT
from aisoule.inbox import service as inbox
from aisoule.kit.envelope import Envelope, ErrorEnvelope, api_page, success
from aisoule.kit.pagination import Page
from aisoule.kit.responses import ORJSONResponse
from aisoule.messages.schemas import api_message

router = APIRouter(tags=["Inbox"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorEnvelope, "description": "No such conversation in this workspace"},
    409: {"model": ErrorEnvelope, "description": "Assigned to someone else (named)"},
}
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", include_in_schema=False)]
ConversationId = str


async def _one(session: DBSession, principal: Any, conversation_id: str) -> ORJSONResponse:
    return success({"conversation": await service.get(session, principal, conversation_id)})


@router.get(
    "/conversations",
    summary="List conversations (the inbox)",
    description="Newest last message first. `view`: all, mine (assigned to the caller) or "
    "unassigned; filters combine; `q` searches the text of the conversation's messages.",
    response_model=None,
    responses={200: {"model": Envelope[ConversationList]}},
)
async def list_conversations(
    principal: ConversationsRead,
    session: DBSession,
    page: Page,
    view: View = "all",
    status: Status | None = None,
    label: Annotated[str | None, Query(max_length=64)] = None,
    account_id: Annotated[str | None, Query(max_length=64, description="A number")] = None,
    assignee_id: Annotated[str | None, Query(max_length=64)] = None,
    team_id: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in messages")] = None,
) -> ORJSONResponse:
    listing = service.Listing(
        view=view,
        status=status,
        label=label,
        account_id=account_id,
        assignee_id=assignee_id,
        team_id=team_id,
    )
    rows, total = await inbox.list_page(
        session, principal, listing, q, limit=page.per_page, offset=page.offset
    )
    return api_page("conversations", rows, total, page)


@router.get(
    "/conversations/labels",
    summary="The labels in use, with their conversation counts",
    response_model=None,
    responses={200: {"model": Envelope[LabelList]}},
)
async def list_labels(principal: ConversationsRead, session: DBSession) -> ORJSONResponse:
    rows = await service.labels(session, principal.workspace_id)
    return success({"labels": [{"label": n, "conversations": c} for n, c in rows]})


@router.get(
    "/conversations/{conversation_id}",
    summary="Get a conversation",
    response_model=None,
    responses={200: {"model": Envelope[ConversationData]}, **_ERRORS},
)
async def get_conversation(
    conversation_id: str, principal: ConversationsRead, session: DBSession
) -> ORJSONResponse:
    return await _one(session, principal, conversation_id)


@router.get(
    "/conversations/{conversation_id}/messages",
    summary="The conversation's messages, newest first",
    response_model=None,
    responses={200: {"model": Envelope[ConversationMessages]}, **_ERRORS},
)
async def conversation_messages(
    conversation_id: str, principal: ConversationsRead, session: DBSession, page: Page
) -> ORJSONResponse:
    rows, total = await inbox.messages_page(
        session, principal, conversation_id, limit=page.per_page, offset=page.offset
    )
    refs = await contacts.refs(session, principal.workspace_id, (r.contact_id for r in rows))
    return api_page("messages", [api_message(r, refs) for r in rows], total, page)


@router.get(
    "/conversations/{conversation_id}/messages/{message_id}/media",
    summary="The file of a media message (the customer's photo, a document sent)",
    description="Downloaded from Meta when asked (`GET /{media-id}`, then its short-lived URL "
    "with the number's token), never stored here: Meta keeps media 30 days, after which this "
    "answers 404 `media_gone`. Images, audio and video are served inline, documents as an "
    "attachment; a type outside WhatsApp's list is served as application/octet-stream.",
    response_model=None,
    response_class=Response,
    responses={
        200: {
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            "description": "The file",
        },
        404: {"model": ErrorEnvelope, "description": "No such conversation or media message"},
        502: {"model": ErrorEnvelope, "description": "Meta could not be reached"},
    },
)
async def message_media(
    conversation_id: str,
    message_id: str,
    principal: ConversationsRead,
    session: DBSession,
    rt: RuntimeDep,
) -> Response:
    found = await inbox.media_file(session, rt, principal, conversation_id, message_id)
    disposition = "inline" if found.inline else "attachment"
    if found.filename:
        disposition += f"; filename*=UTF-8''{quote(found.filename, safe='')}"
    return Response(
        found.data,
        media_type=found.mime_type,
        headers={
            "Content-Disposition": disposition,
            "Cache-Control": "private, max-age=300",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.post(
    "/conversations/{conversation_id}/media",
    status_code=201,
    summary="Upload a file for a reply",
    description="`multipart/form-data` with `file`: checked against WhatsApp's limits for its "
    "type (image: JPEG or PNG up to 5 MB; video: MP4 or 3GP, 16 MB; audio: AAC, AMR, MP3, "
    "M4A, OGG, 16 MB; document: PDF, Office, text, 100 MB), uploaded to Meta's media API from "
    "the conversation's number. Answers Meta's media `id`: reply with "
    '`{"type": "image", "image": {"id": ...}}` (or video, audio, document with `filename`).',
    response_model=None,
    responses={
        201: {"model": Envelope[MediaUploaded]},
        422: {"model": ErrorEnvelope, "description": "Type or size WhatsApp does not take"},
        502: {"model": ErrorEnvelope, "description": "Meta could not be reached"},
        **_ERRORS,
    },
)
async def upload_media(
    conversation_id: str,
    principal: InboxReply,
    session: DBSession,
    rt: RuntimeDep,
    file: Annotated[UploadFile, File(description="The file to send")],
) -> ORJSONResponse:
    data = await file.read()
    uploaded = await inbox.upload_media(
        session, rt, principal, conversation_id, data, file.content_type, file.filename
    )
    return success({"media": uploaded}, 201)


@router.get(
    "/conversations/{conversation_id}/events",
    summary="The conversation's timeline: assignments, status changes, labels, notes",
    response_model=None,
    responses={200: {"model": Envelope[EventList]}, **_ERRORS},
)
async def conversation_events(
    conversation_id: str, principal: ConversationsRead, session: DBSession, page: Page
) -> ORJSONResponse:
    rows, total = await service.events_page(
        session, principal, conversation_id, limit=page.per_page, offset=page.offset
    )
    return api_page("events", [event_out(e) for e in rows], total, page)


@router.post(
    "/conversations/{conversation_id}/reply",
    dependencies=IDEMPOTENT,
    status_code=202,
    summary="Reply to the customer",
    description="Free text within 24 hours of the customer's last message; outside it only a "
    "template (free text is refused with 422 `outside_24h_window`). `canned` sends a canned "
    "response by its short code; `reply_to` quotes a message. With the setting "
    "`only_assignee_replies`, only the assignee may reply (403 `assignee_only`), and a reply to "
    "an unassigned conversation claims it. Send `Idempotency-Key`: a retry never sends twice.",
    response_model=None,
    responses={
        202: {"model": Envelope[ReplyQueued]},
        403: {"model": ErrorEnvelope, "description": "Not the assignee"},
        422: {"model": ErrorEnvelope, "description": "Outside the window, opted out, ..."},
        **_ERRORS,
    },
)
async def reply(
    conversation_id: str,
    data: Reply,
    principal: InboxReply,
    session: DBSession,
    rt: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> ORJSONResponse:
    message = await inbox.reply(session, rt, principal, conversation_id, data, idempotency_key)
    refs = await contacts.refs(session, principal.workspace_id, [message.contact_id])
    return success({"message": api_message(message, refs)}, 202)


@router.post(
    "/conversations/{conversation_id}/claim",
    dependencies=IDEMPOTENT,
    summary="Take an unassigned conversation",
    description="Atomic: of two agents claiming at once, one gets it and the other a 409 "
    "naming who has it. A logged-in member only.",
    response_model=None,
    responses={200: {"model": Envelope[ConversationData]}, **_ERRORS},
)
async def claim(
    conversation_id: str,
    principal: ConversationsWrite,
    session: DBSession,
    data: ClaimRequest | None = None,
) -> ORJSONResponse:
    await service.claim(session, principal, conversation_id, data.reason if data else None)
    return await _one(session, principal, conversation_id)


@router.put(
    "/conversations/{conversation_id}/assignee",
    summary="Assign (or unassign) a conversation",
    description="An agent assigns unassigned conversations and their own; taking one from "
    "someone else is for owners and admins (409 naming the holder otherwise).",
    response_model=None,
    responses={200: {"model": Envelope[ConversationData]}, **_ERRORS},
)
async def assign(
    conversation_id: str, data: Assign, principal: ConversationsWrite, session: DBSession
) -> ORJSONResponse:
    await service.assign(session, principal, conversation_id, data.assignee_id, data.reason)
    return await _one(session, principal, conversation_id)


@router.put(
    "/conversations/{conversation_id}/team",
    summary="Set (or clear) the conversation's team",
    response_model=None,
    responses={200: {"model": Envelope[ConversationData]}, **_ERRORS},
)
async def set_team(
    conversation_id: str, data: TeamAssign, principal: ConversationsWrite, session: DBSession
) -> ORJSONResponse:
    await service.set_team(session, principal, conversation_id, data.team_id)
    return await _one(session, principal, conversation_id)


@router.put(
    "/conversations/{conversation_id}/status",
    summary="Open, pend, snooze (until) or resolve",
    description="A new message from the customer reopens a resolved or snoozed conversation; "
    "a snooze also ends by itself at `snoozed_until`.",
    response_model=None,
    responses={200: {"model": Envelope[ConversationData]}, **_ERRORS},
)
async def set_status(
    conversation_id: str, data: StatusChange, principal: ConversationsWrite, session: DBSession
) -> ORJSONResponse:
    await service.set_status(session, principal, conversation_id, data)
    return await _one(session, principal, conversation_id)


@router.post(
    "/conversations/{conversation_id}/labels",
    dependencies=IDEMPOTENT,
    summary="Add and remove labels",
    response_model=None,
    responses={200: {"model": Envelope[ConversationData]}, **_ERRORS},
)
async def change_labels(
    conversation_id: str, data: LabelsChange, principal: ConversationsWrite, session: DBSession
) -> ORJSONResponse:
    await service.change_labels(session, principal, conversation_id, data)
    return await _one(session, principal, conversation_id)


@router.post(
    "/conversations/{conversation_id}/notes",
    dependencies=IDEMPOTENT,
    status_code=201,
    summary="Add a private note (never sent to the customer)",
    response_model=None,
    responses={201: {"model": Envelope[EventData]}, **_ERRORS},
)
async def add_note(
    conversation_id: str, data: NoteCreate, principal: ConversationsWrite, session: DBSession
) -> ORJSONResponse:
    event = await service.add_note(session, principal, conversation_id, data.body)
    return success({"event": event_out(event)}, 201)


@router.post(
    "/conversations/{conversation_id}/read",
    dependencies=IDEMPOTENT,
    summary="Mark the conversation read (opening it)",
    description="The caller's unread count becomes 0, and the customer's newest message is "
    "marked read at WhatsApp (blue ticks), once.",
    response_model=None,
    responses={200: {"model": Envelope[ConversationData]}, **_ERRORS},
)
async def mark_read(
    conversation_id: str, principal: ConversationsWrite, session: DBSession, rt: RuntimeDep
) -> ORJSONResponse:
    await inbox.mark_read(session, rt, principal, conversation_id)
    return await _one(session, principal, conversation_id)


# --- canned responses ---

_CANNED_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorEnvelope, "description": "No such canned response"},
    409: {"model": ErrorEnvelope, "description": "Short code taken"},
}


@router.get(
    "/canned-responses",
    summary="List canned responses",
    response_model=None,
    responses={200: {"model": Envelope[CannedList]}},
)
async def list_canned(
    principal: ConversationsRead,
    session: DBSession,
    q: Annotated[str | None, Query(max_length=64, description="Short code prefix")] = None,
) -> ORJSONResponse:
    rows = await service.list_canned(session, principal.workspace_id, q)
    return success({"canned_responses": [canned_out(r) for r in rows]})


@router.post(
    "/canned-responses",
    dependencies=IDEMPOTENT,
    status_code=201,
    summary="Create a canned response",
    response_model=None,
    responses={201: {"model": Envelope[CannedData]}, **_CANNED_ERRORS},
)
async def create_canned(
    data: CannedCreate, principal: ConversationsWrite, session: DBSession
) -> ORJSONResponse:
    row = await service.create_canned(session, principal.workspace_id, data)
    return success({"canned_response": canned_out(row)}, 201)


@router.put(
    "/canned-responses/{canned_id}",
    summary="Update a canned response",
    response_model=None,
    responses={200: {"model": Envelope[CannedData]}, **_CANNED_ERRORS},
)
async def update_canned(
    canned_id: str, data: CannedUpdate, principal: ConversationsWrite, session: DBSession
) -> ORJSONResponse:
    row = await service.update_canned(session, principal.workspace_id, canned_id, data)
    return success({"canned_response": canned_out(row)})


@router.delete(
    "/canned-responses/{canned_id}",
    summary="Delete a canned response",
    response_model=None,
    responses={200: {"model": Envelope[Deleted]}, **_CANNED_ERRORS},
)
async def delete_canned(
    canned_id: str, principal: ConversationsWrite, session: DBSession
) -> ORJSONResponse:
    deleted = await service.delete_canned(session, principal.workspace_id, canned_id)
    return success({"id": str(deleted), "deleted": True})


# --- settings and teams ---


@router.get(
    "/inbox/settings",
    summary="The workspace's inbox settings",
    response_model=None,
    responses={200: {"model": Envelope[SettingsData]}},
)
async def get_settings(principal: ConversationsRead, session: DBSession) -> ORJSONResponse:
    row = await service.inbox_settings(session, principal.workspace_id)
    return success({"settings": settings_out(row)})


@router.put(
    "/inbox/settings",
    summary="Change the inbox settings (owners and admins)",
    description="`only_assignee_replies`: only a conversation's assignee may reply. "
    "`auto_assign`: new conversations go round robin to available members with room.",
    response_model=None,
    responses={200: {"model": Envelope[SettingsData]}},
)
async def update_settings(
    data: SettingsUpdate, principal: WorkspaceManage, session: DBSession
) -> ORJSONResponse:
    row = await service.update_settings(session, principal.workspace_id, data)
    return success({"settings": settings_out(row)})


@router.get(
    "/teams",
    summary="List teams",
    response_model=None,
    responses={200: {"model": Envelope[TeamList]}},
)
async def list_teams(principal: ConversationsRead, session: DBSession) -> ORJSONResponse:
    rows = await service.list_teams(session, principal.workspace_id)
    members = await service.team_members(session, rows)
    return success({"teams": [team_out(t, members.get(t.id, [])) for t in rows]})


@router.post(
    "/teams",
    dependencies=IDEMPOTENT,
    status_code=201,
    summary="Create a team (owners and admins)",
    response_model=None,
    responses={201: {"model": Envelope[TeamData]}, 409: {"model": ErrorEnvelope}},
)
async def create_team(
    data: TeamCreate, principal: WorkspaceManage, session: DBSession
) -> ORJSONResponse:
    row = await service.create_team(session, principal.workspace_id, data)
    return success({"team": team_out(row)}, 201)


@router.put(
    "/teams/{team_id}/members",
    summary="Set a team's members (owners and admins)",
    description="Replaces the team's members (members of the workspace). With the inbox "
    "setting `auto_assign`, a conversation given this team while unassigned, or with this "
    "team reopened by the customer, goes round robin to the team's available members only "
    "(none available: it stays unassigned).",
    response_model=None,
    responses={
        200: {"model": Envelope[TeamData]},
        404: {"model": ErrorEnvelope},
        422: {"model": ErrorEnvelope, "description": "Not members of this workspace"},
    },
)
async def set_team_members(
    team_id: str, data: TeamMembers, principal: WorkspaceManage, session: DBSession
) -> ORJSONResponse:
    team, members = await service.set_team_members(
        session, principal.workspace_id, team_id, data.user_ids
    )
    return success({"team": team_out(team, members)})


@router.delete(
    "/teams/{team_id}",
    summary="Delete a team (its conversations keep no team)",
    response_model=None,
    responses={200: {"model": Envelope[Deleted]}, 404: {"model": ErrorEnvelope}},
)
async def delete_team(
    team_id: str, principal: WorkspaceManage, session: DBSession
) -> ORJSONResponse:
    deleted = await service.delete_team(session, principal.workspace_id, team_id)
    return success({"id": str(deleted), "deleted": True})
