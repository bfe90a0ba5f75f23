"""Conversations: the customer-service window. A business may send free-form messages to a
customer within 24 hours of the customer's last message to that number (Meta answers 131047
outside it); the inbox will grow from these rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.auth.principal import Principal
from aisoule.contacts import service as contacts
from aisoule.conversations.repository import (
    ConversationRepository,
    InboxRepository,
    ListFilters,
    last_inbound_of,
)
from aisoule.conversations.schemas import (
    CannedCreate,
    CannedUpdate,
    LabelsChange,
    SettingsUpdate,
    StatusChange,
    TeamCreate,
    conversation_out,
    effective_status,
)
from aisoule.exceptions import Conflict, Forbidden, NotFound, ValidationFailed
from aisoule.kit.ids import parse_uuid
from aisoule.kit.time import iso_z, utcnow
from aisoule.live import service as live
from aisoule.models import (
    CannedResponse,
    Conversation,
    ConversationEvent,
    InboxSettings,
    Message,
    Team,
)
from aisoule.users import service as users

log = structlog.get_logger(__name__)

WINDOW = timedelta(hours=24)


def in_window(last_inbound_at: datetime | None, now: datetime) -> bool:
    return last_inbound_at is not None and now - last_inbound_at <= WINDOW


async def open_window(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    contact_id: int,
    at: datetime,
) -> None:
    """The customer wrote to this number at ``at`` (an inbound message)."""
    await ConversationRepository(session).open_window(workspace_id, account_id, contact_id, at)


def last_inbound_column(account_id: uuid.UUID, contact_id: Any) -> Any:
    """``last_inbound`` as a column for another domain's lookup of the contact (``contact_id``
    its contact id column): the sender reads contact, consent and window in one statement."""
    return last_inbound_of(account_id, contact_id)


# -- the team inbox ------------------------------------------------------------------------------
# Conversations as a team answers them: status, assignee, team, labels, notes, unread counts,
# replies, and the timeline and live events every change leaves. Services only flush; network
# I/O (marking read at Meta) runs after commit.

CONVERSATION_NOT_FOUND = "Conversation not found"


def _actor(principal: Principal | None) -> dict[str, Any]:
    if principal is None:
        return {"actor_user_id": None, "actor_api_key_id": None}
    return {"actor_user_id": principal.user_id, "actor_api_key_id": principal.api_key_id}


async def _event(
    session: AsyncSession,
    conv: Conversation,
    kind: str,
    principal: Principal | None,
    data: dict[str, Any],
) -> ConversationEvent:
    return await InboxRepository(session).add_event(
        ConversationEvent(
            workspace_id=conv.workspace_id,
            conversation_id=conv.id,
            kind=kind,
            data=data,
            created_at=utcnow(),
            **_actor(principal),
        )
    )


async def _updated(session: AsyncSession, conv: Conversation, change: str, **extra: Any) -> None:
    await live.publish(
        session,
        conv.workspace_id,
        live.CONVERSATION_UPDATED,
        {
            "conversation_id": str(conv.id),
            "change": change,
            "status": conv.status,
            "assignee_id": str(conv.assignee_id) if conv.assignee_id else None,
            **extra,
        },
    )


async def _conv(
    session: AsyncSession, workspace_id: uuid.UUID, conversation_id: str, *, lock: bool = False
) -> Conversation:
    cid = (
        int(conversation_id)
        if conversation_id.isascii() and conversation_id.isdigit() and len(conversation_id) < 19
        else None
    )
    conv = await InboxRepository(session).get(workspace_id, cid, lock=lock) if cid else None
    if conv is None:
        raise NotFound(CONVERSATION_NOT_FOUND, code="conversation_not_found")
    return conv


async def find(
    session: AsyncSession, workspace_id: uuid.UUID, conversation_id: str, *, lock: bool = False
) -> Conversation:
    """The workspace's conversation (404 otherwise); ``lock``: FOR UPDATE on PostgreSQL."""
    return await _conv(session, workspace_id, conversation_id, lock=lock)


async def by_thread(
    session: AsyncSession, account_id: uuid.UUID, contact_id: int, *, lock: bool = False
) -> Conversation | None:
    """The conversation of this contact with this number (locked with ``lock``)."""
    return await InboxRepository(session).of_thread(account_id, contact_id, lock=lock)


