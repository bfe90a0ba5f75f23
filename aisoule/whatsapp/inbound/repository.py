"""SQL for ``webhook_events``: the batched idempotent insert, and the workers' claim."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from aisoule.models import WebhookEvent

# pg_try_advisory_xact_lock key of the webhook applier (any fixed bigint unique to it).
APPLIER_LOCK = 0x61_69_73_6F_75_6C_77_68  # "aisoulwh"


class WebhookEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    async def insert_new(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert every row whose key is new, in one statement; the number inserted."""
        if not rows:
            return 0
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        # Executemany with RETURNING: SQLAlchemy sends one INSERT ... VALUES (...), (...) and
        # caches the compiled statement (a .values(list) statement would compile every time).
        stmt = (
            insert(WebhookEvent)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(WebhookEvent.id)
        )
        result = await self.session.execute(stmt, list(rows))
        return len(result.all())

    async def take_applier_turn(self) -> bool:
        """On PostgreSQL, wait for this transaction's turn to apply webhook events (a
        transaction-level advisory lock, taken before any other lock, so it cannot be part of a
        deadlock); SQLite has one writer. Waiting, not giving way: a process that gave way while
        the holder made its last, empty claim would leave its events for the reconciler (and an
        event committed with an id below the holder's cursor would be skipped by it)."""
        if self._dialect != "postgresql":
            return True
        await self.session.execute(select(func.pg_advisory_xact_lock(APPLIER_LOCK)))
        return True

    async def claim(
        self, *, after_id: int, limit: int, max_quick_attempts: int | None
    ) -> Sequence[WebhookEvent]:
        """The next unprocessed events by id. On PostgreSQL the rows stay locked until the
        transaction ends and rows another worker holds are skipped, so workers share the work;
        SQLite has one writer (the caller's session holds the write lock)."""
        conds = [WebhookEvent.processed_at.is_(None), WebhookEvent.id > after_id]
        if max_quick_attempts is not None:
            conds.append(WebhookEvent.attempts < max_quick_attempts)
        stmt = select(WebhookEvent).where(*conds).order_by(WebhookEvent.id).limit(limit)
        if self._dialect == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        result = await self.session.execute(stmt)
        return result.scalars().all()

    async def finish(
        self, done: Sequence[tuple[int, str | None]], waiting: Sequence[int], now: datetime
    ) -> None:
        """Mark events processed (with their error, if any); count an attempt on the others."""
        plain = [i for i, err in done if err is None]
        if plain:
            await self.session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id.in_(plain))
                .values(processed_at=now, attempts=WebhookEvent.attempts + 1)
                .execution_options(synchronize_session=False)
            )
        for event_id, error in done:
            if error is not None:
                await self.session.execute(
                    update(WebhookEvent)
                    .where(WebhookEvent.id == event_id)
                    .values(processed_at=now, attempts=WebhookEvent.attempts + 1, error=error[:500])
                    .execution_options(synchronize_session=False)
                )
        if waiting:
            await self.session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id.in_(waiting))
                .values(attempts=WebhookEvent.attempts + 1)
                .execution_options(synchronize_session=False)
            )

    async def has_pending(self, *, retry: bool, max_quick_attempts: int) -> bool:
        conds: list[ColumnElement[bool]] = [WebhookEvent.processed_at.is_(None)]
        if not retry:
            conds.append(WebhookEvent.attempts < max_quick_attempts)
        result = await self.session.execute(select(exists().where(*conds)))
        return bool(result.scalar())
