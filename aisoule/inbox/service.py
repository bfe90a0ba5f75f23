"""The inbox's orchestration across domains: replying through the messages service, marking
the customer's messages read at Meta, a conversation's messages and search, and status ticks.
(aisoule.conversations holds the inbox's state; messages depends on it for the 24-hour window,
so what needs messages lives here.)"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule import queue
from aisoule.accounts import service as accounts
from aisoule.auth.principal import Principal
from aisoule.contacts import service as contacts
from aisoule.conversations import service as conversations
from aisoule.conversations.schemas import Reply
from aisoule.db.engine import outside_transaction
from aisoule.exceptions import NotFound, UpstreamFailed, ValidationFailed
from aisoule.live import service as live
from aisoule.messages import service as messages
from aisoule.messages.schemas import MessageSend
from aisoule.models import Conversation, Message
from aisoule.runtime import Runtime
from aisoule.whatsapp import media
from aisoule.whatsapp.provider import (
    MediaTooLarge,
    MetaAPIError,
    ProviderUnavailable,
    SendOutcomeUnknown,
)

log = structlog.get_logger(__name__)


async def list_page(
    session: AsyncSession,
    principal: Principal,
    listing: conversations.Listing,
    q: str | None,
    *,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """The inbox list; ``q`` searches the text of the conversations' messages."""
    q = (q or "").strip()
    text = (
        messages.text_match_clause(Conversation.account_id, Conversation.contact_id, q)
        if q
        else None
    )
    return await conversations.list_page(
        session, principal, listing, limit=limit, offset=offset, text=text
    )


async def messages_page(
    session: AsyncSession, principal: Principal, conversation_id: str, *, limit: int, offset: int
) -> tuple[Sequence[Message], int]:
    conv = await conversations.find(session, principal.workspace_id, conversation_id)
    return await messages.of_thread(
        session,
        principal.workspace_id,
        conv.account_id,
        conv.contact_id,
        limit=limit,
        offset=offset,
    )


async def on_status(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    wamid: str,
    status: str,
) -> None:
    """A tick (sent, delivered, read, failed) on one of our messages: a live event."""
    message = await messages.by_wamid(session, account_id, wamid)
    if message is None or message.contact_id is None or message.direction != "outbound":
        return
    conv = await conversations.by_thread(session, account_id, message.contact_id)
    if conv is None:
        return  # a message to someone who never wrote (a campaign): no conversation to tick
    await live.publish(
        session,
        workspace_id,
        live.MESSAGE_STATUS,
        {
            "conversation_id": str(conv.id),
            "message_id": str(message.id),
            "status": status,
            "message_status": message.status,
        },
    )


# --- opening it: unread and Meta's blue ticks ---


async def mark_read(
    session: AsyncSession, rt: Runtime, principal: Principal, conversation_id: str
) -> Conversation:
    """The member opened it: their unread count drops to 0, and the customer's newest message
    is marked read at Meta (once per message; after commit, never inside the transaction)."""
    conv = await conversations.find(session, principal.workspace_id, conversation_id, lock=True)
    await conversations.mark_seen(session, conv, principal.user_id)
    latest = await messages.latest_inbound(
        session, principal.workspace_id, conv.account_id, conv.contact_id
    )
    if latest is None or latest.wamid is None:
        return conv
    if not await conversations.note_read_mark(session, conv, latest.wamid):
        return conv  # already marked
    account = await accounts.get_by_id(session, conv.account_id)
    if account is None:  # pragma: no cover - the conversation cascades with its account
        return conv
    wamid = latest.wamid

    async def mark_at_meta() -> None:
        try:
            sender = await accounts.sender(rt, account)
            await sender.provider.mark_read(
                sender.phone_number_id, wamid, access_token=sender.access_token
            )
        except Exception as exc:  # best effort: the ticks are the customer's view only
            log.warning("mark_read_failed", wamid=wamid, error=repr(exc))

    queue.after_commit_call(session, mark_at_meta)
    return conv


# --- sending: the inbox's rules hold wherever a member sends from ---


