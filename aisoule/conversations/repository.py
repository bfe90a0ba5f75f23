"""Conversation SQL: when the customer last wrote to a number (the 24-hour window)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.models import Conversation


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