async def mark_seen(
    session: AsyncSession, conversation: Conversation, user_id: uuid.UUID | None
) -> None:
    """``user_id`` has seen everything the customer wrote so far (their unread is 0)."""
    if user_id is not None:
        await InboxRepository(session).mark_seen(
            conversation.id, user_id, conversation.inbound_count, utcnow()
        )


async def note_read_mark(session: AsyncSession, conversation: Conversation, wamid: str) -> bool:
    """Whether ``wamid`` (the newest inbound message) still needs marking read at Meta; noted."""
    if conversation.read_marked_wamid == wamid:
        return False
    conversation.read_marked_wamid = wamid
    await session.flush()
    return True


async def check_may_reply(
    session: AsyncSession, principal: Principal, conversation: Conversation
) -> Conversation:
    """Refuse a reply the workspace's only_assignee_replies forbids (an API key, an integration,
    is not held to it); a member replying to an unassigned conversation then claims it."""
    settings = await InboxRepository(session).settings(principal.workspace_id)
    if settings is None or not settings.only_assignee_replies or principal.via != "session":
        return conversation
    if conversation.assignee_id is None:
        return await claim(session, principal, str(conversation.id), "replied")
    if conversation.assignee_id != principal.user_id:
        raise Forbidden(
            f"Only the assignee ({await _holder(session, conversation.assignee_id)}) may reply "
            "to this conversation (workspace setting only_assignee_replies)",
            code="assignee_only",
        )
    return conversation


async def canned_content(session: AsyncSession, workspace_id: uuid.UUID, code: str) -> str:
    row = await InboxRepository(session).canned_by_code(
        workspace_id, code.strip().lstrip("/").lower()
    )
    if row is None:
        raise ValidationFailed(f"canned: no canned response '{code}'", field="canned")
    return row.content


async def record_outbound(
    session: AsyncSession, principal: Principal, conversation_id: int, message: Message
) -> None:
    """A reply was queued: it is the conversation's last message, and a live event."""
    c = await InboxRepository(session).get(principal.workspace_id, conversation_id, lock=True)
    if c is None:  # pragma: no cover
        return
    now = utcnow()
    c.last_message_at = max(c.last_message_at, now) if c.last_message_at else now
    c.last_message_preview = (message.preview or "")[:500]
    c.last_message_direction = "outbound"
    await session.flush()
    await live.publish(
        session,
        principal.workspace_id,
        live.MESSAGE_CREATED,
        {
            "conversation_id": str(c.id),
            "message_id": str(message.id),
            "direction": "outbound",
            "preview": c.last_message_preview,
            "status": c.status,
            "assignee_id": str(c.assignee_id) if c.assignee_id else None,
            "author_id": str(principal.user_id) if principal.user_id else None,
        },
    )


async def inbox_settings(session: AsyncSession, workspace_id: uuid.UUID) -> InboxSettings | None:
    return await InboxRepository(session).settings(workspace_id)


async def update_settings(
    session: AsyncSession, workspace_id: uuid.UUID, data: SettingsUpdate
) -> InboxSettings:
    repo = InboxRepository(session)
    row = await repo.settings(workspace_id)
    if row is None:
        row = await repo.add(
            InboxSettings(
                workspace_id=workspace_id,
                only_assignee_replies=False,
                auto_assign=False,
                updated_at=utcnow(),
            )
        )
    for key, value in data.model_dump(exclude_unset=True).items():
        if value is None:
            raise ValidationFailed(f"{key}: must be true or false", field=key)
        setattr(row, key, value)
    row.updated_at = utcnow()
    await session.flush()
    return row


# --- what Meta's webhooks set off (aisoule.whatsapp.inbound.handoff) ---


