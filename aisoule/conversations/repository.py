"""Conversation SQL: when the customer last wrote to a number (the 24-hour window), and the
team inbox's state of each conversation."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, false, func, literal, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.models import (
    CannedResponse,
    Conversation,
    ConversationEvent,
    ConversationLabel,
    ConversationRead,
    InboxMember,
    InboxSettings,
    Team,
    TeamMember,
    WorkspaceMember,
)


def last_inbound_of(account_id: uuid.UUID, contact_id: Any) -> Any:
    """A scalar subquery: when ``contact_id`` (a value or a correlated column) last wrote to this
    account's number, NULL if never; for another domain's statement to carry along."""
    return (
        select(Conversation.last_inbound_at)
        .where(Conversation.account_id == account_id, Conversation.contact_id == contact_id)
        .scalar_subquery()
    )


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open_window(
        self, workspace_id: uuid.UUID, account_id: uuid.UUID, contact_id: int, at: datetime
    ) -> None:
        """The customer wrote at ``at``: their 24-hour window on this number runs from the latest
        such time (a late, out-of-order webhook never moves it back)."""
        sqlite_db = self.session.get_bind().dialect.name == "sqlite"
        stmt = (sqlite.insert if sqlite_db else postgresql.insert)(Conversation).values(
            workspace_id=workspace_id,
            account_id=account_id,
            contact_id=contact_id,
            last_inbound_at=at,
            last_message_at=at,
        )
        new = stmt.excluded
        latest = func.max if sqlite_db else func.greatest
        sets = {
            col: func.coalesce(
                latest(getattr(Conversation, col), getattr(new, col)), getattr(new, col)
            )
            for col in ("last_inbound_at", "last_message_at")
        }
        await self.session.execute(
            stmt.on_conflict_do_update(index_elements=["account_id", "contact_id"], set_=sets)
        )


@dataclass(frozen=True, slots=True)
class ListFilters:
    """The inbox list's view and filters (None: not filtered)."""

    view: str = "all"  # all | mine | unassigned
    status: str | None = None
    label: str | None = None
    account_id: uuid.UUID | None = None
    assignee_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    text: Any = None  # an EXISTS clause over the thread's messages (messages.text_match_clause)


def _status_is(status: str, now: datetime) -> Any:
    """A snooze that has run out is open again (no sweeper needed: it is read that way)."""
    C = Conversation
    if status == "open":
        return or_(C.status == "open", and_(C.status == "snoozed", C.snoozed_until <= now))
    if status == "snoozed":
        return and_(C.status == "snoozed", or_(C.snoozed_until.is_(None), C.snoozed_until > now))
    return C.status == status


ACTIVE = ("open", "pending")  # what counts against a member's capacity