async def send(
    session: AsyncSession,
    rt: Runtime,
    principal: Principal,
    data: MessageSend,
    idempotency_key: str | None = None,
) -> Message:
    """A message to a contact (POST /api/messages/send, /v1/messages, a contact's page): the
    messages service's checks, then, when the contact has a conversation with that number, the
    inbox's, as for a reply: with only_assignee_replies a member who is not its assignee is
    refused (403 assignee_only; the transaction, message included, is rolled back) and one who
    sends to an unassigned conversation claims it; the message becomes the conversation's last
    (a live event). API keys (integrations) are not held to the rule, as for replies."""
    message, created = await messages.send(
        session, rt, principal.workspace_id, data, idempotency_key
    )
    if not created or message.contact_id is None:
        return message  # a retry answers the first send, which was checked then
    conv = await conversations.by_thread(session, message.account_id, message.contact_id, lock=True)
    if conv is None:
        return message  # never wrote in (a template to a new contact): no conversation yet
    conv = await conversations.check_may_reply(session, principal, conv)
    await conversations.record_outbound(session, principal, conv.id, message)
    return message


# --- media: the composer's attachments and the customer's files ---

MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
_ALL_MEDIA_TYPES = frozenset(t for types, _ in media.SUPPORTED.values() for t in types) | {
    "image/webp"
}


@dataclass(frozen=True, slots=True)
class MediaFile:
    data: bytes
    mime_type: str
    filename: str | None
    inline: bool  # images, audio, video are shown; documents are downloaded


async def upload_media(
    session: AsyncSession,
    rt: Runtime,
    principal: Principal,
    conversation_id: str,
    data: bytes,
    mime_type: str | None,
    filename: str | None,
) -> dict[str, Any]:
    """A file for a reply: checked against Meta's limits for its message type (image 5 MB JPEG
    or PNG, video and audio 16 MB, documents 100 MB), uploaded to Meta's media API from the
    conversation's number (outside any transaction) and answered with Meta's media id, which a
    reply then sends (``{"type": "image", "image": {"id": ...}}``). Meta keeps it 30 days."""
    conv = await conversations.find(session, principal.workspace_id, conversation_id)
    name = (filename or "file").replace("\r", "").replace("\n", "")[:200] or "file"
    mime = (mime_type or "").split(";")[0].strip().lower()
    if not mime or mime == "application/octet-stream":
        mime = (media.guess_type(name) or "").lower()
    kind = media.kind_of(mime) if mime else None
    if kind is None:
        supported = ", ".join(sorted(_ALL_MEDIA_TYPES - {"image/webp"}))
        raise ValidationFailed(
            f"file: WhatsApp does not take {mime or 'a file of unknown type'}; send one of "
            f"{supported}",
            field="file",
        )
    if not data:
        raise ValidationFailed("file: the file is empty", field="file")
    problem = media.problem(kind, mime, len(data))
    if problem is not None:
        raise ValidationFailed(f"file: {problem}", field="file")
    account = await accounts.get_by_id(session, conv.account_id)
    if account is None:  # pragma: no cover - the conversation cascades with its account
        raise NotFound(conversations.CONVERSATION_NOT_FOUND, code="conversation_not_found")
    async with outside_transaction(session):
        try:
            sender = await accounts.sender(rt, account)
            media_id = await sender.provider.upload_media(
                sender.phone_number_id, data, mime, name, access_token=sender.access_token
            )
        except MetaAPIError as exc:
            raise ValidationFailed(
                f"file: Meta refused it: ({exc.code}) {exc.message}",
                field="file",
                code="meta_rejected",
            ) from exc
        except (ProviderUnavailable, SendOutcomeUnknown) as exc:
            raise UpstreamFailed(f"could not reach the Graph API: {exc}") from exc
    return {"id": media_id, "type": kind, "mime_type": mime, "size": len(data), "filename": name}


