"""Conversations: the customer-service window. A business may send free-form messages to a
customer within 24 hours of the customer's last message to that number (Meta answers 131047
outside it); the inbox will grow from these rows."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.conversations.repository import ConversationRepository, last_inbound_of

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