class InboxRepository:
    """The inbox's SQL: conversations as an inbox sees them, and everything hung on them."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    # --- conversations ---

    async def of_thread(
        self, account_id: uuid.UUID, contact_id: int, *, lock: bool = True
    ) -> Conversation | None:
        stmt = select(Conversation).where(
            Conversation.account_id == account_id, Conversation.contact_id == contact_id
        )
        if lock:
            stmt = stmt.with_for_update()
        result = await self.session.execute(stmt.execution_options(populate_existing=True))
        return result.scalar_one_or_none()

    async def get(
        self, workspace_id: uuid.UUID, conversation_id: int, *, lock: bool = False
    ) -> Conversation | None:
        stmt = select(Conversation).where(
            Conversation.workspace_id == workspace_id, Conversation.id == conversation_id
        )
        if lock:
            stmt = stmt.with_for_update()
        result = await self.session.execute(stmt.execution_options(populate_existing=True))
        return result.scalar_one_or_none()

    def _where(
        self, workspace_id: uuid.UUID, user_id: uuid.UUID | None, f: ListFilters, now: datetime
    ) -> Any:
        C = Conversation
        where = [C.workspace_id == workspace_id]
        if f.view == "mine":
            where.append(C.assignee_id == user_id if user_id else false())
        elif f.view == "unassigned":
            where.append(C.assignee_id.is_(None))
        if f.status is not None:
            where.append(_status_is(f.status, now))
        if f.account_id is not None:
            where.append(C.account_id == f.account_id)
        if f.assignee_id is not None:
            where.append(C.assignee_id == f.assignee_id)
        if f.team_id is not None:
            where.append(C.team_id == f.team_id)
        if f.label is not None:
            where.append(
                select(ConversationLabel.label)
                .where(
                    ConversationLabel.conversation_id == C.id,
                    ConversationLabel.label == f.label,
                )
                .exists()
            )
        if f.text is not None:
            where.append(f.text)
        return and_(*where)

    async def list_page(
        self,
        workspace_id: uuid.UUID,
        user_id: uuid.UUID | None,
        f: ListFilters,
        now: datetime,
        *,
        limit: int,
        offset: int,
    ) -> tuple[list[tuple[Conversation, int | None]], int]:
        C = Conversation
        where = self._where(workspace_id, user_id, f, now)
        if user_id is not None:
            seen = (
                select(ConversationRead.seen_inbound_count)
                .where(
                    ConversationRead.conversation_id == C.id, ConversationRead.user_id == user_id
                )
                .scalar_subquery()
            )
            unread: Any = C.inbound_count - func.coalesce(seen, 0)
        else:
            unread = literal(None)
        rows = await self.session.execute(
            select(C, unread.label("unread"))
            .where(where)
            .order_by(C.last_message_at.desc().nulls_last(), C.id.desc())
            .limit(limit)
            .offset(offset)
        )
        total = await self.session.execute(select(func.count()).select_from(C).where(where))
        return [(c, u) for c, u in rows.all()], int(total.scalar_one())

    async def unread_of(self, conversation: Conversation, user_id: uuid.UUID) -> int:
        seen = (
            await self.session.execute(
                select(ConversationRead.seen_inbound_count).where(
                    ConversationRead.conversation_id == conversation.id,
                    ConversationRead.user_id == user_id,
                )
            )
        ).scalar_one_or_none()
        return max(0, conversation.inbound_count - int(seen or 0))

    async def claim(
        self, workspace_id: uuid.UUID, conversation_id: int, user_id: uuid.UUID
    ) -> bool:
        """Assign to ``user_id`` if nobody has it, in one statement: of concurrent claims
        exactly one changes the row (the others find it taken, their own included)."""
        result = await self.session.execute(
            update(Conversation)
            .where(
                Conversation.workspace_id == workspace_id,
                Conversation.id == conversation_id,
                Conversation.assignee_id.is_(None),
            )
            .values(assignee_id=user_id)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def unassign_member(self, workspace_id: uuid.UUID, user_id: uuid.UUID) -> list[int]:
        result = await self.session.execute(
            update(Conversation)
            .where(Conversation.workspace_id == workspace_id, Conversation.assignee_id == user_id)
            .values(assignee_id=None)
            .returning(Conversation.id)
            .execution_options(synchronize_session=False)
        )
        return [int(i) for i in result.scalars().all()]

    async def next_in_rotation(
        self, workspace_id: uuid.UUID, team_id: uuid.UUID | None = None
    ) -> uuid.UUID | None:
        """Round robin: the available member with room (fewer active conversations than their
        capacity) who was assigned least recently; with ``team_id``, among that team's members
        only. On PostgreSQL the member row is locked and one locked by a concurrent assignment
        is skipped, so two at once pick two members."""
        C, M, IM = Conversation, WorkspaceMember, InboxMember
        active = (
            select(func.count())
            .select_from(C)
            .where(C.workspace_id == workspace_id, C.assignee_id == M.user_id, C.status.in_(ACTIVE))
            .scalar_subquery()
        )
        stmt = (
            select(M.user_id)
            .select_from(
                M.__table__.outerjoin(
                    IM.__table__, (IM.workspace_id == M.workspace_id) & (IM.user_id == M.user_id)
                )
            )
            .where(
                M.workspace_id == workspace_id,
                func.coalesce(IM.available, true()).is_(True),
                or_(IM.capacity.is_(None), active < IM.capacity),
            )
            .order_by(IM.last_assigned_at.asc().nulls_first(), M.created_at)
            .limit(1)
        )
        if team_id is not None:
            stmt = stmt.where(
                M.user_id.in_(select(TeamMember.user_id).where(TeamMember.team_id == team_id))
            )
        if self.postgres:
            stmt = stmt.with_for_update(skip_locked=True, of=M.__table__)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def assigned_now(
        self, workspace_id: uuid.UUID, user_id: uuid.UUID, now: datetime
    ) -> None:
        insert = (postgresql.insert if self.postgres else sqlite.insert)(InboxMember)
        stmt = insert.values(
            workspace_id=workspace_id, user_id=user_id, available=True, last_assigned_at=now
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["workspace_id", "user_id"], set_={"last_assigned_at": now}
            )
        )

    # --- labels ---

    async def labels_of(self, ids: Iterable[int]) -> dict[int, list[str]]:
        wanted = sorted(set(ids))
        out: dict[int, list[str]] = {i: [] for i in wanted}
        if not wanted:
            return out
        result = await self.session.execute(
            select(ConversationLabel.conversation_id, ConversationLabel.label)
            .where(ConversationLabel.conversation_id.in_(wanted))
            .order_by(ConversationLabel.label)
        )
        for cid, label in result.all():
            out[int(cid)].append(label)
        return out

    async def add_labels(
        self, workspace_id: uuid.UUID, conversation_id: int, labels: list[str]
    ) -> None:
        if not labels:
            return
        insert = (postgresql.insert if self.postgres else sqlite.insert)(ConversationLabel)
        await self.session.execute(
            insert.values(
                [
                    {
                        "conversation_id": conversation_id,
                        "label": label,
                        "workspace_id": workspace_id,
                    }
                    for label in labels
                ]
            ).on_conflict_do_nothing()
        )

    async def remove_labels(self, conversation_id: int, labels: list[str]) -> None:
        if labels:
            await self.session.execute(
                delete(ConversationLabel).where(
                    ConversationLabel.conversation_id == conversation_id,
                    ConversationLabel.label.in_(labels),
                )
            )

    async def workspace_labels(self, workspace_id: uuid.UUID) -> list[tuple[str, int]]:
        result = await self.session.execute(
            select(ConversationLabel.label, func.count())
            .where(ConversationLabel.workspace_id == workspace_id)
            .group_by(ConversationLabel.label)
            .order_by(ConversationLabel.label)
        )
        return [(label, int(n)) for label, n in result.all()]

    # --- timeline ---

    async def add_event(self, row: ConversationEvent) -> ConversationEvent:
        self.session.add(row)
        await self.session.flush()
        return row

    async def events(
        self, conversation_id: int, *, limit: int, offset: int
    ) -> tuple[Sequence[ConversationEvent], int]:
        where = ConversationEvent.conversation_id == conversation_id
        rows = await self.session.execute(
            select(ConversationEvent)
            .where(where)
            .order_by(ConversationEvent.id.desc())
            .limit(limit)
            .offset(offset)
        )
        total = await self.session.execute(
            select(func.count()).select_from(ConversationEvent).where(where)
        )
        return rows.scalars().all(), int(total.scalar_one())

    # --- reads ---

    async def mark_seen(
        self, conversation_id: int, user_id: uuid.UUID, count: int, now: datetime
    ) -> None:
        insert = (postgresql.insert if self.postgres else sqlite.insert)(ConversationRead)
        stmt = insert.values(
            conversation_id=conversation_id,
            user_id=user_id,
            seen_inbound_count=count,
            last_seen_at=now,
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["conversation_id", "user_id"],
                set_={"seen_inbound_count": stmt.excluded.seen_inbound_count, "last_seen_at": now},
            )
        )

    # --- settings ---

    async def settings(self, workspace_id: uuid.UUID) -> InboxSettings | None:
        return await self.session.get(InboxSettings, workspace_id)

    async def add(self, row: Any) -> Any:
        self.session.add(row)
        await self.session.flush()
        return row

    async def delete_row(self, row: Any) -> None:
        await self.session.delete(row)
        await self.session.flush()

    # --- canned responses ---

    async def canned(self, workspace_id: uuid.UUID, q: str | None) -> Sequence[CannedResponse]:
        stmt = select(CannedResponse).where(CannedResponse.workspace_id == workspace_id)
        if q:
            stmt = stmt.where(CannedResponse.short_code.startswith(q.lower(), autoescape=True))
        result = await self.session.execute(stmt.order_by(CannedResponse.short_code).limit(500))
        return result.scalars().all()

    async def canned_by_id(
        self, workspace_id: uuid.UUID, canned_id: uuid.UUID
    ) -> CannedResponse | None:
        result = await self.session.execute(
            select(CannedResponse).where(
                CannedResponse.workspace_id == workspace_id, CannedResponse.id == canned_id
            )
        )
        return result.scalar_one_or_none()

    async def canned_by_code(self, workspace_id: uuid.UUID, code: str) -> CannedResponse | None:
        result = await self.session.execute(
            select(CannedResponse).where(
                CannedResponse.workspace_id == workspace_id, CannedResponse.short_code == code
            )
        )
        return result.scalar_one_or_none()

    # --- teams ---

    async def teams(self, workspace_id: uuid.UUID) -> Sequence[Team]:
        result = await self.session.execute(
            select(Team).where(Team.workspace_id == workspace_id).order_by(Team.name)
        )
        return result.scalars().all()

    async def team(self, workspace_id: uuid.UUID, team_id: uuid.UUID) -> Team | None:
        result = await self.session.execute(
            select(Team).where(Team.workspace_id == workspace_id, Team.id == team_id)
        )
        return result.scalar_one_or_none()

    async def team_members(self, team_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
        wanted = sorted(set(team_ids))
        out: dict[uuid.UUID, list[uuid.UUID]] = {t: [] for t in wanted}
        if not wanted:
            return out
        result = await self.session.execute(
            select(TeamMember.team_id, TeamMember.user_id)
            .where(TeamMember.team_id.in_(wanted))
            .order_by(TeamMember.team_id, TeamMember.user_id)
        )
        for team_id, user_id in result.all():
            out[team_id].append(user_id)
        return out

    async def workspace_members_among(
        self, workspace_id: uuid.UUID, user_ids: Iterable[uuid.UUID]
    ) -> set[uuid.UUID]:
        wanted = sorted(set(user_ids))
        if not wanted:
            return set()
        result = await self.session.execute(
            select(WorkspaceMember.user_id).where(
                WorkspaceMember.workspace_id == workspace_id, WorkspaceMember.user_id.in_(wanted)
            )
        )
        return set(result.scalars().all())

    async def set_team_members(
        self, workspace_id: uuid.UUID, team_id: uuid.UUID, user_ids: Iterable[uuid.UUID]
    ) -> None:
        await self.session.execute(delete(TeamMember).where(TeamMember.team_id == team_id))
        rows = [
            {"team_id": team_id, "user_id": u, "workspace_id": workspace_id}
            for u in sorted(set(user_ids))
        ]
        if rows:
            insert = (postgresql.insert if self.postgres else sqlite.insert)(TeamMember)
            await self.session.execute(insert.values(rows).on_conflict_do_nothing())

    async def leave_teams(self, workspace_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await self.session.execute(
            delete(TeamMember).where(
                TeamMember.workspace_id == workspace_id, TeamMember.user_id == user_id
            )
        )

    async def team_by_name(self, workspace_id: uuid.UUID, name: str) -> Team | None:
        result = await self.session.execute(
            select(Team).where(Team.workspace_id == workspace_id, Team.name == name)
        )
        return result.scalar_one_or_none()