async def on_inbound_message(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    account_id: uuid.UUID,
    contact_id: int,
    message_id: uuid.UUID,
    preview: str | None,
    at: datetime,
) -> None:
    """A customer's message (after open_window): one more unread, the last message, a resolved
    or snoozed conversation reopened, round robin for an unassigned one, a live event."""
    repo = InboxRepository(session)
    conv = await repo.of_thread(account_id, contact_id)
    if conv is None:  # pragma: no cover - open_window wrote it in this transaction
        return
    now = utcnow()
    new = conv.created_at is None
    if new:
        conv.created_at = now
    conv.inbound_count = (conv.inbound_count or 0) + 1
    if conv.last_message_at is None or at >= conv.last_message_at or new:
        conv.last_message_preview = (preview or "")[:500]
        conv.last_message_direction = "inbound"
    before = effective_status(conv, now)
    if conv.status in ("resolved", "snoozed"):
        conv.status, conv.snoozed_until = "open", None
    await session.flush()
    if before in ("resolved", "snoozed"):
        await _event(
            session,
            conv,
            "status",
            None,
            {"from": before, "to": "open", "reason": "customer_wrote"},
        )
    if conv.assignee_id is None and (new or before == "resolved"):
        settings = await repo.settings(workspace_id)
        if settings is not None and settings.auto_assign:
            await _auto_assign(session, conv)
    await live.publish(
        session,
        workspace_id,
        live.MESSAGE_CREATED,
        {
            "conversation_id": str(conv.id),
            "message_id": str(message_id),
            "direction": "inbound",
            "preview": conv.last_message_preview,
            "status": conv.status,
            "assignee_id": str(conv.assignee_id) if conv.assignee_id else None,
            "new_conversation": new,
        },
    )


async def _auto_assign(session: AsyncSession, conv: Conversation) -> None:
    repo = InboxRepository(session)
    user_id = await repo.next_in_rotation(conv.workspace_id, conv.team_id)
    if user_id is None:
        return  # nobody available with room: it stays in Unassigned
    conv.assignee_id = user_id
    await session.flush()
    await repo.assigned_now(conv.workspace_id, user_id, utcnow())
    await _event(
        session, conv, "assigned", None, {"from": None, "to": str(user_id), "reason": "auto"}
    )


# --- reading ---


@dataclass(frozen=True, slots=True)
class Listing:
    view: str = "all"
    status: str | None = None
    label: str | None = None
    account_id: str | None = None
    assignee_id: str | None = None
    team_id: str | None = None


def _uuid_filter(value: str | None, field: str) -> uuid.UUID | None:
    if value is None:
        return None
    parsed = parse_uuid(value)
    if parsed is None:
        raise ValidationFailed(f"{field}: not an id", field=field)
    return parsed


async def render(
    session: AsyncSession,
    principal: Principal,
    rows: list[tuple[Conversation, int | None]],
) -> list[dict[str, Any]]:
    """Conversations as the API shows them: contact card, labels, assignee, unread."""
    now = utcnow()
    cards = await contacts.cards(session, principal.workspace_id, (c.contact_id for c, _ in rows))
    labels = await InboxRepository(session).labels_of(c.id for c, _ in rows)
    people = await users.users_by_id(session, [c.assignee_id for c, _ in rows if c.assignee_id])
    out = []
    for c, unread in rows:
        person = people.get(c.assignee_id) if c.assignee_id else None
        assignee = (
            {"id": str(person.id), "name": person.name, "email": person.email} if person else None
        )
        out.append(
            conversation_out(
                c,
                now=now,
                contact=cards.get(c.contact_id),
                labels=labels.get(c.id, []),
                unread=unread,
                assignee=assignee,
            )
        )
    return out


async def list_page(
    session: AsyncSession,
    principal: Principal,
    listing: Listing,
    *,
    limit: int,
    offset: int,
    text: Any = None,
) -> tuple[list[dict[str, Any]], int]:
    """Ordered by last message, newest first; views mine (the caller's), unassigned, all.
    ``text``: a clause over the thread's messages (the inbox's search builds it)."""
    if listing.view == "mine" and principal.user_id is None:
        raise ValidationFailed(
            "view: 'mine' is a member's view; an API key lists all or unassigned", field="view"
        )
    filters = ListFilters(
        view=listing.view,
        status=listing.status,
        label=listing.label.strip().lower() if listing.label else None,
        account_id=_uuid_filter(listing.account_id, "account_id"),
        assignee_id=_uuid_filter(listing.assignee_id, "assignee_id"),
        team_id=_uuid_filter(listing.team_id, "team_id"),
        text=text,
    )
    rows, total = await InboxRepository(session).list_page(
        principal.workspace_id, principal.user_id, filters, utcnow(), limit=limit, offset=offset
    )
    return await render(session, principal, rows), total


