from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from aisoule.db.base import Model, UTCDateTime


class Workspace(Model):
    __tablename__ = "workspaces"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Rate limits that override the defaults (a plan may raise them); NULL: inherit.
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)
    rate_limit_per_second: Mapped[int | None] = mapped_column(Integer)
