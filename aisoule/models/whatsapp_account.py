from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from aisoule.db.base import Model, UTCDateTime


class WhatsAppAccount(Model):
    """A connected WhatsApp Business phone number.

    ``access_token`` and ``app_secret`` are sealed with AES-GCM (a key derived from the server
    secret) and never leave the server; ``verify_token_hash`` is an HMAC, so the webhook handshake
    can find the account without storing the token in clear.
    """

    __tablename__ = "whatsapp_accounts"
    __table_args__ = (
        Index("ix_whatsapp_accounts_workspace_created", "workspace_id", "created_at"),
        UniqueConstraint("workspace_id", "phone_number_id"),
        Index("ix_whatsapp_accounts_waba_id", "waba_id"),
        # A number belongs to one workspace: a webhook naming it reaches exactly one account.
        Index(
            "ux_whatsapp_accounts_phone_number_id",
            "phone_number_id",
            unique=True,
            postgresql_where=text("phone_number_id <> ''"),
            sqlite_where=text("phone_number_id <> ''"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200), default="")
    phone_number: Mapped[str] = mapped_column(String(20))  # E.164 with +, as Meta displays it
    display_name: Mapped[str] = mapped_column(String(200))  # Meta's verified_name
    status: Mapped[str] = mapped_column(String(32))  # connected | disconnected | token_invalid
    provider: Mapped[str] = mapped_column(String(32))  # cloud_api | emulator
    phone_number_id: Mapped[str] = mapped_column(String(64), default="")
    waba_id: Mapped[str] = mapped_column(String(64), default="")
    access_token_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    app_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    verify_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    quality_rating: Mapped[str | None] = mapped_column(String(16), nullable=True)
    messaging_limit: Mapped[str | None] = mapped_column(String(32), nullable=True)
    throughput: Mapped[int] = mapped_column(Integer, default=80)  # messages per second
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
