from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from aisoule.db.base import BigIntPK, JSONType, Model, UTCDateTime


class Message(Model):
    """One WhatsApp message, either way. The row is the truth: written ``queued`` in the request's
    transaction, claimed by a worker (``sending``), then moved forward by Meta's answers and status
    webhooks (``sent`` → ``delivered`` → ``read``, or ``failed`` with Meta's error)."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_workspace_created", "workspace_id", "created_at"),
        Index("ix_messages_workspace_contact_created", "workspace_id", "contact_id", "created_at"),
        Index("ix_messages_status_next_attempt", "status", "next_attempt_at"),
        Index(
            "ix_messages_campaign_status",
            "campaign_id",
            "status",
            postgresql_where=text("campaign_id IS NOT NULL"),
            sqlite_where=text("campaign_id IS NOT NULL"),
        ),
        # A lost send outcome is settled by the recipient_ref Meta echoes (migration 0008).
        Index(
            "ix_messages_account_recipient_ref",
            "account_id",
            "recipient_ref",
            postgresql_where=text("recipient_ref IS NOT NULL"),
            sqlite_where=text("recipient_ref IS NOT NULL"),
        ),
        UniqueConstraint("account_id", "wamid"),
        UniqueConstraint("workspace_id", "idempotency_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    account_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("whatsapp_accounts.id", ondelete="CASCADE")
    )
    contact_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("contacts.id", ondelete="SET NULL"), nullable=True
    )
    direction: Mapped[str] = mapped_column(String(8))  # outbound | inbound
    type: Mapped[str] = mapped_column(String(32))
    phone: Mapped[str] = mapped_column(String(20))  # the customer's number, E.164 with +
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)  # Meta's message JSON
    preview: Mapped[str | None] = mapped_column(Text, nullable=True)  # text for lists and inbox
    status: Mapped[str] = mapped_column(String(16))
    status_rank: Mapped[int] = mapped_column(SmallInteger, default=0)
    wamid: Mapped[str | None] = mapped_column(String(128), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    template_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    # Batch sends (messages.enqueue_batch): the campaign, and its recipient (sent to Meta as
    # biz_opaque_callback_data, which its status webhooks echo).
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    recipient_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MessageStatusEvent(Model):
    """A message's status history: each status once, with Meta's time for it."""

    __tablename__ = "message_status_events"
    __table_args__ = (UniqueConstraint("message_id", "status"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    message_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class Conversation(Model):
    """A contact's thread with one business number: when the customer last wrote (the 24 h
    window), and the team inbox's state of it (status, assignee, team, unread bookkeeping)."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("account_id", "contact_id"),
        Index("ix_conversations_workspace_assignee", "workspace_id", "assignee_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    account_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("whatsapp_accounts.id", ondelete="CASCADE")
    )
    contact_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("contacts.id", ondelete="CASCADE")
    )
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The inbox (aisoule/conversations): open | pending | snoozed | resolved.
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    team_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("teams.id", ondelete="SET NULL"), nullable=True
    )
    # Inbound messages so far: a member's unread count is this minus what they had seen.
    inbound_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_message_preview: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_message_direction: Mapped[str | None] = mapped_column(String(8), nullable=True)
    # The newest inbound message marked read at Meta (opening the conversation marks it once).
    read_marked_wamid: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# The inbox list: a workspace's conversations in the list's exact order (newest last message
# first, NULLs last, id breaking ties), so a page is the first rows of an index scan instead of
# a sort of the whole workspace (bench/inbox.py: 50 ms at 100,000 conversations, then < 1 ms);
# views and filters are checked on the rows as they come. (Migration 0010 makes it; on SQLite
# without NULLS LAST, which SQLite's DESC already is.)
Index(
    "ix_conversations_workspace_recent",
    Conversation.workspace_id,
    Conversation.last_message_at.desc().nulls_last(),
    Conversation.id.desc(),
)


class ContactWhatsApp(Model):
    """What WhatsApp told us about a contact: wa_id, profile name, and whether they opted out."""

    __tablename__ = "contact_whatsapp"

    contact_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    workspace_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    wa_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    profile_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    opt_out_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookEvent(Model):
    """One event of a Meta webhook delivery, stored once by its key and applied by a worker.

    ``key`` is what makes a redelivery a no-op: ``<account id>:message:<wamid>`` for an inbound
    message, ``<account id>:status:<wamid>:<status>`` for a status,
    ``<account id>:template:<id>:<event>:<entry time>`` for a template update, a digest of the JSON
    for anything else.

    ``account_id`` is the account whose app secret signed the delivery and that the event names:
    the only account the event is applied to (None: stored before webhook tenancy, not applied).
    ``raw`` keeps the event as Meta sent it when it held what the database cannot store (NUL);
    ``payload`` then holds it without.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_pending", "processed_at", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # message | status | template | other
    phone_number_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    waba_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    account_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