async def get(session: AsyncSession, principal: Principal, conversation_id: str) -> dict[str, Any]:
    conv = await _conv(session, principal.workspace_id, conversation_id)
    unread = (
        await InboxRepository(session).unread_of(conv, principal.user_id)
        if principal.user_id
        else None
    )
    return (await render(session, principal, [(conv, unread)]))[0]


async def events_page(
    session: AsyncSession, principal: Principal, conversation_id: str, *, limit: int, offset: int
) -> tuple[Sequence[ConversationEvent], int]:
    conv = await _conv(session, principal.workspace_id, conversation_id)
    return await InboxRepository(session).events(conv.id, limit=limit, offset=offset)


async def labels(session: AsyncSession, workspace_id: uuid.UUID) -> list[tuple[str, int]]:
    return await InboxRepository(session).workspace_labels(workspace_id)


# --- assignment ---


async def _holder(session: AsyncSession, user_id: uuid.UUID) -> str:
    person = (await users.users_by_id(session, [user_id])).get(user_id)
    return f"{person.name} <{person.email}>" if person else str(user_id)


def _manager(principal: Principal) -> bool:
    return "workspace:manage" in principal.scopes


async def claim(
    session: AsyncSession, principal: Principal, conversation_id: str, reason: str | None = None
) -> Conversation:
    """Take an unassigned conversation, atomically: of two agents at once exactly one gets it;
    the other is told who has it (409). Claiming one's own is a no-op."""
    conv = await _conv(session, principal.workspace_id, conversation_id)  # 404 first
    if principal.user_id is None:
        raise Forbidden(
            "Claiming is a member's: log in (an API key assigns)", code="session_required"
        )
    if conv.assignee_id == principal.user_id:
        return conv
    won = await InboxRepository(session).claim(principal.workspace_id, conv.id, principal.user_id)
    conv = await _conv(session, principal.workspace_id, conversation_id)
    if not won and conv.assignee_id == principal.user_id:
        return conv  # a concurrent claim of the same member won
    if not won:
        holder = conv.assignee_id
        raise Conflict(
            f"Already assigned to {await _holder(session, holder) if holder else 'someone else'}",
            code="already_assigned",
            details=[{"field": "assignee_id", "message": str(holder)}] if holder else None,
        )
    await _event(
        session,
        conv,
        "assigned",
        principal,
        {"from": None, "to": str(principal.user_id), "reason": reason or "claim"},
    )
    await _updated(session, conv, "assignee")
    return conv


async def assign(
    session: AsyncSession,
    principal: Principal,
    conversation_id: str,
    assignee: str | None,
    reason: str | None = None,
) -> Conversation:
    """Assign to a member or unassign. Taking a conversation someone else holds (or giving it
    away from them) is for owners and admins: an agent's attempt is a 409 naming the holder,
    so two agents never flip it back and forth."""
    conv = await _conv(session, principal.workspace_id, conversation_id, lock=True)
    target = _uuid_filter(assignee, "assignee_id") if assignee is not None else None
    if (
        target is not None
        and await users.get_membership(session, target, principal.workspace_id) is None
    ):
        raise ValidationFailed("assignee_id: not a member of this workspace", field="assignee_id")
    before = conv.assignee_id
    if before == target:
        return conv
    if before is not None and before != principal.user_id and not _manager(principal):
        raise Conflict(
            f"Assigned to {await _holder(session, before)}; only an owner or admin reassigns it",
            code="already_assigned",
            details=[{"field": "assignee_id", "message": str(before)}],
        )
    conv.assignee_id = target
    await session.flush()
    await _event(
        session,
        conv,
        "assigned",
        principal,
        {
            "from": str(before) if before else None,
            "to": str(target) if target else None,
            "reason": reason or ("takeover" if before else "manual"),
        },
    )
    await _updated(session, conv, "assignee")
    return conv


