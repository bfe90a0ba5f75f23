from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import BigInteger, Date, ForeignKey, SmallInteger, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from aisoule.db.base import Model


class APIKeyUsage(Model):
    """Requests per key, UTC day and status class (2xx..5xx), flushed from memory every few seconds."""

    __tablename__ = "api_key_usage"

    api_key_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    status_class: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
