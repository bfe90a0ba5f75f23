"""The one place where an applied inbound message or status is handed to the parts that react to
it, called by ``applying`` inside the event's savepoint (a reaction that fails undoes the event,
which is then stored with its error).

Each reaction is a plain call of its domain's service, in the order written here: what reacts to
an inbound message is read top to bottom, and adding a reaction is adding a line.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.campaigns import service as campaigns
from aisoule.contacts import service as contacts
from aisoule.conversations import service as conversations
from aisoule.inbox import service as inbox
from aisoule.messages import service as messages
from aisoule.messages.service import Change
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
    # 3. Campaigns: a reply within 72 h of the contact's latest campaign message counts.
    await campaigns.on_reply(session, event.workspace_id, event.contact_id, event.at)
    # Flows (the bot's next step) and outbound webhooks (message.received) each add their line
    # here, after consent, when they exist.


async def on_status(
    session: AsyncSession, event: StatusChange, moved: Change | None = None
) -> None:
    """One applied status; ``moved``: what it moved (messages.apply_status's change)."""
    await on_statuses(session, [event], [moved] if moved is not None else [])


async def on_statuses(
    session: AsyncSession, events: Sequence[StatusChange], moved: Sequence[Change]
) -> None:
    """Everything a batch of applied statuses sets off, in order; ``moved`` is what they moved
    (from the messages' own read: nothing here queries a message again). Meta's 131050 (the user
    stopped marketing messages) opts the contact out inside messages.apply_status.
    """
    # 1. Campaigns: recipients follow their messages (delivered, read, failed with the code, an
    #    unknown send settled), their counters with them, one statement per kind for the batch.
    await campaigns.on_status_changes(session, moved)
    # 2. The inbox: the tick, live.
    for event in events:
        await inbox.on_status(
            session,
            workspace_id=event.workspace_id,
            account_id=event.account_id,
            wamid=event.wamid,
            status=event.status,
        )
    # Outbound webhooks (message.status) add their line here when they exist.


async def on_template_status(
    session: AsyncSession, account_id: uuid.UUID, value: Mapping[str, Any]
) -> None:
    """Meta's template review or quality event (``message_template_status_update``), applied to
    the account's templates: running campaigns sending a template Meta paused or disabled pause."""
    await campaigns.on_template_status(session, account_id, value)