async def unassign_member(
    session: AsyncSession, principal: Principal, user_id: uuid.UUID, reason: str
) -> None:
    """A member left: their conversations go back to Unassigned (each with its event)."""
    repo = InboxRepository(session)
    await repo.leave_teams(principal.workspace_id, user_id)
    for cid in await repo.unassign_member(principal.workspace_id, user_id):
        conv = await repo.get(principal.workspace_id, cid)
        if conv is None:
            continue
        await _event(
            session,
            conv,
            "assigned",
            principal,
            {"from": str(user_id), "to": None, "reason": reason},
        )
        await _updated(session, conv, "assignee")


async def set_team(
    session: AsyncSession, principal: Principal, conversation_id: str, team_id: str | None
) -> Conversation:
    conv = await _conv(session, principal.workspace_id, conversation_id, lock=True)
    target = _uuid_filter(team_id, "team_id") if team_id is not None else None
    if (
        target is not None
        and await InboxRepository(session).team(principal.workspace_id, target) is None
    ):
        raise ValidationFailed("team_id: no such team in this workspace", field="team_id")
    before = conv.team_id
    if before != target:
        conv.team_id = target
        await session.flush()
        await _event(
            session,
            conv,
            "team",
            principal,
            {"from": str(before) if before else None, "to": str(target) if target else None},
        )
        await _updated(session, conv, "team", team_id=str(target) if target else None)
        if target is not None and conv.assignee_id is None:
            # Round robin within the team, when the workspace assigns automatically.
            settings = await InboxRepository(session).settings(principal.workspace_id)
            if settings is not None and settings.auto_assign:
                await _auto_assign(session, conv)
                if conv.assignee_id is not None:
                    await _updated(session, conv, "assignee")
    return conv


async def set_status(
    session: AsyncSession, principal: Principal, conversation_id: str, data: StatusChange
) -> Conversation:
    conv = await _conv(session, principal.workspace_id, conversation_id, lock=True)
    now = utcnow()
    if data.snoozed_until is not None and data.snoozed_until <= now:
        raise ValidationFailed("snoozed_until: must be in the future", field="snoozed_until")
    before = effective_status(conv, now)
    if before == data.status and conv.snoozed_until == data.snoozed_until:
        return conv
    conv.status, conv.snoozed_until = data.status, data.snoozed_until
    await session.flush()
    change: dict[str, Any] = {"from": before, "to": data.status, "reason": data.reason}
    if data.snoozed_until is not None:
        change["until"] = iso_z(data.snoozed_until)
    await _event(session, conv, "status", principal, change)
    await _updated(session, conv, "status")
    return conv


async def change_labels(
    session: AsyncSession, principal: Principal, conversation_id: str, data: LabelsChange
) -> Conversation:
    conv = await _conv(session, principal.workspace_id, conversation_id, lock=True)
    repo = InboxRepository(session)
    current = set((await repo.labels_of([conv.id]))[conv.id])
    added = sorted(set(data.add) - current)
    removed = sorted(set(data.remove) & current - set(data.add))
    if len(current) + len(added) - len(removed) > 50:
        raise ValidationFailed("add: a conversation has at most 50 labels", field="add")
    await repo.add_labels(principal.workspace_id, conv.id, added)
    await repo.remove_labels(conv.id, removed)
    if added or removed:
        await _event(session, conv, "labels", principal, {"added": added, "removed": removed})
        await _updated(session, conv, "labels", added=added, removed=removed)
    return conv


async def add_note(
    session: AsyncSession, principal: Principal, conversation_id: str, body: str
) -> ConversationEvent:
    """A private note: on the timeline and the live channel, never sent to the customer."""
    conv = await _conv(session, principal.workspace_id, conversation_id)
    event = await _event(session, conv, "note", principal, {"body": body})
    await live.publish(
        session,
        principal.workspace_id,
        live.NOTE_CREATED,
        {
            "conversation_id": str(conv.id),
            "event_id": event.id,
            "author_id": str(principal.user_id) if principal.user_id else None,
        },
    )
    return event


# --- canned responses ---


async def list_canned(
    session: AsyncSession, workspace_id: uuid.UUID, q: str | None
) -> Sequence[CannedResponse]:
    return await InboxRepository(session).canned(
        workspace_id, (q or "").strip().lstrip("/") or None
    )


