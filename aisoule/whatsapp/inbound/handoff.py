"""The one place where an applied inbound message or status is handed to the parts that react to
it, called by ``applying`` inside the event's savepoint (a reaction that fails undoes the event,
which is then stored with its error).

Each reaction is a plain call of its domain's service, in the order written here: what reacts to
an inbound message is read top to bottom, and adding a reaction is adding a line.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.contacts import service as contacts
from aisoule.conversations import service as conversations
from aisoule.inbox import service as inbox
from aisoule.messages import service as messages
from aisoule.whatsapp.inbound import keywords


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A customer's message, recorded (its contact and its row exist); never a redelivery."""

    workspace_id: uuid.UUID
    account_id: uuid.UUID
    contact_id: int
    message_id: uuid.UUID
    wamid: str
    kind: str  # Meta's message type: text, button, interactive, image, ...
    text: str | None  # what the customer typed, or the quick-reply button's text; None otherwise
    payload: dict[str, Any]  # Meta's message object, as received
    at: datetime  # when the customer sent it (Meta's timestamp)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A status Meta reported for one of our messages, applied to it (found by its wamid)."""

    workspace_id: uuid.UUID
    account_id: uuid.UUID
    wamid: str
    status: str
    at: datetime
    errors: list[dict[str, Any]] | None


async def on_inbound_message(session: AsyncSession, event: InboundMessage) -> None:
    """Everything an inbound message sets off, in order."""
    # 1. Conversations: the customer's 24-hour window opens at ``event.at``.
    await conversations.open_window(
        session, event.workspace_id, event.account_id, event.contact_id, event.at
    )
    await conversations.on_inbound_message(
        session,
        workspace_id=event.workspace_id,
        account_id=event.account_id,
        contact_id=event.contact_id,
        message_id=event.message_id,
        preview=messages.inbound_preview(event.kind, event.payload),
        at=event.at,
    )  # 1b. The inbox: unread, reopen, round robin, live event.
    # 2. Consent: STOP and its synonyms opt the contact out, START opts it back in.
    if keywords.is_stop(event.text):
        await contacts.opt_out(session, event.workspace_id, event.contact_id, "stop_keyword")
    elif keywords.is_start(event.text):
        await contacts.opt_in(session, event.workspace_id, event.contact_id)
    # Campaigns (reply attribution), flows (the bot's next step) and outbound webhooks
    # (message.received) each add their line here, after consent, when they exist.


async def on_status(session: AsyncSession, event: StatusChange) -> None:
    """Everything an applied status sets off, in order. Today nothing outside messages reacts:
    Meta's 131050 (the user stopped marketing messages) opts the contact out inside
    messages.apply_status.
    """
    # The inbox: the tick, live.
    await inbox.on_status(
        session,
        workspace_id=event.workspace_id,
        account_id=event.account_id,
        wamid=event.wamid,
        status=event.status,
    )
    # Campaigns (delivered and read counts) and outbound webhooks (message.status) each add their
    # line here when they exist.
