"""Campaigns: a broadcast of an approved template to an audience (docs/campaigns.md).

Three tables. ``campaigns`` holds what the user asked for and where the engine stands;
``campaign_recipients`` one row per (campaign, contact), written when the campaign starts and
moved forward by the engine and by Meta's status webhooks; ``campaign_counters`` the stats, kept
current by every transition (sharded rows summed on read), so reading stats never counts the
recipients table.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from aisoule.db.base import BigIntPK, JSONType, Model, UTCDateTime


class Campaign(Model):
    __tablename__ = "campaigns"
    __table_args__ = (
        Index("ix_campaigns_workspace_created", "workspace_id", "created_at"),
        Index("ix_campaigns_status_scheduled", "status", "scheduled_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    # draft | scheduled | running | paused | completed | cancelled | failed (campaigns/status.py)
    status: Mapped[str] = mapped_column(String(32))
    # Why it is in that status when the engine put it there (e.g. paused: account_error), with a
    # human sentence; None when a person did it.
    status_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("whatsapp_accounts.id", ondelete="SET NULL"), nullable=True
    )
    template_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("message_templates.id", ondelete="SET NULL"), nullable=True
    )
    template_name: Mapped[str] = mapped_column(String(512), default="")
    template_language: Mapped[str] = mapped_column(String(15), default="")
    audience: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Start even when the audience is over the number's messaging limit left (pre-flight).
    force: Mapped[bool] = mapped_column(Boolean, default=False)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The engine's place. Recipients are written from the audience in contact-id order, in
    # chunks, while sending has begun: the last contact id written, and whether all are.
    audience_cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    materialized: Mapped[bool] = mapped_column(Boolean, default=False)
    # One dispatcher at a time per campaign: whoever holds the lease claims the next recipients.
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CampaignRecipient(Model):
    """One contact of one campaign, in exactly one of: pending (not yet given to a message),
    queued (its message is written and being sent, or waiting for a retry), sent, delivered, read,
    failed, unknown (Meta's answer was lost: settled by its status webhook, or resent by a person),
    skipped (never sent, with the reason)."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id"),
        Index("ix_campaign_recipients_campaign_status_id", "campaign_id", "status", "id"),
        Index("ix_campaign_recipients_contact", "contact_id", "created_at"),
        Index("ix_campaign_recipients_message", "message_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    campaign_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("campaigns.id", ondelete="CASCADE")
    )
    workspace_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    contact_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("contacts.id", ondelete="SET NULL"), nullable=True
    )
    phone: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16))
    # skipped: opted_out | missing_variable | invalid_phone | ...; failed: Meta's code as text.
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    message_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    # How many messages were written for this recipient: 1, or 2 after resend-unknown.
    sends: Mapped[int] = mapped_column(SmallInteger, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CampaignCounter(Model):
    """A campaign's stats as counters: ``key`` is ``status:<s>``, ``skipped:<reason>``,
    ``failed:<code>``, ``replied`` or ``resent``; ``shard`` spreads concurrent writers over rows.
    The stats are the sums per key."""

    __tablename__ = "campaign_counters"

    campaign_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
