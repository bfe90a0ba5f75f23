from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.messages import status as st
from aisoule.models import Message, MessageStatusEvent

T = cast(Table, Message.__table__)


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


class MessageRepository:
    """SQL on messages and their status history only (consent, conversations and templates are
    their domains')."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- messages ------------------------------------------------------------------------------

    async def add(self, message: Message) -> Message:
        self.session.add(message)
        await self.session.flush()
        return message

    async def get(self, workspace_id: uuid.UUID, message_id: uuid.UUID) -> Message | None:
        result = await self.session.execute(
            select(Message).where(Message.workspace_id == workspace_id, Message.id == message_id)
        )
        return result.scalar_one_or_none()

    async def by_idempotency_key(self, workspace_id: uuid.UUID, key: str) -> Message | None:
        result = await self.session.execute(
            select(Message).where(
                Message.workspace_id == workspace_id, Message.idempotency_key == key
            )
        )
        return result.scalar_one_or_none()

    async def by_wamid(self, account_ids: Sequence[uuid.UUID], wamid: str) -> Message | None:
        if not account_ids:
            return None
        result = await self.session.execute(
            select(Message)
            .where(Message.account_id.in_(account_ids), Message.wamid == wamid)
            .limit(1)
        )
        return result.scalar_one_or_none()

    def _filtered(
        self,
        workspace_id: uuid.UUID,
        contact_id: int | None,
        status: str | None,
        direction: str | None,
    ) -> Any:
        conds = [Message.workspace_id == workspace_id]
        if contact_id is not None:
            conds.append(Message.contact_id == contact_id)
        if status is not None:
            conds.append(Message.status == status)
        if direction is not None:
            conds.append(Message.direction == direction)
        return and_(*conds)

    async def list_page(
        self,
        workspace_id: uuid.UUID,
        *,
        limit: int,
        offset: int,
        contact_id: int | None = None,
        status: str | None = None,
        direction: str | None = None,
    ) -> tuple[Sequence[Message], int]:
        where = self._filtered(workspace_id, contact_id, status, direction)
        rows = await self.session.execute(
            select(Message)
            .where(where)
            .order_by(Message.created_at.desc(), Message.id)
            .limit(limit)
            .offset(offset)
        )
        total = await self.session.execute(select(func.count()).select_from(Message).where(where))
        return rows.scalars().all(), int(total.scalar_one())

    async def add_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Many messages in one INSERT (one statement, one round trip: a multi-row VALUES)."""
        if rows:
            await self.session.execute(insert(T).values(list(rows)))

    async def claim(self, message_ids: Sequence[uuid.UUID], now: datetime) -> Sequence[Message]:
        """Queued (and due) → sending, once, in one statement: the rows claimed here, as they are
        now. Two workers given the same ids never both claim one (the row's update is atomic;
        on PostgreSQL the second waits for the first's commit and then no longer matches)."""
        if not message_ids:
            return []
        result = await self.session.execute(
            update(Message)
            .where(
                Message.id.in_(message_ids),
                Message.status == st.QUEUED,
                or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now),
            )
            .values(
                status=st.SENDING,
                status_rank=st.RANK[st.SENDING],
                attempts=Message.attempts + 1,
                updated_at=now,
            )
            .returning(Message)
            .execution_options(synchronize_session=False)
        )
        return result.scalars().all()

    async def apply_outcomes(self, changes: Sequence[dict[str, Any]]) -> None:
        """Send outcomes (id, status, wamid, error, next_attempt_at, updated_at), one statement
        for any number of messages (executemany)."""
        if not changes:
            return
        stmt = (
            update(T)
            .where(T.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                status_rank=bindparam("b_rank"),
                wamid=bindparam("b_wamid"),
                error=bindparam("b_error", type_=T.c.error.type),
                next_attempt_at=bindparam("b_next", type_=T.c.next_attempt_at.type),
                updated_at=bindparam("b_updated", type_=T.c.updated_at.type),
            )
        )
        await self.session.execute(
            stmt,
            [
                {
                    "b_id": c["id"],
                    "b_status": c["status"],
                    "b_rank": st.RANK[c["status"]],
                    "b_wamid": c["wamid"],
                    "b_error": c["error"],
                    "b_next": c["next_attempt_at"],
                    "b_updated": c["updated_at"],
                }
                for c in changes
            ],
        )

    async def due(self, now: datetime, quiet_since: datetime, limit: int) -> Sequence[uuid.UUID]:
        """Queued messages a lost task left behind, or whose retry time has come."""
        result = await self.session.execute(
            select(Message.id)
            .where(
                Message.status == st.QUEUED,
                or_(
                    Message.next_attempt_at <= now,
                    and_(Message.next_attempt_at.is_(None), Message.updated_at < quiet_since),
                ),
            )
            .order_by(Message.created_at)
            .limit(limit)
        )
        return list(result.scalars().all())

    async def stale_sending(self, before: datetime, now: datetime) -> int:
        """A worker died mid-send: the outcome is unknown (never resend blindly)."""
        result = await self.session.execute(
            update(Message)
            .where(Message.status == st.SENDING, Message.updated_at < before)
            .values(status=st.UNKNOWN, status_rank=st.RANK[st.UNKNOWN], updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    # -- status history ------------------------------------------------------------------------

    async def add_status_event(
        self,
        message_id: uuid.UUID,
        status: str,
        at: datetime,
        error: dict[str, Any] | None = None,
    ) -> None:
        stmt = (
            _insert(self.session, MessageStatusEvent)
            .values(message_id=message_id, status=status, at=at, error=error)
            .on_conflict_do_nothing(index_elements=["message_id", "status"])
        )
        await self.session.execute(stmt)

    async def ids_by_wamids(
        self, account_ids: Sequence[uuid.UUID], wamids: Sequence[str]
    ) -> dict[str, uuid.UUID]:
        if not account_ids or not wamids:
            return {}
        result = await self.session.execute(
            select(Message.wamid, Message.id).where(
                Message.account_id.in_(account_ids), Message.wamid.in_(wamids)
            )
        )
        return {str(w): i for w, i in result.all()}

    async def add_status_events(self, rows: Sequence[dict[str, Any]]) -> None:
        """Many history rows in one statement (message_id, status, at, error); each status once."""
        if rows:
            stmt = _insert(self.session, MessageStatusEvent).on_conflict_do_nothing(
                index_elements=["message_id", "status"]
            )
            await self.session.execute(stmt, list(rows))  # executemany: compiled once, cached

    async def advance(self, message_ids: Sequence[uuid.UUID], status: str, now: datetime) -> None:
        """Move messages to ``status`` where it is ahead of theirs (a non-failed status: a higher
        rank; ``failed`` has the highest rank, so a failed message never moves again)."""
        if message_ids:
            await self.session.execute(
                update(Message)
                .where(Message.id.in_(message_ids), Message.status_rank < st.RANK[status])
                .values(status=status, status_rank=st.RANK[status], updated_at=now)
                .execution_options(synchronize_session=False)
            )

    async def status_events(self, message_id: uuid.UUID) -> Sequence[MessageStatusEvent]:
        result = await self.session.execute(
            select(MessageStatusEvent)
            .where(MessageStatusEvent.message_id == message_id)
            .order_by(MessageStatusEvent.at, MessageStatusEvent.id)
        )
        return result.scalars().all()

    async def of_thread(
        self,
        workspace_id: uuid.UUID,
        account_id: uuid.UUID,
        contact_id: int,
        *,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[Message], int]:
        """A conversation's messages (one contact, one number), newest first."""
        where = (
            (Message.workspace_id == workspace_id)
            & (Message.account_id == account_id)
            & (Message.contact_id == contact_id)
        )
        rows = await self.session.execute(
            select(Message)
            .where(where)
            # Meta stamps inbound messages to the second: our write time breaks the tie.
            .order_by(Message.created_at.desc(), Message.updated_at.desc(), Message.id)
            .limit(limit)
            .offset(offset)
        )
        total = await self.session.execute(select(func.count()).select_from(Message).where(where))
        return rows.scalars().all(), int(total.scalar_one())

    async def latest_inbound(
        self, workspace_id: uuid.UUID, account_id: uuid.UUID, contact_id: int
    ) -> Message | None:
        result = await self.session.execute(
            select(Message)
            .where(
                Message.workspace_id == workspace_id,
                Message.account_id == account_id,
                Message.contact_id == contact_id,
                Message.direction == "inbound",
            )
            .order_by(Message.created_at.desc(), Message.updated_at.desc())
            .limit(1)
        )
        return result.scalar_one_or_none()


def text_match(account_id: Any, contact_id: Any, q: str) -> Any:
    """EXISTS a message of this thread (correlated columns) whose text contains ``q``, case-
    insensitively, for another domain's statement. Portable LIKE on lower(preview); on PostgreSQL
    a pg_trgm GIN index on lower(preview) would serve it unchanged."""
    escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return (
        select(Message.id)
        .where(
            Message.account_id == account_id,
            Message.contact_id == contact_id,
            func.lower(Message.preview).like(f"%{escaped}%", escape="\\"),
        )
        .exists()
    )
