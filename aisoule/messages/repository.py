from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Integer, Table, and_, bindparam, func, insert, or_, select, update
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

    async def settle_by_ref(
        self, account_ids: Sequence[uuid.UUID], recipient_ref: str, wamid: str
    ) -> Message | None:
        """The message whose outcome was lost (``unknown``, or ``sending`` while its worker has
        not recorded it) and whose ``recipient_ref`` a status webhook echoed as
        biz_opaque_callback_data: its wamid set to the status's, in one guarded statement."""
        if not account_ids or not recipient_ref:
            return None
        found = await self.session.execute(
            select(Message.id)
            .where(
                Message.account_id.in_(account_ids),
                Message.recipient_ref == recipient_ref,
                Message.wamid.is_(None),
                Message.status.in_([st.UNKNOWN, st.SENDING]),
            )
            .limit(1)
        )
        message_id = found.scalar_one_or_none()
        if message_id is None:
            return None
        result = await self.session.execute(
            update(Message)
            .where(Message.id == message_id, Message.wamid.is_(None))
            # Meta took this attempt: an earlier attempt's retryable error is history (a failed
            # status sets its own error next).
            .values(wamid=wamid, error=None)
            .returning(Message)
            .execution_options(synchronize_session=False, populate_existing=True)
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
        """Many messages (rows with the same keys) in one round trip: an executemany, which
        SQLAlchemy sends as batched multi-row INSERTs ("insertmanyvalues") from a statement
        compiled once and cached. A ``.values(rows)`` statement is compiled anew for every
        batch, which cost about 0.5 ms of CPU per row at a campaign's 500-row batches."""
        if rows:
            await self.session.execute(insert(T), list(rows))

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

    async def awaiting_outcome(self, message_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Of these messages, those still waiting for their send's outcome (``sending``, or
        ``unknown``, with no wamid), held until the transaction ends (on SQLite the writer's
        lock already holds them): a status webhook that settled one meanwhile (by its
        recipient_ref) took it out of this set, and cannot settle it again before we commit.

        A row another transaction holds is skipped, not waited for: while its send is in flight
        only a status webhook settling it (Meta took it; the webhook's wamid and status are
        newer news than the answer) or the stale-send sweep locks it. Waiting would deadlock
        against a webhook batch that settled one message of this chunk and waits for another."""
        if not message_ids:
            return set()
        result = await self.session.execute(
            select(Message.id)
            .where(
                Message.id.in_(message_ids),
                Message.wamid.is_(None),
                Message.status.in_([st.SENDING, st.UNKNOWN]),
            )
            .with_for_update(skip_locked=True, key_share=True)  # FOR NO KEY UPDATE SKIP LOCKED
        )
        return set(result.scalars().all())

    async def apply_outcomes(self, changes: Sequence[dict[str, Any]]) -> None:
        """Send outcomes (id, status, wamid, error, next_attempt_at, attempts, updated_at), one
        statement for any number of messages (executemany). Only onto a message still waiting
        for its outcome (``sending``, or ``unknown`` after a long send), with no wamid yet: a
        status webhook that settled it by its recipient_ref first is not undone."""
        if not changes:
            return
        stmt = (
            update(T)
            .where(
                T.c.id == bindparam("b_id"),
                T.c.wamid.is_(None),
                # Not IN (...): an expanding parameter cannot be used with executemany.
                or_(T.c.status == st.SENDING, T.c.status == st.UNKNOWN),
            )
            .values(
                status=bindparam("b_status"),
                status_rank=bindparam("b_rank"),
                wamid=bindparam("b_wamid"),
                error=bindparam("b_error", type_=T.c.error.type),
                next_attempt_at=bindparam("b_next", type_=T.c.next_attempt_at.type),
                attempts=bindparam("b_attempts"),
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
                    "b_attempts": c["attempts"],
                    "b_updated": c["updated_at"],
                }
                for c in changes
            ],
        )

    async def due(self, now: datetime, quiet_since: datetime, limit: int) -> Sequence[uuid.UUID]:
        """Queued messages a lost task left behind, or whose retry time has come (a campaign's
        are its dispatcher's)."""
        result = await self.session.execute(
            select(Message.id)
            .where(
                Message.status == st.QUEUED,
                Message.campaign_id.is_(None),
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
        """A worker died mid-send: the outcome is unknown (never resend blindly). A campaign's
        messages are settled with their recipients (stale_campaign_sending)."""
        result = await self.session.execute(
            update(Message)
            .where(
                Message.status == st.SENDING,
                Message.campaign_id.is_(None),
                Message.updated_at < before,
            )
            .values(status=st.UNKNOWN, status_rank=st.RANK[st.UNKNOWN], updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    # -- a campaign's messages -----------------------------------------------------------------

    async def campaign_due(
        self, campaign_id: uuid.UUID, now: datetime, limit: int
    ) -> list[tuple[uuid.UUID, str | None]]:
        result = await self.session.execute(
            select(Message.id, Message.recipient_ref)
            .where(
                Message.campaign_id == campaign_id,
                Message.status == st.QUEUED,
                or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now),
            )
            .order_by(Message.created_at)
            .limit(limit)
        )
        return [(i, r) for i, r in result.all()]

    async def campaign_next_attempt(self, campaign_id: uuid.UUID) -> datetime | None:
        result = await self.session.execute(
            select(func.min(Message.next_attempt_at)).where(
                Message.campaign_id == campaign_id, Message.status == st.QUEUED
            )
        )
        value: datetime | None = result.scalar_one_or_none()
        return value

    async def campaign_queued(self, campaign_id: uuid.UUID, limit: int) -> list[uuid.UUID]:
        result = await self.session.execute(
            select(Message.id)
            .where(Message.campaign_id == campaign_id, Message.status == st.QUEUED)
            .limit(limit)
        )
        return list(result.scalars().all())

    async def fail_queued(
        self, message_ids: Sequence[uuid.UUID], error: dict[str, Any], now: datetime
    ) -> list[tuple[uuid.UUID, uuid.UUID | None, str | None]]:
        """Queued → failed (never sent), once: (id, campaign_id, recipient_ref) of those moved."""
        result = await self.session.execute(
            update(Message)
            .where(Message.id.in_(message_ids), Message.status == st.QUEUED)
            .values(status=st.FAILED, status_rank=st.RANK[st.FAILED], error=error, updated_at=now)
            .returning(Message.id, Message.campaign_id, Message.recipient_ref)
            .execution_options(synchronize_session=False)
        )
        return [(i, c, r) for i, c, r in result.all()]

    async def stale_campaign_sending(
        self, before: datetime, now: datetime
    ) -> list[tuple[uuid.UUID, uuid.UUID | None, str | None]]:
        result = await self.session.execute(
            update(Message)
            .where(
                Message.status == st.SENDING,
                Message.campaign_id.is_not(None),
                Message.updated_at < before,
            )
            .values(status=st.UNKNOWN, status_rank=st.RANK[st.UNKNOWN], updated_at=now)
            .returning(Message.id, Message.campaign_id, Message.recipient_ref)
            .execution_options(synchronize_session=False)
        )
        return [(i, c, r) for i, c, r in result.all()]

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

    async def heads_by_wamids(
        self, account_ids: Sequence[uuid.UUID], wamids: Sequence[str]
    ) -> dict[str, Any]:
        """wamid → the message's (id, status, campaign_id, recipient_ref), in one statement."""
        if not account_ids or not wamids:
            return {}
        result = await self.session.execute(
            select(
                Message.wamid,
                Message.id,
                Message.status,
                Message.campaign_id,
                Message.recipient_ref,
            ).where(Message.account_id.in_(account_ids), Message.wamid.in_(wamids))
        )
        return {str(row.wamid): row for row in result.all()}

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

    async def campaign_status_counts(
        self,
        workspace_id: uuid.UUID,
        campaign_id: uuid.UUID,
        start: datetime,
        width_seconds: int,
        buckets: int,
        statuses: Sequence[str],
    ) -> list[tuple[int, str, int]]:
        """(bucket, status, events) of a campaign's messages' status history: bucket ``i``
        holds the events at ``start + i * width`` up to the next; at most ``buckets`` times statuses
        rows, whatever the campaign's size (one aggregate over its messages' history)."""
        ev = MessageStatusEvent
        begin = start.timestamp()
        end = datetime.fromtimestamp(begin + width_seconds * buckets, tz=start.tzinfo)
        if self.session.get_bind().dialect.name == "postgresql":
            bucket: Any = func.floor((func.extract("epoch", ev.at) - begin) / width_seconds)
        else:  # SQLite: integer seconds, integer division (every event is after start)
            seconds = func.cast(func.strftime("%s", ev.at), Integer)
            bucket = (seconds - int(begin)) / width_seconds
        bucket = bucket.label("bucket")
        stmt = (
            select(bucket, ev.status, func.count())
            .select_from(ev)
            .join(Message, Message.id == ev.message_id)
            .where(
                Message.campaign_id == campaign_id,
                Message.workspace_id == workspace_id,
                ev.status.in_(list(statuses)),
                ev.at >= start,
                ev.at < end,
            )
            .group_by(bucket, ev.status)
        )
        return [(int(b), str(s), int(n)) for b, s, n in (await self.session.execute(stmt)).all()]

    async def template_recipients_since(
        self, workspace_id: uuid.UUID, account_id: uuid.UUID, since: datetime
    ) -> int:
        """Distinct people this account sent template messages to since ``since``, failed ones
        left out (walks the workspace's messages of that period by (workspace_id, created_at))."""
        stmt = select(func.count(func.distinct(Message.phone))).where(
            Message.workspace_id == workspace_id,
            Message.created_at >= since,
            Message.account_id == account_id,
            Message.direction == "outbound",
            Message.type == "template",
            Message.status != st.FAILED,
        )
        return int((await self.session.execute(stmt)).scalar_one())

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