async def media_file(
    session: AsyncSession,
    rt: Runtime,
    principal: Principal,
    conversation_id: str,
    message_id: str,
) -> MediaFile:
    """The file of a media message of this conversation (the customer's photo, a document we
    sent by id), downloaded from Meta when asked: ``GET /{media-id}`` and its short-lived URL.
    A message of another conversation, or one without a Meta media id, is a 404."""
    conv = await conversations.find(session, principal.workspace_id, conversation_id)
    try:
        message: Message | None = await messages.get(session, principal.workspace_id, message_id)
    except NotFound:
        message = None
    payload = message.payload if message is not None else None
    kind = payload.get("type") if isinstance(payload, dict) else None
    obj = payload.get(kind) if isinstance(payload, dict) and kind in MEDIA_KINDS else None
    media_id = obj.get("id") if isinstance(obj, dict) else None
    if (
        message is None
        or message.account_id != conv.account_id
        or message.contact_id != conv.contact_id
        or not isinstance(media_id, str)
    ):
        raise NotFound("No media file of this conversation has this id", code="media_not_found")
    account = await accounts.get_by_id(session, conv.account_id)
    if account is None:  # pragma: no cover
        raise NotFound(conversations.CONVERSATION_NOT_FOUND, code="conversation_not_found")
    limit = media.SUPPORTED.get(str(kind), (frozenset(), 100 * media.MB))[1]
    try:
        sender = await accounts.sender(rt, account)
        data, mime = await sender.provider.download_media(
            media_id,
            max_bytes=limit,
            phone_number_id=sender.phone_number_id,
            access_token=sender.access_token,
        )
    except MetaAPIError as exc:
        if exc.http_status == 404 or exc.code == 100:
            raise NotFound(
                "Meta no longer has this file (it keeps media 30 days)", code="media_gone"
            ) from exc
        raise UpstreamFailed(f"Meta answered an error: ({exc.code}) {exc.message}") from exc
    except MediaTooLarge as exc:
        raise UpstreamFailed(f"the file is larger than WhatsApp's limit: {exc}") from exc
    except (ProviderUnavailable, SendOutcomeUnknown) as exc:
        raise UpstreamFailed(f"could not reach the Graph API: {exc}") from exc
    mime = mime.split(";")[0].strip().lower()
    if mime not in _ALL_MEDIA_TYPES:
        mime = "application/octet-stream"  # never serve what a browser might run
    filename = obj.get("filename") if isinstance(obj, dict) else None
    return MediaFile(
        data=data,
        mime_type=mime,
        filename=filename if isinstance(filename, str) else None,
        inline=kind in ("image", "video", "audio", "sticker"),
    )


# --- replying ---


async def reply(
    session: AsyncSession,
    rt: Runtime,
    principal: Principal,
    conversation_id: str,
    data: Reply,
    idempotency_key: str | None = None,
) -> Message:
    """Send to the conversation's customer from its number, through the messages service and
    its checks (consent; the 24-hour window: free text outside it is a 422
    outside_24h_window, a template is accepted; templates and media as POST /api/messages/send).
    With only_assignee_replies, a member who is not the assignee is refused (403), and replying
    to an unassigned conversation claims it."""
    conv = await conversations.find(session, principal.workspace_id, conversation_id, lock=True)
    conv = await conversations.check_may_reply(session, principal, conv)
    context = None
    if data.reply_to is not None:
        context = (await _quoted(session, principal.workspace_id, conv, data.reply_to)).wamid
    card = (await contacts.cards(session, principal.workspace_id, [conv.contact_id])).get(
        conv.contact_id
    )
    if card is None:  # pragma: no cover - the conversation cascades with its contact
        raise NotFound(conversations.CONVERSATION_NOT_FOUND, code="conversation_not_found")
    fields: dict[str, Any] = {
        "to": str(card["uuid"]),
        "account_id": str(conv.account_id),
        "type": data.type,
    }
    if data.type == "text":
        text = data.text
        if data.canned is not None:
            text = await conversations.canned_content(session, principal.workspace_id, data.canned)
        fields["text"] = {"body": text}
    else:
        fields[data.type] = getattr(data, data.type)
    message, created = await messages.send(
        session,
        rt,
        principal.workspace_id,
        MessageSend.model_validate(fields),
        idempotency_key,
        context_wamid=context,
    )
    if created:
        await conversations.record_outbound(session, principal, conv.id, message)
    return message


async def _quoted(
    session: AsyncSession, workspace_id: uuid.UUID, conv: Conversation, message_id: str
) -> Message:
    try:
        quoted: Message | None = await messages.get(session, workspace_id, message_id)
    except NotFound:
        quoted = None
    if (
        quoted is None
        or quoted.account_id != conv.account_id
        or quoted.contact_id != conv.contact_id
        or quoted.wamid is None
    ):
        raise ValidationFailed(
            "reply_to: not a message of this conversation that reached WhatsApp", field="reply_to"
        )
    return quoted