async def _canned(session: AsyncSession, workspace_id: uuid.UUID, canned_id: str) -> CannedResponse:
    parsed = parse_uuid(canned_id)
    row = await InboxRepository(session).canned_by_id(workspace_id, parsed) if parsed else None
    if row is None:
        raise NotFound("Canned response not found", code="canned_response_not_found")
    return row


async def _free_code(
    session: AsyncSession, workspace_id: uuid.UUID, code: str, me: uuid.UUID | None
) -> None:
    other = await InboxRepository(session).canned_by_code(workspace_id, code)
    if other is not None and other.id != me:
        raise Conflict(
            f"short_code: '{code}' is taken", field="short_code", code="short_code_taken"
        )


async def create_canned(
    session: AsyncSession, workspace_id: uuid.UUID, data: CannedCreate
) -> CannedResponse:
    await _free_code(session, workspace_id, data.short_code, None)
    now = utcnow()
    return await InboxRepository(session).add(
        CannedResponse(
            id=uuid.uuid4(),
            workspace_id=workspace_id,
            short_code=data.short_code,
            content=data.content,
            created_at=now,
            updated_at=now,
        )
    )


async def update_canned(
    session: AsyncSession, workspace_id: uuid.UUID, canned_id: str, data: CannedUpdate
) -> CannedResponse:
    row = await _canned(session, workspace_id, canned_id)
    changes = data.model_dump(exclude_unset=True)
    for key, value in changes.items():
        if value is None:
            raise ValidationFailed(f"{key}: must not be null", field=key)
    if "short_code" in changes:
        await _free_code(session, workspace_id, changes["short_code"], row.id)
    for key, value in changes.items():
        setattr(row, key, value)
    row.updated_at = utcnow()
    await session.flush()
    return row


async def delete_canned(
    session: AsyncSession, workspace_id: uuid.UUID, canned_id: str
) -> uuid.UUID:
    row = await _canned(session, workspace_id, canned_id)
    await InboxRepository(session).delete_row(row)
    return row.id


# --- teams ---


async def list_teams(session: AsyncSession, workspace_id: uuid.UUID) -> Sequence[Team]:
    return await InboxRepository(session).teams(workspace_id)


async def create_team(session: AsyncSession, workspace_id: uuid.UUID, data: TeamCreate) -> Team:
    repo = InboxRepository(session)
    if await repo.team_by_name(workspace_id, data.name) is not None:
        raise Conflict(f"name: a team named '{data.name}' exists", field="name")
    return await repo.add(
        Team(id=uuid.uuid4(), workspace_id=workspace_id, name=data.name, created_at=utcnow())
    )


async def team_members(
    session: AsyncSession, teams: Sequence[Team]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    return await InboxRepository(session).team_members(t.id for t in teams)


async def set_team_members(
    session: AsyncSession, workspace_id: uuid.UUID, team_id: str, user_ids: list[str]
) -> tuple[Team, list[uuid.UUID]]:
    """Replace the team's members (members of the workspace): round robin of a conversation
    with this team picks among them."""
    parsed = parse_uuid(team_id)
    repo = InboxRepository(session)
    team = await repo.team(workspace_id, parsed) if parsed else None
    if team is None:
        raise NotFound("Team not found", code="team_not_found")
    ids: list[uuid.UUID] = []
    for i, raw in enumerate(user_ids):
        value = parse_uuid(raw)
        if value is None:
            raise ValidationFailed(f"user_ids[{i}]: not a user id", field="user_ids")
        ids.append(value)
    known = await repo.workspace_members_among(workspace_id, ids)
    strangers = [str(u) for u in ids if u not in known]
    if strangers:
        raise ValidationFailed(
            f"user_ids: not members of this workspace: {', '.join(strangers[:5])}",
            field="user_ids",
        )
    await repo.set_team_members(workspace_id, team.id, ids)
    return team, sorted(set(ids))


async def delete_team(session: AsyncSession, workspace_id: uuid.UUID, team_id: str) -> uuid.UUID:
    parsed = parse_uuid(team_id)
    repo = InboxRepository(session)
    row = await repo.team(workspace_id, parsed) if parsed else None
    if row is None:
        raise NotFound("Team not found", code="team_not_found")
    await repo.delete_row(row)
    return row.id
